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

import dataclasses
import json
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from jaxsel._checks import (
    check_finite_array,
    check_int,
    check_model_input,
    check_shape3,
)
from jaxsel._dataclass_io import from_dict, to_dict, traced
from jaxsel._errors import ConfigError
from jaxsel.data import BACKGROUND, SCALE
from jaxsel.insilico import _mei_parts as parts
from jaxsel.insilico._mei_job import compiled_programs, jit_program, run_chunk, split_config
from jaxsel.insilico._mei_parts import STARTS

__all__ = [
    "OBJECTIVES",
    "OPTIMIZERS",
    "MEIConfig",
    "best_seed",
    "compiled_programs",
    "discriminative_meis",
    "diverse_meis",
    "image_shape3",
    "jit_program",
    "most_inhibitory_inputs",
    "neuron_indices",
    "optimize_meis",
    "output_size",
    "progress_callback",
    "run_chunk",
    "split_config",
]

OPTIMIZERS = ("sgd", "momentum", "adam")
OBJECTIVES = ("max", "min", "discriminative")
# numeric fields that must be finite (None allowed where the field is optional)
_FLOAT_FIELDS = (
    "lr",
    "momentum",
    "lr_decay",
    "start_std",
    "gray",
    "offset",
    "scale",
    "mean",
    "std",
    "norm",
    "clip",
    "rescale",
    "precondition_alpha",
    "blur",
    "contrast_target",
    "contrast_weight",
    "tol",
    "diversity_weight",
)
_NONNEGATIVE_FIELDS = (
    "start_std",
    "precondition_alpha",
    "contrast_weight",
    "tol",
    "diversity_weight",
)


@dataclass(frozen=True)
class MEIConfig:
    """How one MEI is optimised (every field is a plain, hashable value).

    Fields declared ``traced(...)`` are numbers that enter the optimisation as traced
    arrays (:func:`split_config`): changing them reuses the compiled program.

    Attributes:
      steps: maximum number of ascent steps.
      optimizer: ``"sgd"``, ``"momentum"`` (SGD with ``momentum``) or ``"adam"``.
      lr: learning rate (in unit space).
      momentum: momentum of ``"momentum"``.
      lr_decay: final learning rate as a fraction of ``lr`` (cosine decay; 1 = constant).
      start: ``"noise"``, ``"gray"``, ``"black"`` or ``"natural"`` (needs ``start_images``).
      start_std: std of the white-noise start (unit space).
      gray: unit-space value of the gray start (and the centre of the noise start).
      offset, scale: raw image = ``offset + scale * u``. Defaults are the 8-bit / twin
        convention (``u`` is the contrast image ``(x - 127.5) / 127.5``).
      mean, std: if both set, every image has exactly this mean and std (unit space).
      norm: if set, every image has this L2 norm (after removing its mean if ``center``).
      center: remove the image mean before fixing the norm.
      clip: ``(lo, hi)`` pixel range in unit space, or None (applied last, straight-through
        gradient).
      rescale: ``(lo, hi)``: after each step map the image's min..max onto this range.
      precondition_alpha: FFT gradient filter ``1/|k|^alpha`` (0 = off).
      blur: ``(sigma_start, sigma_end)`` in pixels, decaying over ``steps``, or None.
      blur_schedule: ``"linear"`` or ``"accelerating"`` (step i moves the
        fraction i / steps of the remaining way to the end sigma, so it falls off within the
        first ~sqrt(2 * steps) steps; ``"seed002"`` is a former name of ``"accelerating"``).
      contrast_target, contrast_weight: penalty ``weight * |target - std(image)|``.
      jitter: maximal random translation (pixels) of the image before each model call.
      patience: stop a job when its objective has not improved by a relative ``tol`` for
        this many steps (0 = always run ``steps``).
      tol: relative improvement that resets the patience counter.
      objective: ``"max"`` (MEI), ``"min"`` (most inhibitory input) or
        ``"discriminative"`` (target minus the mean of a group, rates divided by
        ``rate_scale``).
      n_variants: images per job (``K``), optimised jointly.
      diversity_weight: weight of the mean pairwise cosine similarity of the K images.
      name: a label stored with the results.
    """

    steps: int = 500
    optimizer: str = "adam"
    lr: float = traced(0.01)
    momentum: float = traced(0.9)
    lr_decay: float = traced(1.0)
    start: str = "noise"
    start_std: float = traced(0.1)
    gray: float = traced(0.0)
    offset: float = traced(BACKGROUND)
    scale: float = traced(SCALE)
    mean: float | None = traced(None)
    std: float | None = traced(None)
    norm: float | None = traced(None)
    center: bool = True
    clip: tuple[float, float] | None = traced(None)
    rescale: tuple[float, float] | None = traced(None)
    precondition_alpha: float = traced(0.0)
    blur: tuple[float, float] | None = traced(None)
    blur_schedule: str = "linear"
    contrast_target: float | None = traced(None)
    contrast_weight: float = traced(0.0)
    jitter: int = 0
    patience: int = traced(0)
    tol: float = traced(1e-5)
    objective: str = "max"
    n_variants: int = 1
    diversity_weight: float = traced(0.0)
    name: str = "custom"

    def __post_init__(self):
        def bad(field, value, expected):
            raise ConfigError(f"MEIConfig.{field} = {value!r}: expected {expected}")

        for field in ("steps", "n_variants", "jitter", "patience"):
            v = getattr(self, field)
            lo = 1 if field in ("steps", "n_variants") else 0
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
                bad(field, v, f"an integer >= {lo}")
        for field in _FLOAT_FIELDS:
            v = getattr(self, field)
            if v is None:
                continue
            vs = v if isinstance(v, (tuple, list)) else (v,)
            if not all(
                isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)
                for x in vs
            ):
                bad(field, v, "finite numbers")
        for field in _NONNEGATIVE_FIELDS:
            if getattr(self, field) < 0:
                bad(field, getattr(self, field), "a number >= 0")
        if not 0 <= self.momentum < 1:
            bad("momentum", self.momentum, "a fraction in [0, 1)")
        if self.optimizer not in OPTIMIZERS:
            bad("optimizer", self.optimizer, f"one of {OPTIMIZERS}")
        if self.start not in STARTS:
            bad("start", self.start, f"one of {STARTS}")
        if self.objective not in OBJECTIVES:
            bad("objective", self.objective, f"one of {OBJECTIVES}")
        if not self.lr > 0:
            bad("lr", self.lr, "a positive learning rate")
        if not 0 < self.lr_decay <= 1:
            bad("lr_decay", self.lr_decay, "a fraction in (0, 1]")
        if self.scale == 0:
            bad("scale", self.scale, "a non-zero raw/unit scale")
        if (self.mean is None) != (self.std is None):
            bad("mean/std", (self.mean, self.std), "both set or both None")
        if self.std is not None and not self.std > 0:
            bad("std", self.std, "a positive std")
        if self.norm is not None and not self.norm > 0:
            bad("norm", self.norm, "a positive L2 norm")
        if self.norm is not None and self.std is not None:
            bad("norm", self.norm, "None when mean/std are fixed (choose one constraint)")
        for field in ("clip", "rescale"):
            v = getattr(self, field)
            if v is not None and (len(v) != 2 or not v[0] < v[1]):
                bad(field, v, "a (lo, hi) pair with lo < hi, or None")
        if self.blur is not None and (len(self.blur) != 2 or min(self.blur) < 0):
            bad("blur", self.blur, "(sigma_start, sigma_end) >= 0, or None")
        if self.blur_schedule == "seed002":  # former name
            object.__setattr__(self, "blur_schedule", "accelerating")
        if self.blur_schedule not in ("linear", "accelerating"):
            bad("blur_schedule", self.blur_schedule, "'linear' or 'accelerating'")
        if self.contrast_weight and self.contrast_target is None:
            bad("contrast_target", None, "a target std when contrast_weight is set")
        if int(self.n_variants) < 1:
            bad("n_variants", self.n_variants, "an integer >= 1")
        if self.jitter < 0 or self.patience < 0:
            bad("jitter/patience", (self.jitter, self.patience), "non-negative integers")

    def replace(self, **changes) -> MEIConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The config as plain JSON-able data (round-trips through :meth:`from_dict`)."""
        return to_dict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> MEIConfig:
        """Build from a plain dict (e.g. a results file's ``config`` attribute), strictly.

        Raises:
          ConfigError: an unknown key (naming the closest valid key) or a bad value.
        """
        return from_dict(cls, d, where="mei")


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
    params,
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
        pure JAX, ``params`` a pytree (passed as an argument, never closed over).
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


def most_inhibitory_inputs(fn, params, neurons=None, *, config: MEIConfig, **kwargs) -> xr.Dataset:
    """Inputs that minimise each neuron's rate (same options as :func:`optimize_meis`)."""
    return optimize_meis(fn, params, neurons, config=config.replace(objective="min"), **kwargs)


def discriminative_meis(
    fn, params, neurons=None, *, group, config: MEIConfig, rate_scale=None, **kwargs
) -> xr.Dataset:
    """Inputs that drive each target neuron more than the mean of a comparison group.

    The objective is ``r_i / s_i - mean_{j in group, j != i} r_j / s_j`` with ``s`` =
    ``rate_scale`` (e.g. each neuron's mean response, so all neurons count alike).
    """
    return optimize_meis(
        fn,
        params,
        neurons,
        config=config.replace(objective="discriminative"),
        group=group,
        rate_scale=rate_scale,
        **kwargs,
    )


def diverse_meis(
    fn,
    params,
    neurons=None,
    *,
    config: MEIConfig,
    n_variants: int = 4,
    diversity_weight: float = 1.0,
    **kwargs,
) -> xr.Dataset:
    """Several MEIs per neuron, optimised jointly with a pairwise-similarity penalty.

    The objective of a job is ``sum_k f_i(x_k) - diversity_weight * mean_{k != l}
    cos(x_k, x_l)``; the result has a ``variant`` dimension. Choose ``diversity_weight`` on
    the scale of the neuron's rates.
    """
    cfg = config.replace(n_variants=int(n_variants), diversity_weight=float(diversity_weight))
    return optimize_meis(fn, params, neurons, config=cfg, **kwargs)
