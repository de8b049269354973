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
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr

from jaxsel._dataclass_io import from_dict, to_dict, traced, traced_fields
from jaxsel.errors import ConfigError
from jaxsel.insilico import mei_parts as parts
from jaxsel.insilico.mei_parts import STARTS

OPTIMIZERS = ("sgd", "momentum", "adam")
OBJECTIVES = ("max", "min", "discriminative")


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
      blur_schedule: ``"linear"`` or ``"seed002"`` (see :func:`mei_parts.blur_sigma`).
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
    offset: float = traced(127.5)
    scale: float = traced(127.5)
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

        if int(self.steps) < 1:
            bad("steps", self.steps, "an integer >= 1")
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
        if self.blur_schedule not in ("linear", "seed002"):
            bad("blur_schedule", self.blur_schedule, "'linear' or 'seed002'")
        if self.contrast_weight and self.contrast_target is None:
            bad("contrast_target", None, "a target std when contrast_weight is set")
        if int(self.n_variants) < 1:
            bad("n_variants", self.n_variants, "an integer >= 1")
        if self.jitter < 0 or self.patience < 0:
            bad("jitter/patience", (self.jitter, self.patience), "non-negative integers")

    def replace(self, **changes) -> "MEIConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The config as plain JSON-able data (round-trips through :meth:`from_dict`)."""
        return to_dict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "MEIConfig":
        """Build from a plain dict (e.g. a results file's ``config`` attribute), strictly.

        Raises:
          ConfigError: an unknown key (naming the closest valid key) or a bad value.
        """
        return from_dict(cls, d, where="mei")


# ------------------------------------------------------------------------ one job
# Numbers that only enter arithmetic travel as traced arguments (``hp``), so changing a
# learning rate, a budget or a blur width reuses the compiled program; the static part of
# the config (a canonical MEIConfig) only says which parts are present.
_NUMERIC = traced_fields(MEIConfig)      # the fields declared traced(...) above


def split_config(cfg: MEIConfig) -> tuple[MEIConfig, dict]:
    """``(static, hp)``: the program structure (a canonical config) and its numbers."""
    on = {"precondition_alpha": cfg.precondition_alpha != 0,
          "contrast_weight": cfg.contrast_weight != 0, "patience": cfg.patience > 0,
          "diversity_weight": cfg.diversity_weight != 0 and cfg.n_variants > 1}
    hp = {}
    for f in _NUMERIC:
        v = getattr(cfg, f)
        if f == "contrast_target":
            v = v if on["contrast_weight"] else None
        if v is None or not on.get(f, True):
            continue
        hp[f] = jnp.asarray(v, jnp.float32)
    hp["sign"] = jnp.float32(-1.0 if cfg.objective == "min" else 1.0)
    hp["disc"] = jnp.float32(cfg.objective == "discriminative")
    hp.setdefault("patience", jnp.float32(0.0))
    static = cfg.replace(
        start="noise", objective="max", lr=1.0, momentum=0.9, lr_decay=0.5, start_std=1.0,
        gray=0.0, offset=0.0, scale=1.0,
        mean=None if cfg.std is None else 0.0, std=None if cfg.std is None else 1.0,
        norm=None if cfg.norm is None else 1.0,
        clip=None if cfg.clip is None else (0.0, 1.0),
        rescale=None if cfg.rescale is None else (0.0, 1.0),
        precondition_alpha=1.0 if on["precondition_alpha"] else 0.0,
        blur=None if cfg.blur is None else (1.0, 0.0),
        contrast_target=0.0 if on["contrast_weight"] else None,
        contrast_weight=1.0 if on["contrast_weight"] else 0.0, tol=0.0,
        patience=0,
        diversity_weight=1.0 if on["diversity_weight"] else 0.0, name="")
    return static, hp


class _View:
    """The static config with its present numbers replaced by traced values."""

    def __init__(self, static: MEIConfig, hp: dict):
        for f in dataclasses.fields(static):
            setattr(self, f.name, getattr(static, f.name))
        for f in _NUMERIC:
            if f in hp:
                v = hp[f]
                setattr(self, f, (v[0], v[1]) if v.ndim == 1 else v)
            elif f in ("precondition_alpha", "contrast_weight", "diversity_weight"):
                setattr(self, f, 0)
        for f in ("sign", "disc"):
            setattr(self, f, hp[f])


def _constrain(u, h):
    """Reparameterisation shared by the forward map and the post-step projection.

    The clip is straight-through (clipped values forward, identity gradient), so pixels at
    the bound keep receiving gradient; where it binds it wins over a norm/std constraint.
    """
    if h.norm is not None:
        u = parts.fix_norm(u, h.norm, h.center)
    elif h.std is not None:
        u = parts.fix_mean_std(u, h.mean, h.std)
    if h.clip is not None:
        u = u + jax.lax.stop_gradient(parts.clip_range(u, *h.clip) - u)
    return u


def _project(u, step, h, blur: bool = True):
    if blur and h.blur is not None:
        u = parts.gaussian_blur(u, parts.blur_sigma(step, h.steps, *h.blur, h.blur_schedule))
    if h.rescale is not None:
        u = parts.rescale_range(u, *h.rescale)
    return _constrain(u, h)


def to_raw_images(u, cfg):
    """Unit-space images -> raw images shown to the model."""
    return cfg.offset + cfg.scale * u


def _objective(u, code, fn, params, target, aux, h):
    img = _constrain(u, h)
    rates = fn(params, to_raw_images(parts.jitter(img, code, h.jitter), h))   # (K, N)
    act = rates[:, target]
    # max: sign 1, disc 0; min: sign -1; discriminative: target minus group mean (scaled)
    r = rates / aux["rate_scale"]
    others = aux["group"] * (1.0 - jax.nn.one_hot(target, rates.shape[1]))
    contrast = h.disc * (r @ others) / jnp.maximum(jnp.sum(others), 1.0)
    obj = h.sign * jnp.sum(r[:, target] - contrast)
    if h.contrast_target is not None:
        obj = obj - parts.contrast_penalty(img, h.contrast_target, h.contrast_weight)
    return obj - parts.similarity_penalty(img, h.diversity_weight), act


def _optimizer(h) -> optax.GradientTransformation:
    lr = optax.cosine_decay_schedule(h.lr, h.steps, alpha=h.lr_decay)   # lr_decay 1: constant
    if h.optimizer == "sgd":
        opt = optax.sgd(lr)
    elif h.optimizer == "momentum":
        opt = optax.sgd(lr, momentum=h.momentum)
    else:
        opt = optax.adam(lr)
    if not parts.is_zero(h.precondition_alpha):
        opt = optax.chain(parts.preconditioner(h.precondition_alpha), opt)
    return opt


def _job_parts(cfg: MEIConfig, hp: dict):
    """``(h, tx)``: the traced config view and the optimizer of a job."""
    h = _View(cfg, hp)
    return h, _optimizer(h)


def init_job(target, seed_index, u0, base_code, hp: dict, cfg: MEIConfig):
    """The optimisation state of one (neuron, seed) job before its first step.

    Args:
      target: index of the neuron (model output column).
      seed_index: index of the seed.
      u0: (K, C, H, W) unit-space start (:func:`mei_parts.start_image`).
      base_code: uint32 from the base seed; jitter draws hash it with target, seed and step.
      hp, cfg: numbers and static structure from :func:`split_config`.

    Returns:
      the state: ``u``, ``opt``, ``step``, ``best``, ``stall``, ``done``, ``code``, ``trace``
      (steps, K).
    """
    h, tx = _job_parts(cfg, hp)
    code = parts.hash32(base_code ^ parts.hash32(
        jnp.uint32(target) * jnp.uint32(0x9E3779B9) + jnp.uint32(seed_index)))
    u0 = _project(u0, 0, h, blur=False)
    return dict(u=u0, opt=tx.init(u0), step=jnp.int32(0), best=jnp.float32(-jnp.inf),
                stall=jnp.int32(0), done=jnp.bool_(False), code=code,
                trace=jnp.full((h.steps, h.n_variants), jnp.nan, jnp.float32))


def step_job(fn, params, target, c, aux, hp: dict, cfg: MEIConfig):
    """One ascent step of one job (a job that has finished is returned unchanged).

    Args:
      fn, params: the model; ``fn(params, raw (batch, C, H, W)) -> (batch, neuron)``.
      target: index of the neuron.
      c: the state from :func:`init_job` / the previous step.
      aux: dict with ``group`` (N,) and ``rate_scale`` (N,) for the discriminative objective.
      hp, cfg: numbers and static structure from :func:`split_config`.
    """
    h, tx = _job_parts(cfg, hp)
    code = c["code"] + jnp.uint32(2) * c["step"].astype(jnp.uint32)
    (obj, act), g = jax.value_and_grad(_objective, has_aux=True)(c["u"], code, fn, params,
                                                                 target, aux, h)
    upd, opt = tx.update(jax.tree.map(jnp.negative, g), c["opt"], c["u"])
    u = _project(optax.apply_updates(c["u"], upd), c["step"], h)
    bar = jnp.where(jnp.isfinite(c["best"]), c["best"] + h.tol * jnp.abs(c["best"]), -jnp.inf)
    improved = obj > bar
    stall = jnp.where(improved, 0, c["stall"] + 1)
    new = dict(u=u, opt=opt, step=c["step"] + 1, best=jnp.where(improved, obj, c["best"]),
               stall=stall, done=(h.patience > 0) & (stall >= h.patience), code=c["code"],
               trace=c["trace"].at[c["step"]].set(act))
    active = (c["step"] < h.steps) & ~c["done"]
    return jax.tree.map(lambda n, o: jnp.where(active, n, o), new, c)


def finish_job(fn, params, target, c, hp: dict, cfg: MEIConfig):
    """``(raw (K, C, H, W), activation (K,), trace (steps, K), steps_run)`` of a job."""
    h, _ = _job_parts(cfg, hp)
    raw = to_raw_images(_constrain(c["u"], h), h)
    return raw, fn(params, raw)[:, target], c["trace"], c["step"]


def _init_chunk(targets, seed_index, starts, base_code, hp, *, cfg: MEIConfig):
    return jax.vmap(lambda t, s, u: init_job(t, s, u, base_code, hp, cfg))(
        targets, seed_index, starts)


def _step_chunk(params, targets, carry, aux, hp, *, fn, cfg: MEIConfig):
    return jax.vmap(lambda t, c: step_job(fn, params, t, c, aux, hp, cfg))(targets, carry)


def _finish_chunk(params, targets, carry, hp, *, fn, cfg: MEIConfig):
    return jax.vmap(lambda t, c: finish_job(fn, params, t, c, hp, cfg))(targets, carry)


_PROGRAMS: dict = {}


def jit_program(name: str, f, static_argnames, donate_argnames=()):
    """``jax.jit`` made on first use (no backend query at import time).

    On CPU, LLVM's expensive passes are skipped: the programs compile 1.5-3x faster with no
    measurable loss of speed; other backends use the defaults.
    """
    if name not in _PROGRAMS:
        opts = ({"xla_llvm_disable_expensive_passes": True}
                if jax.default_backend() == "cpu" else None)
        _PROGRAMS[name] = jax.jit(f, static_argnames=static_argnames,
                                  donate_argnames=donate_argnames, compiler_options=opts)
    return _PROGRAMS[name]


def run_chunk(params, targets, seed_index, starts, aux, base_code, hp, *, fn,
              cfg: MEIConfig):
    """A chunk of jobs (:func:`init_job`, :func:`step_job`, :func:`finish_job` vmapped
    over jobs and jitted): one compiled step program per (fn, config structure, image shape,
    chunk size).

    The ascent loop runs in Python, one jitted step per call: XLA on CPU ran the same step
    ~6x slower inside a ``lax.while_loop``/``fori_loop`` (measured: small model, 256 jobs,
    36x64 images, 116 vs 656 neuron-steps/s), and a dispatch costs far less than a step.
    With ``patience`` the loop ends once every job of the chunk has stopped.

    Returns:
      ``(raw, activation, trace, steps_run)`` with a leading job axis.
    """
    init = jit_program("mei_init", _init_chunk, ("cfg",))
    step = jit_program("mei_step", _step_chunk, ("fn", "cfg"), ("carry",))
    finish = jit_program("mei_finish", _finish_chunk, ("fn", "cfg"))
    stops = float(hp["patience"]) > 0
    carry = init(targets, seed_index, starts, base_code, hp, cfg=cfg)
    for s in range(cfg.steps):
        carry = step(params, targets, carry, aux, hp, fn=fn, cfg=cfg)
        if stops and s % 8 == 7 and bool(np.all(np.asarray(carry["done"]))):
            break
    return finish(params, targets, carry, hp, fn=fn, cfg=cfg)


def compiled_programs() -> int:
    """How many MEI programs have been compiled in this process (for tests/benchmarks)."""
    prog = _PROGRAMS.get("mei_step")
    return 0 if prog is None else prog._cache_size()


# ----------------------------------------------------------------------- the driver
def output_size(fn, params, shape) -> int:
    """Number of neurons a model returns, from an abstract evaluation (no compute)."""
    out = jax.eval_shape(fn, params, jax.ShapeDtypeStruct((1,) + tuple(shape), jnp.float32))
    if len(out.shape) != 2:
        raise ConfigError(f"the model returned shape {out.shape} for one image; expected "
                          "(batch, neuron) from fn(params, images (batch, channel, y, x))")
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
        raise ConfigError(f"neurons must be integer indices into the model output, got "
                          f"dtype {idx.dtype}")
    if idx.size == 0 or idx.min() < 0 or idx.max() >= n_out:
        raise ConfigError(f"neuron indices must lie in [0, {n_out}) and not be empty; got "
                          f"{idx[:5].tolist()}...")
    return idx.astype(np.int32)


def optimize_meis(fn, params, neurons=None, *, config: MEIConfig, image_shape, seeds: int = 1,
                  start_images=None, group=None, rate_scale=None, neuron_id=None,
                  chunk_size: int = 256, seed: int = 0) -> xr.Dataset:
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

    Returns:
      ``xarray.Dataset`` with ``mei`` (neuron, seed, [variant,] channel, y, x) raw images,
      ``activation`` (neuron, seed, [variant]) final model rate of the target neuron,
      ``trace`` (neuron, seed, [variant,] step) rate at each step (NaN after a plateau
      stop), ``steps_run`` (neuron, seed); coords ``neuron_id``, ``neuron_index``, ``seed``;
      ``attrs['config']`` is the configuration as JSON.
    """
    if not isinstance(config, MEIConfig):
        raise ConfigError(f"config must be an MEIConfig (see jaxsel.insilico.recipes), got "
                          f"{type(config).__name__}")
    shape = image_shape3(image_shape)
    n_out = output_size(fn, params, shape)
    idx = neuron_indices(neurons, n_out)
    if int(seeds) < 1 or int(chunk_size) < 1:
        raise ConfigError(f"seeds = {seeds}, chunk_size = {chunk_size}: expected integers >= 1")
    seeds = int(seeds)
    aux = {"group": jnp.ones(n_out, jnp.float32), "rate_scale": jnp.ones(n_out, jnp.float32)}
    if config.objective == "discriminative":
        if group is None:
            raise ConfigError("the discriminative objective needs group= (neurons to compare "
                              "against, a boolean mask or indices)")
        aux["group"] = jnp.asarray(np.isin(np.arange(n_out),
                                           neuron_indices(group, n_out)), jnp.float32)
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
    for s in range(0, n_jobs, chunk):
        sl = np.arange(s, s + chunk) % n_jobs                      # pad the last chunk
        starts = np.stack([_start(config, seed, tgt[j], sid[j], natural, shape) for j in sl])
        res = run_chunk(params, jnp.asarray(tgt[sl]), jnp.asarray(sid[sl]), jnp.asarray(starts),
                        aux, base_code, hp, fn=fn, cfg=static)
        keep = min(chunk, n_jobs - s)
        outs.append(jax.tree.map(lambda a: np.asarray(a)[:keep], res))
    raw, act, trace, steps_run = (np.concatenate(z) for z in zip(*outs))
    return _to_dataset(raw, act, trace, steps_run, idx, seeds, config, neuron_id)


_SALT = 0x4D4549            # keeps job streams apart from np.random.default_rng(seed) streams


def _start(cfg: MEIConfig, seed: int, target: int, seed_index: int, natural, shape):
    """The start of one job: a generator seeded by (seed, neuron, seed index), so results do
    not depend on chunking."""
    rng = np.random.default_rng((int(seed), int(target), int(seed_index), _SALT))
    return parts.start_image(cfg.start, rng, (cfg.n_variants,) + tuple(shape),
                             std=cfg.start_std, gray=cfg.gray, black=-cfg.offset / cfg.scale,
                             natural=natural[seed_index % len(natural)])


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
    trace = np.moveaxis(trace.reshape(n, seeds, cfg.steps, k), 2, 3)     # (n, s, k, step)
    ids = idx if neuron_id is None else np.asarray(neuron_id)
    if len(ids) != n:
        raise ConfigError(f"{len(ids)} neuron_id labels for {n} neurons")
    vd = ("variant",) if k > 1 else ()
    sq = (lambda a: a) if k > 1 else (lambda a: a[:, :, 0])
    ds = xr.Dataset(
        {"mei": (("neuron", "seed") + vd + ("channel", "y", "x"), sq(raw)),
         "activation": (("neuron", "seed") + vd, sq(act)),
         "trace": (("neuron", "seed") + vd + ("step",), sq(trace)),
         "steps_run": (("neuron", "seed"), steps_run.reshape(n, seeds))},
        coords={"neuron_id": ("neuron", ids), "neuron_index": ("neuron", idx),
                "seed": np.arange(seeds), "step": np.arange(cfg.steps)},
        attrs={"config": json.dumps(cfg.to_dict()), "recipe": cfg.name})
    return ds


def best_seed(result: xr.Dataset) -> xr.Dataset:
    """Per neuron, the seed (start) whose MEI reached the highest final activation."""
    act = result["activation"]
    if "variant" in act.dims:
        act = act.sum("variant")
    best = act.fillna(-np.inf).argmax("seed")
    out = result.isel(seed=best)
    return out.assign_coords(best_seed=("neuron", best.values)).drop_vars("seed")


def most_inhibitory_inputs(fn, params, neurons=None, *, config: MEIConfig, **kwargs
                           ) -> xr.Dataset:
    """Inputs that minimise each neuron's rate (same options as :func:`optimize_meis`)."""
    return optimize_meis(fn, params, neurons, config=config.replace(objective="min"), **kwargs)


def discriminative_meis(fn, params, neurons=None, *, group, config: MEIConfig,
                        rate_scale=None, **kwargs) -> xr.Dataset:
    """Inputs that drive each target neuron more than the mean of a comparison group.

    The objective is ``r_i / s_i - mean_{j in group, j != i} r_j / s_j`` with ``s`` =
    ``rate_scale`` (e.g. each neuron's mean response, so all neurons count alike).
    """
    return optimize_meis(fn, params, neurons, config=config.replace(objective="discriminative"),
                         group=group, rate_scale=rate_scale, **kwargs)


def diverse_meis(fn, params, neurons=None, *, config: MEIConfig, n_variants: int = 4,
                 diversity_weight: float = 1.0, **kwargs) -> xr.Dataset:
    """Several MEIs per neuron, optimised jointly with a pairwise-similarity penalty.

    The objective of a job is ``sum_k f_i(x_k) - diversity_weight * mean_{k != l}
    cos(x_k, x_l)``; the result has a ``variant`` dimension. Choose ``diversity_weight`` on
    the scale of the neuron's rates.
    """
    cfg = config.replace(n_variants=int(n_variants), diversity_weight=float(diversity_weight))
    return optimize_meis(fn, params, neurons, config=cfg, **kwargs)
