"""Optimal Gabors: each neuron's Gabor at a fixed contrast budget by gradient ascent on its
(encoded) parameters, started from the best Gabor of a bank screen."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr

from jaxsel._checks import check_hw, check_int, check_model_input, check_number
from jaxsel._errors import ConfigError
from jaxsel.data import BACKGROUND, SCALE
from jaxsel.insilico._ensemble import model_pair
from jaxsel.insilico._gabor_search import GABOR_PARAMS, gabor_contrast, gabor_images, screen_gabors
from jaxsel.insilico._mei import neuron_indices, output_size, progress_callback
from jaxsel.insilico._mei_job import jit_program

_POS_SCALE = 2.0  # pixels per unit of the position variable


def _encode(p):
    return {
        "x0": p["x0"] / _POS_SCALE,
        "y0": p["y0"] / _POS_SCALE,
        "log_sigma": jnp.log(p["sigma"]),
        "theta": p["theta"],
        "log_sf": jnp.log(p["sf"]),
        "phase": p["phase"],
    }


def _decode(q, shape):
    h, w = shape
    return {
        "x0": q["x0"] * _POS_SCALE,
        "y0": q["y0"] * _POS_SCALE,
        "sigma": jnp.clip(jnp.exp(q["log_sigma"]), 0.5, float(max(h, w))),
        "theta": q["theta"],
        "sf": jnp.clip(jnp.exp(q["log_sf"]), 1.0 / max(h, w), 0.5),
        "phase": q["phase"],
    }


def _optimizer(lr, steps: int):
    return optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=0.1))


def _rate(q, i, params, *, fn, shape, norm, zero_mean, background, scale, channels):
    """Rate of neuron ``i`` for the Gabor with encoded parameters ``q``."""
    g = gabor_contrast(_decode(q, shape), shape, norm=norm, zero_mean=zero_mean)
    x = background + scale * jnp.broadcast_to(g, (1, channels) + g.shape)
    return fn(params, x)[0, i]


def _init_chunk(p0, lr, *, steps):
    tx = _optimizer(lr, steps)
    return jax.vmap(lambda p: (_encode(p), tx.init(_encode(p))))(p0)


def _step_chunk(params, carry, targets, lr, *, steps, **kw):
    """One Adam step of every neuron's Gabor: ``(carry, rates before the step)``."""
    tx = _optimizer(lr, steps)

    def one(c, i):
        q, st = c
        r, g = jax.value_and_grad(_rate)(q, i, params, **kw)
        upd, st = tx.update(jax.tree.map(jnp.negative, g), st, q)
        return (optax.apply_updates(q, upd), st), r

    return jax.vmap(one)(carry, targets)


def _finish_chunk(params, carry, targets, *, shape, **kw):
    q = carry[0]
    rates = jax.vmap(lambda q1, i: _rate(q1, i, params, shape=shape, **kw))(q, targets)
    return jax.vmap(lambda q1: _decode(q1, shape))(q), rates


def optimal_gabors(
    fn,
    params=None,
    shape: tuple[int, int] | None = None,
    *,
    norm: float,
    neurons=None,
    init: xr.Dataset | None = None,
    bank=None,
    steps: int = 200,
    lr: float = 0.05,
    neuron_id=None,
    zero_mean: bool = True,
    background: float = BACKGROUND,
    scale: float = SCALE,
    channels: int = 1,
    chunk_size: int = 256,
    progress: bool | Callable[[int, int], None] = False,
) -> xr.Dataset:
    """Each neuron's optimal Gabor at a fixed contrast budget, by gradient ascent on its
    parameters (Adam; log-sigma and log-sf), started from the best Gabor of a bank screen.

    Args:
      fn, params: the model on raw images (or, ``params`` omitted, a model object: a
        ResponseModel, a ``FitResult`` or a ``ManyResult``'s ensemble mean).
      shape: (H, W) (required).
      norm: contrast L2 budget (same as the MEIs', for a fair comparison).
      neurons, neuron_id: model neuron indices and labels.
      init: a :func:`screen_gabors` result to start from (default: screen ``bank``).
      bank: the bank to screen when ``init`` is None.
      steps, lr: ascent steps and Adam learning rate (cosine decay to 0.1 lr).
      zero_mean, background, scale, channels: image construction.
      chunk_size: neurons per compiled call.
      progress: ``True`` for a tqdm bar over the ascent steps (all chunks), or a callable
        ``progress(done, total)`` called after each step.

    Returns:
      ``xarray.Dataset`` over ``neuron``: parameters ``x0`` ... ``phase`` (theta wrapped into
      [0, pi), phase into [0, 2 pi)), ``response``, ``response_init`` (bank best), ``trace``
      (neuron, step), and ``image`` (neuron, channel, y, x) raw.

    Raises:
      ConfigError: ``shape`` not (H, W), ``norm``/``lr`` not positive and finite, ``steps``
        or ``channels`` < 1 (checked before any work).
      DataError: ``shape``/``channels`` the model cannot take (or not its declared
        shape), or a model giving non-finite rates (NaN parameters).
    """
    where = "optimal_gabors"
    fn, params = model_pair(fn, params)
    if shape is None:
        raise ConfigError("optimal_gabors needs shape= (H, W) of the model's images")
    shape = check_hw(where, "shape", shape)
    norm = check_number(where, "norm", norm, positive=True)
    lr = check_number(where, "lr", lr, positive=True)
    steps = check_int(where, "steps", steps, minimum=1)
    check_int(where, "chunk_size", chunk_size, minimum=1)
    channels = check_int(where, "channels", channels, minimum=1)
    check_number(where, "background", background)
    check_number(where, "scale", scale, nonzero=True)
    check_model_input(where, fn, params, (channels, *shape), name="shape")
    if init is None:
        init = screen_gabors(
            fn,
            params,
            shape,
            norm=norm,
            bank=bank,
            neurons=neurons,
            zero_mean=zero_mean,
            background=background,
            scale=scale,
            channels=channels,
        )
    idx = init["neuron_index"].values.astype(np.int32)
    if neurons is not None and not np.array_equal(
        idx, neuron_indices(neurons, output_size(fn, params, (channels,) + shape))
    ):
        raise ConfigError("init was screened for other neurons than neurons=")
    p0 = {k: init[k].values.astype(np.float32) for k in GABOR_PARAMS}
    kw = dict(
        fn=fn,
        shape=shape,
        norm=float(norm),
        zero_mean=zero_mean,
        background=float(background),
        scale=float(scale),
        channels=int(channels),
    )
    p, resp, trace = _ascend(params, idx, p0, lr, steps, chunk_size, kw, progress)
    return _gabor_dataset(
        p,
        resp,
        trace,
        init,
        idx,
        shape,
        norm=norm,
        neuron_id=neuron_id,
        zero_mean=zero_mean,
        background=background,
        scale=scale,
        channels=channels,
    )


def _ascend(params, idx, p0: dict, lr, steps: int, chunk_size: int, kw: dict, progress):
    """The ascent of every neuron's Gabor, ``chunk_size`` neurons per compiled call:
    ``(decoded parameters (canonical theta/phase), final rates, trace (neuron, step))``."""
    statics = tuple(kw)
    # the ascent loop runs in Python over a jitted step: XLA on CPU ran the convolutions of a
    # model several times slower inside lax.scan / while loops (see jaxsel.insilico._mei)
    init_prog = jit_program("gabor_init", _init_chunk, ("steps",))
    step_prog = jit_program("gabor_step", _step_chunk, ("steps",) + statics, ("carry",))
    finish_prog = jit_program("gabor_finish", _finish_chunk, statics)
    chunk = min(int(chunk_size), len(idx))
    outs = []
    n_chunks = -(-len(idx) // chunk)
    report, close = progress_callback(progress, "Gabors", "step")
    for c, s in enumerate(range(0, len(idx), chunk)):
        sel = np.arange(s, s + chunk) % len(idx)
        keep = min(chunk, len(idx) - s)
        targets = jnp.asarray(idx[sel])
        carry = init_prog(
            {k: jnp.asarray(v[sel]) for k, v in p0.items()}, jnp.float32(lr), steps=steps
        )
        trace = []
        for i in range(steps):
            carry, r = step_prog(params, carry, targets, jnp.float32(lr), steps=steps, **kw)
            trace.append(r)
            report(c * steps + i + 1, n_chunks * steps)
        pe, rates = finish_prog(params, carry, targets, **kw)
        trace = jnp.stack(trace, axis=1) if trace else jnp.zeros((chunk, 0), jnp.float32)
        outs.append(jax.tree.map(lambda a: np.asarray(a)[:keep], (pe, rates, trace)))
    close()
    p = {k: np.concatenate([o[0][k] for o in outs]) for k in GABOR_PARAMS}
    resp = np.concatenate([o[1] for o in outs])
    trace = np.concatenate([o[2] for o in outs])
    p["theta"], p["phase"] = _canonical(p["theta"], p["phase"])
    return p, resp, trace


def _gabor_dataset(
    p: dict,
    resp,
    trace,
    init: xr.Dataset,
    idx,
    shape,
    *,
    norm: float,
    neuron_id,
    zero_mean: bool,
    background: float,
    scale: float,
    channels: int,
) -> xr.Dataset:
    """The result of :func:`optimal_gabors`: parameters, rates, trace and raw images."""
    img = np.asarray(
        gabor_images(
            p,
            shape,
            norm=float(norm),
            zero_mean=zero_mean,
            background=background,
            scale=scale,
            channels=channels,
        )
    )
    data: dict[str, tuple] = {k: ("neuron", v.astype(np.float32)) for k, v in p.items()}
    data.update(
        response=("neuron", resp),
        response_init=("neuron", init["response"].values),
        trace=(("neuron", "step"), trace),
        image=(("neuron", "channel", "y", "x"), img),
    )
    return xr.Dataset(
        data,
        coords={
            "neuron_id": (
                "neuron",
                init["neuron_id"].values if neuron_id is None else np.asarray(neuron_id),
            ),
            "neuron_index": ("neuron", idx),
        },
        attrs={"norm": float(norm)},
    )


def _canonical(theta, phase):
    """Wrap theta into [0, pi): (theta + pi, phase) is the same Gabor as (theta, -phase)."""
    theta = np.asarray(theta, np.float64)
    phase = np.asarray(phase, np.float64)
    k = np.floor(theta / np.pi)
    flip = (k % 2) == 1
    theta = theta - k * np.pi
    phase = np.where(flip, -phase, phase)
    return theta.astype(np.float32), np.mod(phase, 2 * np.pi).astype(np.float32)
