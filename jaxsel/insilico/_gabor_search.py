"""Gabors in silico: a differentiable generator, bank screening, recorded Gabors (optimal
Gabors by gradient ascent are in ``_optimal_gabor``).

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
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from jaxsel._errors import ConfigError
from jaxsel.data import BACKGROUND, SCALE, gabor, hw_tuple
from jaxsel.insilico._mei import neuron_indices, output_size

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
