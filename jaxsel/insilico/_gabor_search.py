"""Gabors in silico: a differentiable generator, bank screening, optimal Gabors, recorded Gabors.

The carrier/envelope formula is :func:`jaxsel.data.gabor` (one Gabor definition in
the project); here it is turned into a stimulus: optionally mean-removed, scaled either to a
fixed L2 norm of the contrast image (the MEI budget) or by a ``contrast`` factor, and mapped
to raw grey levels ``background + scale * contrast``.

Gabor parameters are a dict of arrays with keys :data:`GABOR_PARAMS` (``x0, y0`` in pixels,
``sigma`` in pixels, ``theta`` wave-vector direction in radians, ``sf`` in cycles/pixel,
``phase`` in radians; optional ``contrast``), scalars for one Gabor, ``(G,)`` for a bank.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr

from jaxsel._checks import check_hw, check_int, check_model_input, check_number
from jaxsel._errors import ConfigError
from jaxsel.data import BACKGROUND, SCALE, gabor, hw_tuple
from jaxsel.insilico._mei import neuron_indices, output_size, progress_callback
from jaxsel.insilico._mei_job import jit_program

GABOR_PARAMS = ("x0", "y0", "sigma", "theta", "sf", "phase")


def gabor_contrast(p: dict, shape: tuple[int, int], *, norm=None, zero_mean: bool = True):
    """One Gabor as a contrast image (differentiable in every parameter).

    Args:
      p: dict with :data:`GABOR_PARAMS` (scalars) and optionally ``contrast``.
      shape: (H, W).
      norm: if set, the image's L2 norm (after mean removal if ``zero_mean``); otherwise
        the peak-1 Gabor times ``p['contrast']`` (default 1).
      zero_mean: remove the image mean (a Gabor at low frequency has a DC component).

    Returns:
      (H, W) float32 contrast image.
    """
    g = gabor(hw_tuple(shape), p["x0"], p["y0"], p["sigma"], p["theta"], p["sf"], p["phase"])
    if zero_mean:
        g = g - jnp.mean(g)
    if norm is not None:
        return norm * g / jnp.sqrt(jnp.sum(g**2) + 1e-12)
    return p.get("contrast", 1.0) * g


def gabor_images(
    p: dict,
    shape: tuple[int, int],
    *,
    norm=None,
    zero_mean: bool = True,
    background: float = BACKGROUND,
    scale: float = SCALE,
    channels: int = 1,
):
    """A bank of Gabors as raw images (G, channels, H, W); ``p`` holds (G,) arrays."""
    make = jax.vmap(lambda q: gabor_contrast(q, shape, norm=norm, zero_mean=zero_mean))
    c = make({k: jnp.asarray(v, jnp.float32) for k, v in p.items()})
    return background + scale * jnp.broadcast_to(c[:, None], (c.shape[0], channels) + c.shape[1:])


def gabor_bank(
    shape: tuple[int, int],
    *,
    n_x: int = 9,
    n_y: int = 5,
    margin: float = 0.15,
    sigmas=None,
    n_theta: int = 8,
    sfs=None,
    n_phase: int = 4,
) -> dict:
    """A full grid of Gabor parameters (flat arrays, one entry per combination).

    Args:
      shape: (H, W).
      n_x, n_y, margin: centres on an ``n_y x n_x`` grid spanning the image minus ``margin``
        (fraction of each side).
      sigmas: envelope sizes in pixels (default 0.06, 0.09, 0.13 of H).
      n_theta: orientations in [0, pi).
      sfs: spatial frequencies in cycles/pixel (default 5 log-spaced in [0.04, 0.32]).
      n_phase: phases in [0, 2 pi).

    Returns:
      dict of (G,) float32 arrays with keys :data:`GABOR_PARAMS`.
    """
    h, w = shape
    sigmas = np.array([0.06, 0.09, 0.13]) * h if sigmas is None else np.asarray(sigmas, float)
    sfs = np.geomspace(0.04, 0.32, 5) if sfs is None else np.asarray(sfs, float)
    xs = np.linspace(margin * w, (1 - margin) * w, n_x)
    ys = np.linspace(margin * h, (1 - margin) * h, n_y)
    thetas = np.arange(n_theta) * np.pi / n_theta
    phases = np.arange(n_phase) * 2 * np.pi / n_phase
    grid = np.array(list(itertools.product(xs, ys, sigmas, thetas, sfs, phases)), np.float32)
    if len(grid) == 0:
        raise ConfigError("the Gabor bank is empty: every grid axis needs at least one value")
    return {k: grid[:, i] for i, k in enumerate(GABOR_PARAMS)}


@partial(
    jax.jit, static_argnames=("fn", "shape", "norm", "zero_mean", "background", "scale", "channels")
)
def _screen_batch(
    params, bank, neurons, *, fn, shape, norm, zero_mean, background, scale, channels
):
    x = gabor_images(
        bank,
        shape,
        norm=norm,
        zero_mean=zero_mean,
        background=background,
        scale=scale,
        channels=channels,
    )
    r = fn(params, x)[:, neurons]  # (G, B)
    return r


def screen_gabors(
    fn,
    params,
    shape: tuple[int, int],
    *,
    norm: float | None,
    bank=None,
    neurons=None,
    neuron_id=None,
    zero_mean: bool = True,
    background: float = BACKGROUND,
    scale: float = SCALE,
    channels: int = 1,
    batch_size: int = 1024,
    return_responses: bool = False,
) -> xr.Dataset:
    """Show a Gabor bank to the model and keep each neuron's best Gabor.

    Args:
      fn, params: the model on raw images.
      shape: (H, W).
      norm: contrast L2 budget of every Gabor (None: use ``contrast`` from the bank or 1).
      bank: parameter dict from :func:`gabor_bank` (default: ``gabor_bank(shape)``).
      neurons, neuron_id: model neuron indices and labels.
      zero_mean, background, scale, channels: image construction (see :func:`gabor_images`).
      batch_size: Gabors per model call.
      return_responses: also return every rate as ``responses`` (gabor, neuron).

    Returns:
      ``xarray.Dataset`` over ``neuron``: best parameters (``x0`` ... ``phase``),
      ``response`` (best rate), ``bank_index``.
    """
    bank = (
        gabor_bank(hw_tuple(shape))
        if bank is None
        else {k: np.asarray(v, np.float32) for k, v in bank.items()}
    )
    missing = [k for k in GABOR_PARAMS if k not in bank]
    if missing:
        raise ConfigError(f"Gabor bank lacks parameters {missing}; expected {GABOR_PARAMS}")
    g = len(bank["x0"])
    n_out = output_size(fn, params, (channels,) + tuple(shape))
    idx = neuron_indices(neurons, n_out)
    bs = min(int(batch_size), g)
    best = np.full(len(idx), -np.inf, np.float32)
    arg = np.zeros(len(idx), np.int64)
    all_r = np.empty((g, len(idx)), np.float32) if return_responses else None
    kw = dict(
        fn=fn,
        shape=tuple(int(s) for s in shape),
        norm=None if norm is None else float(norm),
        zero_mean=zero_mean,
        background=float(background),
        scale=float(scale),
        channels=int(channels),
    )
    for s in range(0, g, bs):
        sel = np.arange(s, s + bs) % g
        keep = min(bs, g - s)
        r = np.asarray(
            _screen_batch(
                params, {k: jnp.asarray(v[sel]) for k, v in bank.items()}, jnp.asarray(idx), **kw
            )
        )[:keep]
        if all_r is not None:
            all_r[s : s + keep] = r
        a = r.argmax(0)
        m = r[a, np.arange(len(idx))]
        better = m > best
        best[better] = m[better]
        arg[better] = s + a[better]
    data: dict[str, tuple] = {k: ("neuron", bank[k][arg]) for k in GABOR_PARAMS}
    data.update(response=("neuron", best), bank_index=("neuron", arg))
    if all_r is not None:
        data["responses"] = (("gabor", "neuron"), all_r)
    return xr.Dataset(
        data,
        coords={
            "neuron_id": ("neuron", idx if neuron_id is None else np.asarray(neuron_id)),
            "neuron_index": ("neuron", idx),
        },
        attrs={"norm": np.nan if norm is None else float(norm)},
    )


# ------------------------------------------------------------------ optimal Gabor
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
    params,
    shape: tuple[int, int],
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
      fn, params: the model on raw images.
      shape: (H, W).
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


# ------------------------------------------------------------------- recorded Gabors
def top_recorded_gabors(images, responses, *, k: int = 3, neuron_id=None) -> xr.Dataset:
    """The "most exciting recorded Gabor": mean of the k presented Gabor images
    with the highest recorded responses, per neuron.

    Args:
      images: (trial, [C,] H, W) presented stimuli (raw).
      responses: (trial, neuron) recorded responses (array or DataArray with
        ``neuron_id``).
      k: how many top trials to average (ties broken by trial order).
      neuron_id: labels (default from a DataArray, else 0..N-1).

    Returns:
      ``xarray.Dataset``: ``image`` (neuron, channel, y, x) the mean of the top-k images,
      ``top_trials`` and ``top_responses`` (neuron, rank).
    """
    if (
        neuron_id is None
        and isinstance(responses, xr.DataArray)
        and "neuron_id" in responses.coords
    ):
        neuron_id = responses["neuron_id"].values
    r = np.asarray(responses, np.float64)
    x = np.asarray(images, np.float32)
    x = x[:, None] if x.ndim == 3 else x
    if r.ndim != 2 or x.ndim != 4 or len(x) != len(r):
        raise ConfigError(
            f"images {x.shape} and responses {r.shape}: expected (trial, [C,] H, W) "
            "and (trial, neuron) with the same number of trials"
        )
    if not 1 <= k <= len(r):
        raise ConfigError(f"k = {k}: expected 1 <= k <= {len(r)} trials")
    order = np.argsort(-r, axis=0, kind="stable")[:k]  # (k, neuron)
    n = r.shape[1]
    return xr.Dataset(
        {
            "image": (("neuron", "channel", "y", "x"), x[order].mean(0)),
            "top_trials": (("neuron", "rank"), order.T),
            "top_responses": (("neuron", "rank"), np.take_along_axis(r, order, 0).T),
        },
        coords={
            "neuron_id": ("neuron", np.arange(n) if neuron_id is None else np.asarray(neuron_id))
        },
    )
