"""Most exciting videos (MEVs): gradient ascent on a T-frame clip, vmapped over neurons.

A video model is a pair ``(fn, params)`` with ``fn(params, videos (batch, C, T, y, x)) ->
rates (batch, T, neuron)`` (e.g. :meth:`jaxsel.train.VideoFitResult.response_fn`).

The clip of one neuron is ``x = norm * P(u) / |P(u)|`` (``P`` removes the clip's mean when
``center``): it always meets the L2 budget exactly. The objective is the neuron's rate (at
the last frame, or averaged over frames ``>= burn_in``) minus ``smoothness`` times the
relative temporal roughness ``sum_t |x[t+1] - x[t]|^2 / |x|^2`` (scale-free, in [0, 4]).
``u`` is updated by Adam (cosine-decayed step size) and renormalised to unit RMS after every
step. One step for a chunk of neurons is one compiled call (``vmap`` over neurons); the steps
run in a Python loop, not ``lax.scan`` (convolutions inside a scan ran 6-14x slower on
XLA:CPU).

For a linear neuron ``f(x) = <w, x>`` and ``smoothness = 0`` the optimum is ``norm *
P(w) / |P(w)|`` (Cauchy-Schwarz): the test of this module.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr

from jaxsel._checks import check_int, check_number
from jaxsel._compile_cache import cached
from jaxsel._errors import ConfigError, DataError
from jaxsel.insilico._video_stimuli import video_shape4

OBJECTIVES = ("mean", "last")


def video_neurons(where: str, fn, params, shape4, neurons) -> tuple[np.ndarray, int]:
    """``(indices, n_out)``: validated neuron indices (None = all) of a video model, whose
    output on one clip of ``shape4`` must be (1, T, neuron) (checked abstractly)."""
    probe = jax.ShapeDtypeStruct((1,) + tuple(shape4), jnp.float32)
    try:
        out = jax.eval_shape(fn, params, probe)
    except Exception as err:
        raise DataError(
            f"{where}: the model does not take clips of shape {tuple(shape4)} "
            f"({type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''})",
            field="video_shape",
            expected="the (channel, time, y, x) of the model's clips",
        ) from None
    if len(out.shape) != 3 or out.shape[:2] != (1, shape4[1]):
        raise DataError(
            f"{where}: the model returned shape {out.shape} for one clip of {shape4[1]} frames",
            field="fn",
            expected="rates (batch, time, neuron) from fn(params, videos (batch, C, T, y, x))",
        )
    n_out = int(out.shape[2])
    idx = np.arange(n_out) if neurons is None else np.atleast_1d(np.asarray(neurons))
    if not np.issubdtype(idx.dtype, np.integer) or idx.size == 0:
        raise ConfigError(f"{where}: neurons must be non-empty integer indices (got {neurons!r})")
    if idx.min() < 0 or idx.max() >= n_out:
        raise ConfigError(f"{where}: neurons must lie in [0, {n_out}) (got {idx.tolist()[:5]})")
    return idx.astype(np.int32), n_out


def _clip(u, norm, center: bool):
    v = u - jnp.mean(u) if center else u
    return norm * v / jnp.sqrt(jnp.sum(v * v) + 1e-20)


def _score(rates, objective: str, burn_in: int):
    return rates[-1] if objective == "last" else jnp.mean(rates[burn_in:], axis=0)


@functools.partial(jax.jit, static_argnames=("fn", "objective", "burn_in", "center", "tx"))
def _mev_step(params, u, opt_state, neuron, hp, *, fn, objective, burn_in, center, tx):
    """One Adam step for a chunk: u (J, C, T, H, W), neuron (J,) -> new u, state, rates."""

    def obj(ui, n):
        x = _clip(ui, hp["norm"], center)
        rates = fn(params, x[None])[0, :, n]  # (T,)
        d = x[:, 1:] - x[:, :-1]
        rough = jnp.sum(d * d) / (hp["norm"] ** 2)
        return _score(rates, objective, burn_in) - hp["smoothness"] * rough, rates

    (val, rates), g = jax.vmap(jax.value_and_grad(obj, has_aux=True))(u, neuron)
    upd, opt_state = tx.update(jax.tree.map(jnp.negative, g), opt_state, u)
    u = jnp.asarray(optax.apply_updates(u, upd))
    u = u / jnp.sqrt(jnp.mean(u * u, axis=(1, 2, 3, 4), keepdims=True) + 1e-20)  # unit RMS
    return u, opt_state, val, rates


@functools.partial(jax.jit, static_argnames=("fn", "center"))
def _final(params, u, neuron, norm, *, fn, center):
    """The clips of a chunk and each neuron's rates (J, T) along its clip."""
    x = jax.vmap(lambda ui: _clip(ui, norm, center))(u)
    return x, jax.vmap(lambda xi, n: fn(params, xi[None])[0, :, n])(x, neuron)


def optimize_mevs(
    fn,
    params,
    neurons=None,
    *,
    video_shape,
    norm: float,
    smoothness: float = 0.0,
    objective: str = "mean",
    burn_in: int = 0,
    steps: int = 200,
    lr: float = 0.05,
    center: bool = True,
    seed: int = 0,
    chunk_size: int = 32,
    neuron_id=None,
    frame_rate: float = 30.0,
) -> xr.Dataset:
    """Most exciting videos of many neurons under an L2 budget.

    Args:
      fn, params: the video model (see the module docstring), pure JAX.
      neurons: indices into the model's neuron axis (default all).
      video_shape: (T, H, W) or (C, T, H, W) of the clip.
      norm: L2 norm of every clip (standardized pixel units), > 0.
      smoothness: weight of the relative temporal roughness penalty (>= 0; 0 = none).
      objective: ``"mean"`` (mean rate over frames >= ``burn_in``: with ``burn_in = T - n``
        the response summed over the last n frames, up to the factor n, as SPEC 14 asks)
        or ``"last"`` (the rate at the last frame).
      burn_in: frames left out of the ``"mean"`` objective.
      steps: Adam steps.
      lr: initial Adam step size (per pixel of a unit-RMS clip; cosine-decayed to 1 %).
      center: remove each clip's mean before fixing its norm.
      seed: seed of the white-noise starts (one stream per neuron: results do not depend
        on ``chunk_size``).
      chunk_size: neurons per compiled call.
      neuron_id: labels of ``neurons``.
      frame_rate: frames per second (for the ``time_s`` coordinate).

    Returns:
      ``xarray.Dataset``: ``mev`` (neuron, channel, time, y, x) the clips (standardized
      pixel units), ``activation`` (neuron) the final objective's rate part, ``rate``
      (neuron, time) the neuron's rate along its MEV, ``trace`` (neuron, step) the
      objective at every step; coords ``neuron_id``, ``neuron_index``, ``time_s``; attrs
      ``norm``, ``smoothness``, ``objective``, ``burn_in``, ``units``.

    Raises:
      ConfigError: a bad ``norm``, ``smoothness``, ``objective``, ``steps``, ``lr``,
        ``burn_in``, ``video_shape`` or neuron index.
      DataError: a model that does not take such clips or returns no (batch, time, neuron).
    """
    where = "optimize_mevs"
    shape = video_shape4(where, video_shape)
    norm = check_number(where, "norm", norm, positive=True)
    smoothness = check_number(where, "smoothness", smoothness, nonnegative=True)
    if objective not in OBJECTIVES:
        raise ConfigError(f"{where}: objective = {objective!r}: expected one of {OBJECTIVES}")
    steps = check_int(where, "steps", steps, minimum=1)
    burn_in = check_int(where, "burn_in", burn_in, minimum=0)
    if burn_in >= shape[1]:
        raise ConfigError(f"{where}: burn_in = {burn_in} leaves none of {shape[1]} frames")
    lr = check_number(where, "lr", lr, positive=True)
    chunk = check_int(where, "chunk_size", chunk_size, minimum=1)
    seed = check_int(where, "seed", seed)
    idx, _ = video_neurons(where, fn, params, shape, neurons)
    chunk = min(chunk, len(idx))
    tx = cached(
        "mev_optimizer",
        (lr, steps),
        lambda: optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=0.01)),
    )
    hp = {"norm": jnp.float32(norm), "smoothness": jnp.float32(smoothness)}
    static = {"fn": fn, "objective": objective, "burn_in": burn_in, "center": bool(center)}
    mev, act, rate, trace = [], [], [], []
    for s in range(0, len(idx), chunk):
        sel = idx[np.arange(s, s + chunk) % len(idx)]  # fixed shape: wrap the last chunk
        u = jnp.asarray(
            np.stack(
                [
                    np.random.default_rng((seed, int(n), 0x4D4556)).standard_normal(shape)
                    for n in sel
                ]
            ).astype(np.float32)
        )
        opt_state = tx.init(u)
        tr = []
        for _ in range(steps):
            u, opt_state, val, _ = _mev_step(
                params, u, opt_state, jnp.asarray(sel), hp, tx=tx, **static
            )
            tr.append(val)
        x, r = _final(params, u, jnp.asarray(sel), hp["norm"], fn=fn, center=bool(center))
        keep = min(chunk, len(idx) - s)
        mev.append(np.asarray(x)[:keep])
        rate.append(np.asarray(r)[:keep])
        act.append(np.asarray(_score(r.T, objective, burn_in))[:keep])
        trace.append(np.stack([np.asarray(t) for t in tr], axis=1)[:keep])
    ids = idx if neuron_id is None else np.asarray(neuron_id)
    if len(ids) != len(idx):
        raise ConfigError(f"{where}: {len(ids)} neuron_id labels for {len(idx)} neurons")
    return xr.Dataset(
        {
            "mev": (("neuron", "channel", "time", "y", "x"), np.concatenate(mev)),
            "activation": ("neuron", np.concatenate(act)),
            "rate": (("neuron", "time"), np.concatenate(rate)),
            "trace": (("neuron", "step"), np.concatenate(trace)),
        },
        coords={
            "neuron_id": ("neuron", ids),
            "neuron_index": ("neuron", idx),
            "time_s": ("time", np.arange(shape[1]) / float(frame_rate)),
        },
        attrs={
            "norm": norm,
            "smoothness": smoothness,
            "objective": objective,
            "burn_in": burn_in,
            "units": "mev: standardized pixel units; activation, rate: the model's rate units",
        },
    )


__all__ = ["OBJECTIVES", "optimize_mevs", "video_neurons"]
