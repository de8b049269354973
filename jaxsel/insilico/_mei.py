"""The MEI engine: gradient ascent on the input of one neuron, vmapped over thousands of jobs.

A *job* is one (neuron, seed) pair: it optimises ``K`` images (``K = 1``; ``K > 1`` for
diverse MEIs) for one output unit of a model ``fn(params, raw_images) -> rates (batch,
neuron)``. The job is written for one neuron (image -> scalar, ``jax.grad``) and ``vmap``-ed
over a chunk of jobs; all chunks run through the same compiled program (the last one is
padded), so N neurons x S seeds cost one compilation and ``ceil(N*S / chunk_size)`` calls.

The optimisation variable lives in *unit space*: the model sees ``offset + scale * u``.
Constraints (fixed mean/std, fixed L2 norm, clip) are reparameterisations of ``u`` that are
also re-applied after every step; blur and min-max rescale are post-step projections;
FFT preconditioning is an optax gradient transformation in front of the optimizer.

Everything the user inspects comes back as an ``xarray.Dataset`` (see :func:`optimize_meis`).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from jaxsel._checks import check_finite_array, check_int, check_model_input, check_shape3
from jaxsel._errors import ConfigError
from jaxsel.insilico import _mei_parts as parts
from jaxsel.insilico._ensemble import model_pair
from jaxsel.insilico._mei_config import OBJECTIVES, OPTIMIZERS, MEIConfig
from jaxsel.insilico._mei_job import compiled_programs, jit_program, run_chunk, split_config

__all__ = [
    "OBJECTIVES",
    "OPTIMIZERS",
    "MEIConfig",
    "best_seed",
    "compiled_programs",
    "image_shape3",
    "jit_program",
    "neuron_indices",
    "optimize_meis",
    "output_size",
    "progress_callback",
    "run_chunk",
    "split_config",
]


# ----------------------------------------------------------------------- the driver
def output_size(fn, params, shape) -> int:
    """Number of neurons a model returns, from an abstract evaluation (no compute)."""
    out = jax.eval_shape(fn, params, jax.ShapeDtypeStruct((1,) + tuple(shape), jnp.float32))
    if len(out.shape) != 2:
        raise ConfigError(
            f"the model returned shape {out.shape} for one image; expected "
            "(batch, neuron) from fn(params, images (batch, channel, y, x))"
        )
    return int(out.shape[1])


def image_shape3(image_shape) -> tuple[int, int, int]:
    """(H, W) or (C, H, W) -> (C, H, W), validated."""
    shape = tuple(int(s) for s in image_shape)
    if len(shape) == 2:
        shape = (1,) + shape
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(f"image_shape = {image_shape!r}: expected (H, W) or (C, H, W)")
    return shape


def neuron_indices(neurons, n_out: int) -> np.ndarray:
    """Validate neuron indices into the model's output axis (None = all)."""
    idx = np.arange(n_out) if neurons is None else np.atleast_1d(np.asarray(neurons))
    if idx.dtype == bool:
        if idx.shape != (n_out,):
            raise ConfigError(f"neuron mask has shape {idx.shape}; expected ({n_out},)")
        idx = np.flatnonzero(idx)
    if not np.issubdtype(idx.dtype, np.integer):
        raise ConfigError(
            f"neurons must be integer indices into the model output, got dtype {idx.dtype}"
        )
    if idx.size == 0 or idx.min() < 0 or idx.max() >= n_out:
        raise ConfigError(
            f"neuron indices must lie in [0, {n_out}) and not be empty; got {idx[:5].tolist()}..."
        )
    return idx.astype(np.int32)


def progress_callback(
    progress: bool | Callable[[int, int], None] | None, desc: str, unit: str
) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """``(report, close)`` for a ``progress`` argument of the in-silico optimisers.

    ``progress`` is a callable ``progress(done, total)`` (used as is), ``True`` (a tqdm bar
    named ``desc`` counting ``unit``) or ``False``/``None`` (nothing).
    """
    if callable(progress):
        return progress, lambda: None
    if not progress:
        return (lambda done, total: None), lambda: None
    from tqdm.auto import tqdm

    bar = None

    def report(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=desc, unit=unit)
        bar.update(done - bar.n)

    def close() -> None:
        if bar is not None:
            bar.close()

    return report, close


def optimize_meis(
    fn,
    params=None,
    neurons=None,
    *,
    config: MEIConfig,
    image_shape,
    seeds: int = 1,
    start_images=None,
    group=None,
    rate_scale=None,
    neuron_id=None,
    chunk_size: int = 256,
    seed: int = 0,
    progress: bool | Callable[[int, int], None] = False,
) -> xr.Dataset:
    """Optimise MEIs (or inhibitory / discriminative / diverse inputs) for many neurons.

    Args:
      fn, params: the model: ``fn(params, raw (batch, C, H, W)) -> rates (batch, neuron)``;
        pure JAX, ``params`` a pytree (passed as an argument, never closed over). Or, with
        ``params`` omitted, ``fn`` is a model object: a ResponseModel, a ``FitResult`` or a
        ``ManyResult`` (its ensemble-mean model; see :func:`mei_confidence`).
      neurons: indices into the model's neuron axis (default: all).
      config: an :class:`MEIConfig` (see :mod:`jaxsel.insilico.recipes`).
      image_shape: (H, W) or (C, H, W) of the model's input.
      seeds: independent starts per neuron.
      start_images: (M, [C,] H, W) RAW images for ``start="natural"``; seed s uses image
        ``s % M``.
      group: (N,) boolean mask or index list of the comparison group (discriminative).
      rate_scale: (N,) divisor of every neuron's rate in the discriminative objective
        (e.g. its mean response; default 1).
      neuron_id: labels for ``neurons`` (default: the indices).
      chunk_size: jobs per compiled call (bounds memory); smaller runs are padded to the
        next power of two (at least 8), so runs of similar size share one program.
      seed: base random seed (start noise and jitter); results do not depend on
        ``chunk_size``.
      progress: ``True`` for a tqdm bar over the jobs (neuron x seed), or a callable
        ``progress(done, total)`` called after each compiled chunk (see
        :func:`progress_callback`).

    Returns:
      ``xarray.Dataset`` with ``mei`` (neuron, seed, [variant,] channel, y, x) raw images,
      ``activation`` (neuron, seed, [variant]) final model rate of the target neuron,
      ``trace`` (neuron, seed, [variant,] step) rate at each step (NaN after a plateau
      stop), ``steps_run`` (neuron, seed); coords ``neuron_id``, ``neuron_index``, ``seed``;
      ``attrs['config']`` is the configuration as JSON.

    Raises:
      ConfigError: a bad ``config``, ``image_shape``, ``seeds``, ``chunk_size`` or ``seed``.
      DataError: an ``image_shape`` the model cannot take (or not its declared shape), a
        model giving non-finite rates (NaN parameters), non-finite ``start_images``.
    """
    if not isinstance(config, MEIConfig):
        raise ConfigError(
            f"config must be an MEIConfig (see jaxsel.insilico.recipes), got "
            f"{type(config).__name__}"
        )
    where = "optimize_meis"
    fn, params = model_pair(fn, params)
    seeds = check_int(where, "seeds", seeds, minimum=1)
    check_int(where, "chunk_size", chunk_size, minimum=1)
    check_int(where, "seed", seed)
    shape = check_shape3(where, "image_shape", image_shape)
    n_out = check_model_input(where, fn, params, shape)
    idx = neuron_indices(neurons, n_out)
    if start_images is not None:
        check_finite_array(where, "start_images", start_images)
    aux = {"group": jnp.ones(n_out, jnp.float32), "rate_scale": jnp.ones(n_out, jnp.float32)}
    if config.objective == "discriminative":
        if group is None:
            raise ConfigError(
                "the discriminative objective needs group= (neurons to compare "
                "against, a boolean mask or indices)"
            )
        aux["group"] = jnp.asarray(
            np.isin(np.arange(n_out), neuron_indices(group, n_out)), jnp.float32
        )
    if rate_scale is not None:
        rs = np.asarray(rate_scale, np.float32)
        if rs.shape != (n_out,) or not np.all(rs > 0):
            raise ConfigError(f"rate_scale has shape {rs.shape}; expected ({n_out},) positive")
        aux["rate_scale"] = jnp.asarray(rs)
    natural = _natural_starts(start_images, shape, config)
    tgt = np.repeat(idx, seeds).astype(np.int32)
    sid = np.tile(np.arange(seeds), len(idx)).astype(np.int32)
    n_jobs = len(tgt)
    chunk = min(int(chunk_size), max(8, 1 << max(n_jobs - 1, 0).bit_length()))
    base_code = jnp.uint32(int(seed) % (1 << 32))
    static, hp = split_config(config)
    outs = []
    report, close = progress_callback(progress, "MEIs", "MEI")
    for s in range(0, n_jobs, chunk):
        sl = np.arange(s, s + chunk) % n_jobs  # pad the last chunk
        starts = np.stack([_start(config, seed, tgt[j], sid[j], natural, shape) for j in sl])
        res = run_chunk(
            params,
            jnp.asarray(tgt[sl]),
            jnp.asarray(sid[sl]),
            jnp.asarray(starts),
            aux,
            base_code,
            hp,
            fn=fn,
            cfg=static,
        )
        keep = min(chunk, n_jobs - s)
        outs.append(jax.tree.map(lambda a: np.asarray(a)[:keep], res))
        report(s + keep, n_jobs)
    close()
    raw, act, trace, steps_run = (np.concatenate(z) for z in zip(*outs, strict=True))
    return _to_dataset(raw, act, trace, steps_run, idx, seeds, config, neuron_id)


_SALT = 0x4D4549  # keeps job streams apart from np.random.default_rng(seed) streams


def _start(cfg: MEIConfig, seed: int, target: int, seed_index: int, natural, shape):
    """The start of one job: a generator seeded by (seed, neuron, seed index), so results do
    not depend on chunking."""
    rng = np.random.default_rng((int(seed), int(target), int(seed_index), _SALT))
    return parts.start_image(
        cfg.start,
        rng,
        (cfg.n_variants,) + tuple(shape),
        std=cfg.start_std,
        gray=cfg.gray,
        black=-cfg.offset / cfg.scale,
        natural=natural[seed_index % len(natural)],
    )


def _natural_starts(start_images, shape, cfg: MEIConfig) -> np.ndarray:
    if cfg.start != "natural":
        return np.zeros((1,) + shape, np.float32)
    if start_images is None:
        raise ConfigError("start='natural' needs start_images= (M, [C,] H, W) raw images")
    im = np.asarray(start_images, np.float32)
    if im.ndim == 3:
        im = im[:, None]
    if im.shape[1:] != shape:
        raise ConfigError(f"start_images have shape {im.shape}; expected (M, {shape})")
    return ((im - cfg.offset) / cfg.scale).astype(np.float32)


def _to_dataset(raw, act, trace, steps_run, idx, seeds, cfg: MEIConfig, neuron_id):
    n = len(idx)
    k = cfg.n_variants
    c, h, w = raw.shape[-3:]
    raw = raw.reshape(n, seeds, k, c, h, w)
    act = act.reshape(n, seeds, k)
    trace = np.moveaxis(trace.reshape(n, seeds, cfg.steps, k), 2, 3)  # (n, s, k, step)
    ids = idx if neuron_id is None else np.asarray(neuron_id)
    if len(ids) != n:
        raise ConfigError(f"{len(ids)} neuron_id labels for {n} neurons")
    vd = ("variant",) if k > 1 else ()
    sq = (lambda a: a) if k > 1 else (lambda a: a[:, :, 0])
    ds = xr.Dataset(
        {
            "mei": (("neuron", "seed") + vd + ("channel", "y", "x"), sq(raw)),
            "activation": (("neuron", "seed") + vd, sq(act)),
            "trace": (("neuron", "seed") + vd + ("step",), sq(trace)),
            "steps_run": (("neuron", "seed"), steps_run.reshape(n, seeds)),
        },
        coords={
            "neuron_id": ("neuron", ids),
            "neuron_index": ("neuron", idx),
            "seed": np.arange(seeds),
            "step": np.arange(cfg.steps),
        },
        attrs={"config": json.dumps(cfg.to_dict()), "recipe": cfg.name},
    )
    return ds


def best_seed(result: xr.Dataset) -> xr.Dataset:
    """Per neuron, the seed (start) whose MEI reached the highest final activation."""
    act = result["activation"]
    if "variant" in act.dims:
        act = act.sum("variant")
    best = act.fillna(-np.inf).argmax("seed")
    out = result.isel(seed=best)
    return out.assign_coords(best_seed=("neuron", best.values)).drop_vars("seed")
