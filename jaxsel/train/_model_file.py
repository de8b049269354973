"""Self-contained model files: :func:`save_model`, :func:`load_model`, :func:`as_response_model`.

A saved model is ONE folder that runs on raw images without the data it was trained on::

    <path>/model.json    format_version, kind ("single" or "ensemble_mean"), config (model +
                         train), image_shape, neuron ids (+ per-neuron coords), units,
                         provenance (jaxsel._provenance: version, git commit, host, device, UTC
                         date, Python/JAX versions; plus data fingerprint,
                         seed, best epoch and score)
    <path>/arrays/       orbax checkpoint of the parameter pytree {"params", "state",
                         "standardizer"} (no optimizer state)

The folder is written into a temporary sibling and renamed into place, so a failed save
never leaves a half-written model. ``format_version`` only grows: a file written by this
version loads in later ones (``tests/data/saved_model_v1`` is kept to check that).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import cast

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from jaxsel._atomic import atomic_directory
from jaxsel._compile_cache import cached
from jaxsel._errors import DataError
from jaxsel._provenance import provenance
from jaxsel.models import Model, ResponseModel, build_model
from jaxsel.train._config import Config
from jaxsel.train._fit import FitResult, response_function

FORMAT_VERSION = 1
KINDS = ("single", "ensemble_mean")
META_FILE = "model.json"
ARRAYS_DIR = "arrays"


# --------------------------------------------------------------------------- building models


def _ensemble_mean_fn(model: Model):
    """``fn(params, raw_images)``: the mean rate over a stack of models (leading axis); the
    same function object per model (so jit caches it)."""

    def build():
        one = jax.vmap(response_function(model), in_axes=(0, None))

        def fn(params, images):
            return jnp.mean(one(params, images), axis=0)

        return fn

    return cached("response_fn", (model, "ensemble_mean"), build)


def _single_fn(model: Model):
    return cached("response_fn", (model, "single"), lambda: response_function(model))


def _neuron_coords(dataset, neuron_id) -> dict:
    """Per-neuron coords of ``dataset`` (other than ``neuron_id``), in ``neuron_id`` order."""
    if dataset is None:
        return {}
    ids = dataset["neuron_id"].values
    pos = {v.item() if hasattr(v, "item") else v: i for i, v in enumerate(ids)}
    try:
        idx = np.array([pos[v.item() if hasattr(v, "item") else v] for v in neuron_id])
    except KeyError as err:
        raise DataError(
            f"neuron {err.args[0]!r} of the model is not in the dataset",
            field="dataset",
            expected="the dataset the model was trained on",
        ) from None
    out = {}
    for name, c in dataset.coords.items():
        if name != "neuron_id" and c.dims == ("neuron",) and c.dtype.kind in "biufUSO":
            out[str(name)] = np.asarray(c.values)[idx]
    return out


def _provenance(result, **extra) -> dict:
    return provenance(dataset_fingerprint=str(result.fingerprint), **extra)


def fit_response_model(result: FitResult, *, dataset=None) -> ResponseModel:
    """A :class:`FitResult` as a :class:`ResponseModel` (see ``FitResult.response_model``)."""
    fn, params = result.response_fn()
    neuron_id = np.asarray(result.neuron_id)
    meta = {
        "kind": "single",
        "config": result.config.to_dict(),
        "config_name": result.config.name,
        "provenance": _provenance(
            result,
            seed=int(result.seed),
            best_epoch=int(result.best_epoch),
            best_score=float(result.best_score),
            stopped=str(result.stopped),
        ),
    }
    return ResponseModel(
        cast(Callable, fn),
        params,
        image_shape=tuple(int(s) for s in result.image_shape),
        neuron_id=neuron_id,
        coords=_neuron_coords(dataset, neuron_id),
        meta=meta,
    )


def many_response_model(result, which: str | int = "mean", *, dataset=None) -> ResponseModel:
    """A ``ManyResult`` as a :class:`ResponseModel`: the ensemble mean or one member.

    Args:
      result: a :class:`~jaxsel.ManyResult`.
      which: ``"mean"`` (the mean rate over all models; they must model the same neurons)
        or a model index ``k`` (that member alone).
      dataset: optional training dataset for per-neuron coords.
    """
    if not isinstance(which, str):
        return fit_response_model(result.member(int(which)), dataset=dataset)
    if which != "mean":
        raise DataError(f"which = {which!r}", field="which", expected="'mean' or a model index")
    targets = np.asarray(result.targets)
    if not (targets == targets[:1]).all():
        raise DataError(
            "the models predict different neurons, so they have no ensemble mean",
            field="which",
            expected="a model index (which=k)",
        )
    _, params = result.response_fn()
    params = jax.tree.map(np.asarray, params)
    neuron_id = np.asarray(result.neuron_id)[0]
    meta = {
        "kind": "ensemble_mean",
        "n_models": int(result.n_models),
        "config": result.config.to_dict(),
        "config_name": result.config.name,
        "provenance": _provenance(
            result,
            seed=[int(s) for s in result.seeds],
            best_epoch=[int(e) for e in result.best_epoch],
            best_score=[float(s) for s in result.best_score],
            stopped=[str(s) for s in result.stopped],
        ),
    }
    return ResponseModel(
        _ensemble_mean_fn(result.model),
        params,
        image_shape=tuple(int(s) for s in result.image_shape),
        neuron_id=neuron_id,
        coords=_neuron_coords(dataset, neuron_id),
        meta=meta,
    )


def as_response_model(model, *, which: str | int = "mean", dataset=None) -> ResponseModel:
    """Any model jaxsel knows as a :class:`ResponseModel`.

    Args:
      model: a :class:`ResponseModel`, a ``FitResult``, a ``ManyResult``, an in-silico pair
        ``(fn, params)`` (no metadata) or the path of a folder written by :func:`save_model`.
      which: for a ``ManyResult``: ``"mean"`` (ensemble mean) or a model index.
      dataset: optional training dataset whose per-neuron coords (``area``, ``session``, ...)
        are attached (``FitResult``/``ManyResult`` only).

    Raises:
      DataError: anything else (naming its type), or a bad model folder.
    """
    if isinstance(model, ResponseModel):
        return model
    if isinstance(model, (str, Path)):
        return load_model(model)
    if isinstance(model, FitResult):
        return fit_response_model(model, dataset=dataset)
    if hasattr(model, "member") and hasattr(model, "targets"):
        return many_response_model(model, which, dataset=dataset)
    if isinstance(model, (tuple, list)) and len(model) == 2 and callable(model[0]):
        return ResponseModel(model[0], model[1])
    raise DataError(
        f"got a {type(model).__name__}",
        field="model",
        expected="a ResponseModel, FitResult, ManyResult, (fn, params) pair or "
        "a saved model folder",
    )


def predict_responses(model, images, *, image_id=None, batch_size: int = 256):
    """Labelled predictions: ``xr.DataArray`` ``responses`` (image, neuron).

    Args:
      model: anything :func:`as_response_model` accepts (e.g. a saved model folder).
      images: (n, channel, y, x) or (n, y, x) raw images.
      image_id: optional (n,) ids for the ``image`` coord (default 0..n-1).
      batch_size: images per model call.

    Returns:
      Rates with coords ``image_id``, ``neuron_id`` and the model's per-neuron coords;
      attrs ``units`` and ``model`` (its config name).
    """
    import xarray as xr

    from jaxsel.models import predict

    m = as_response_model(model)
    rates = predict(m, images, batch_size=batch_size)
    n = rates.shape[0]
    coords = {"image_id": ("image", np.arange(n) if image_id is None else np.asarray(image_id))}
    if len(m.neuron_id) == rates.shape[1]:
        coords["neuron_id"] = ("neuron", np.asarray(m.neuron_id))
        coords.update({k: ("neuron", np.asarray(v)) for k, v in m.coords.items()})
    units = m.meta.get("units", {}).get("rates", "response units of the training data")
    return xr.DataArray(
        rates,
        dims=("image", "neuron"),
        coords=coords,
        name="responses",
        attrs={"units": units, "model": str(m.meta.get("config_name", ""))},
    )


# --------------------------------------------------------------------------- save / load


def _json_array(a) -> dict:
    a = np.asarray(a)
    return {"dtype": a.dtype.str, "values": a.tolist()}


def _from_json_array(d: dict) -> np.ndarray:
    return np.asarray(d["values"], dtype=np.dtype(d["dtype"]))


def save_model(model, path, *, dataset=None, which="mean", overwrite: bool = False) -> Path:
    """Save a model as one self-contained folder (see the module docstring).

    Args:
      model: a ``FitResult``, ``ManyResult`` or a :class:`ResponseModel` from one of them
        (or from :func:`load_model`); a bare ``(fn, params)`` pair has no architecture and
        cannot be saved.
      path: the folder to write (created atomically).
      dataset: optional training dataset whose per-neuron coords are saved with the model.
      which: for a ``ManyResult``: ``"mean"`` or a model index.
      overwrite: replace an existing non-empty folder.

    Returns:
      ``path``.

    Raises:
      DataError: a model without an architecture config, or an existing folder.
    """
    m = as_response_model(model, which=which, dataset=dataset)
    if m.meta.get("kind") not in KINDS or "config" not in m.meta:
        raise DataError(
            "this model has no architecture config",
            field="model",
            expected="a model from fit, fit_many or load_model",
        )
    if dataset is not None and not m.coords:
        m = ResponseModel(
            m.fn, m.params, m.image_shape, m.neuron_id, _neuron_coords(dataset, m.neuron_id), m.meta
        )
    path = Path(path)
    meta = {
        "format_version": FORMAT_VERSION,
        **{k: v for k, v in m.meta.items() if k not in ("path", "format_version")},
        "image_shape": [int(s) for s in m.image_shape],
        "neuron_id": _json_array(m.neuron_id),
        "coords": {k: _json_array(v) for k, v in m.coords.items()},
        "units": {
            "images": "raw pixel units of the training data",
            "rates": "response units of the training data (e.g. spike counts)",
        },
    }
    text = json.dumps(meta, indent=1)
    arrays = jax.tree.map(np.asarray, m.params)
    with atomic_directory(path, overwrite=overwrite) as tmp:
        with ocp.StandardCheckpointer() as ckptr:
            ckptr.save(tmp.absolute() / ARRAYS_DIR, arrays)
        (tmp / META_FILE).write_text(text)
    return path


def read_model_meta(path) -> dict:
    """The ``model.json`` of a saved model folder, checked (format version, keys)."""
    path = Path(path)
    f = path / META_FILE
    if not path.is_dir():
        raise DataError(
            "no such model folder",
            file=path,
            field="model",
            expected="a folder written by jaxsel save_model",
        )
    try:
        meta = json.loads(f.read_text())
    except FileNotFoundError:
        raise DataError(
            f"no {META_FILE} in the folder",
            file=path,
            field="model",
            expected="a folder written by jaxsel save_model",
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(
            f"corrupt {META_FILE} ({err})",
            file=f,
            field="model",
            expected="a folder written by jaxsel save_model; save it again",
        ) from None
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if not isinstance(version, int):
        raise DataError(
            f"format_version = {version!r}",
            file=f,
            field="format_version",
            expected="an integer format version",
        )
    if version > FORMAT_VERSION:
        raise DataError(
            f"written in model format {version}; this jaxsel reads formats up to {FORMAT_VERSION}",
            file=f,
            field="format_version",
            expected="a newer jaxsel (upgrade it) to load this model",
        )
    missing = [k for k in ("kind", "config", "image_shape", "neuron_id") if k not in meta]
    if missing or meta["kind"] not in KINDS:
        raise DataError(
            f"missing keys {missing} or unknown kind {meta.get('kind')!r}",
            file=f,
            field="model",
            expected=f"kind in {KINDS}",
        )
    return meta


def _restore_arrays(path: Path, like) -> dict:
    try:
        with ocp.StandardCheckpointer() as ckptr:
            tree = ckptr.restore((path / ARRAYS_DIR).absolute())
    except Exception as err:
        raise DataError(
            f"cannot read the parameters ({type(err).__name__}: {str(err)[:200]})",
            file=path / ARRAYS_DIR,
            field="arrays",
            expected="the orbax checkpoint written by save_model",
        ) from None
    got = jax.tree.map(lambda a: tuple(np.shape(a)), tree)
    want = jax.tree.map(lambda a: tuple(a.shape), like)
    if jax.tree.structure(got) != jax.tree.structure(want) or got != want:
        raise DataError(
            "the parameters do not match the architecture in model.json",
            file=path / ARRAYS_DIR,
            field="arrays",
            expected="the arrays written with this model.json",
        )
    return tree


def load_model(path) -> ResponseModel:
    """Load a folder written by :func:`save_model`: no dataset needed, runs on raw images.

    Returns:
      A :class:`ResponseModel` (``model.predict(raw_images)`` or
      ``jaxsel.models.predict(model, raw_images)``; ``fn, params = model``).

    Raises:
      DataError: naming the path, for a missing or corrupt folder or a model written in a
        newer format.
    """
    path = Path(path)
    meta = read_model_meta(path)
    cfg = Config.from_dict({**meta["config"], "name": meta.get("config_name", "custom")})
    image_shape = tuple(int(s) for s in meta["image_shape"])
    neuron_id = _from_json_array(meta["neuron_id"])
    model = build_model(cfg.model, image_shape=image_shape, n_neurons=len(neuron_id))
    src = None
    if cfg.model.grid_mean_predictor is not None and cfg.model.readout == "gaussian":
        src = np.zeros((len(neuron_id), cfg.model.grid_mean_predictor.input_dimensions), np.float32)
    params, state = jax.eval_shape(lambda k: model.init(k, source_grid=src), jax.random.key(0))
    img = image_shape if cfg.train.per_pixel else ()
    like = {
        "params": params,
        "state": state,
        "standardizer": {
            "image_mean": np.zeros(img),
            "image_std": np.zeros(img),
            "response_scale": np.zeros(len(neuron_id)),
        },
    }
    if meta["kind"] == "ensemble_mean":
        k = int(meta["n_models"])
        like = jax.tree.map(lambda a: np.zeros((k,) + tuple(a.shape)), like)
        fn = _ensemble_mean_fn(model)
    else:
        fn = _single_fn(model)
    tree = _restore_arrays(path, like)
    coords = {k: _from_json_array(v) for k, v in meta.get("coords", {}).items()}
    keep = {
        k: v
        for k, v in meta.items()
        if k not in ("image_shape", "neuron_id", "coords", "format_version")
    }
    keep["format_version"] = int(meta["format_version"])
    keep["path"] = str(path)
    return ResponseModel(
        fn, tree, image_shape=image_shape, neuron_id=neuron_id, coords=coords, meta=keep
    )


__all__ = [
    "FORMAT_VERSION",
    "as_response_model",
    "fit_response_model",
    "load_model",
    "many_response_model",
    "predict_responses",
    "read_model_meta",
    "save_model",
]
