"""Any stimulus array -> responses of every ensemble member, cached on disk.

:func:`ensemble_responses` runs a stacked ensemble (a :class:`~jaxsel.train.ManyResult`,
or ``(fn, params)`` with a leading model axis on ``params`` and ``fn`` the single-model
function, or a list of single-model pairs sharing one ``fn``) on raw stimuli in fixed-size
batches (one compilation, models vmapped) and returns ``xr.DataArray`` (model, stimulus,
neuron [, time]). Stimuli of shape (stimulus, time, C, H, W) or (stimulus, time, H, W) are
movies: every frame is an image and the result gets a ``time`` axis. With ``cache_dir`` the
result is stored as zarr (:func:`jaxsel.data.save_zarr`) under a key hashing the stimulus bytes,
the parameters and the config, and loaded from there on the next call.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from jaxsel._compile_cache import cached
from jaxsel._errors import DataError
from jaxsel.models import predict


def _stack_pairs(model):
    """-> (single-model fn, params stacked on a leading model axis, model coords, config)."""
    from jaxsel.train import ManyResult, response_function

    if isinstance(model, ManyResult):
        fn = response_function(model.model)
        _, p = model.response_fn()
        return (
            fn,
            p,
            {
                "seed": ("model", model.seeds),
                **{k: ("model", np.asarray(v)) for k, v in model.hparams.items()},
            },
            model.config.to_dict(),
            model.neuron_id[0],
        )
    if isinstance(model, (list, tuple)) and model and isinstance(model[0], (list, tuple)):
        fns = {id(f) for f, _ in model}
        if len(fns) != 1:
            raise DataError(
                "ensemble members have different response functions",
                field="model",
                expected="one shared fn (stack the params)",
            )
        params = jax.tree.map(
            lambda *a: np.stack([np.asarray(x) for x in a]), *[p for _, p in model]
        )
        return model[0][0], params, {}, None, None
    if isinstance(model, tuple) and len(model) == 2:
        return model[0], model[1], {}, None, None
    raise DataError(
        f"model of type {type(model).__name__}",
        field="model",
        expected="a ManyResult, (fn, stacked params) or a list of (fn, params)",
    )


def _members_batch_first(fn):
    """``g(stacked params, images) -> (batch, model, neuron)``, one object per ``fn``."""

    def build():
        members = jax.vmap(fn, in_axes=(0, None))
        return lambda params, images: jnp.moveaxis(members(params, images), 0, 1)

    return cached("members_batch_first", fn, build)


def cache_key(stimuli, params, config=None) -> str:
    """SHA-256 (24 hex) of the stimulus bytes and shape, every parameter leaf and the config."""
    h = hashlib.sha256()
    s = np.ascontiguousarray(np.asarray(stimuli, np.float32))
    h.update(str(s.shape).encode())
    h.update(s.tobytes())
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(jax.tree_util.keystr(path).encode())
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(a.tobytes())
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    return h.hexdigest()[:24]


def ensemble_responses(
    model,
    stimuli,
    *,
    batch_size: int = 128,
    cache_dir=None,
    config: dict | None = None,
    stimulus_id=None,
    movie: bool | None = None,
) -> xr.DataArray:
    """Responses of every ensemble member to raw stimuli.

    Args:
      model: a ``ManyResult``, ``(fn, stacked params)`` or list of ``(fn, params)``.
      stimuli: (stimulus, C, H, W), (stimulus, H, W) images or (stimulus, time, C, H, W),
        (stimulus, time, H, W) movies, in the data's raw pixel units.
      batch_size: images per compiled call.
      cache_dir: folder of the zarr cache (None: no cache).
      config: extra config to key the cache on (a ManyResult's config is included).
      stimulus_id: ids for the ``stimulus`` coord (default 0..n-1).
      movie: 4-D stimuli are (stimulus, time, H, W) movies (default: 5-D stimuli are movies,
        4-D ones (stimulus, C, H, W) images).

    Returns:
      ``xr.DataArray`` (model, stimulus, neuron) or (model, stimulus, time, neuron) named
      ``responses``; attrs ``cache_key``, ``cached`` (True if read from disk).
    """
    fn, params, mcoords, cfg, neuron_id = _stack_pairs(model)
    x = np.asarray(stimuli, np.float32)
    if x.ndim not in (3, 4, 5):
        raise DataError(
            f"stimuli have shape {x.shape}",
            field="stimuli",
            expected="(stimulus, [time,] [channel,] y, x)",
        )
    if not np.all(np.isfinite(x)):
        raise DataError("non-finite stimulus values", field="stimuli")
    movie = x.ndim == 5 or (x.ndim == 4 and bool(movie))
    key = cache_key(x, params, {"model": cfg, "extra": config})
    path = None if cache_dir is None else Path(cache_dir) / f"responses_{key}.zarr"
    if path is not None and (path / "zarr.json").is_file():
        from jaxsel.data import load_zarr

        da = load_zarr(path)
        assert isinstance(da, xr.DataArray)  # the cache is written from a DataArray below
        da.attrs["cached"] = True
        return da
    n = x.shape[0]
    t = x.shape[1] if movie else 1  # frames per stimulus (used for movies only)
    flat = x.reshape((n * t,) + x.shape[2:]) if movie else x
    r = np.moveaxis(
        predict((_members_batch_first(fn), params), flat, batch_size=batch_size), 0, 1
    )  # (model, n*t, neuron)
    m, nn = r.shape[0], r.shape[-1]
    coords = {
        "model": np.arange(m),
        "stimulus_id": (
            "stimulus",
            np.arange(n) if stimulus_id is None else np.asarray(stimulus_id),
        ),
        **mcoords,
    }
    if neuron_id is not None:
        coords["neuron_id"] = ("neuron", np.asarray(neuron_id))
    if movie:
        da = xr.DataArray(
            r.reshape(m, n, t, nn),
            dims=("model", "stimulus", "time", "neuron"),
            coords={**coords, "time": np.arange(t)},
            name="responses",
        )
    else:
        da = xr.DataArray(r, dims=("model", "stimulus", "neuron"), coords=coords, name="responses")
    da.attrs["cache_key"] = key
    if path is not None:
        from jaxsel.data import save_zarr

        save_zarr(da, path, overwrite=True)
    da.attrs["cached"] = False
    return da


__all__ = ["cache_key", "ensemble_responses"]
