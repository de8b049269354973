"""In-silico experiments in time: spatiotemporal gradient receptive fields, direction and
orientation tuning from drifting gratings, and responses to moving bars.

A video model is ``fn(params, videos (batch, C, T, y, x)) -> rates (batch, T, neuron)``;
clips are in the model's standardized pixel units (0 = mean grey).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from jaxsel._checks import check_int, check_number
from jaxsel._errors import ConfigError
from jaxsel.insilico._video_mev import video_neurons
from jaxsel.insilico._video_stimuli import (
    drifting_gratings,
    even_directions,
    moving_bars,
    video_shape4,
)


@functools.partial(jax.jit, static_argnames=("fn",))
def _rates(params, videos, *, fn):
    return fn(params, videos)


def video_rates(fn, params, videos, *, batch_size: int = 16) -> np.ndarray:
    """Rates (clip, time, neuron) of a video model for (clip, C, T, y, x) clips, in
    fixed-size batches (the last one padded), one compiled program."""
    v = np.asarray(videos, np.float32)
    bs = min(check_int("video_rates", "batch_size", batch_size, minimum=1), len(v))
    out = []
    for s in range(0, len(v), bs):
        sel = np.arange(s, s + bs) % len(v)
        out.append(np.asarray(_rates(params, jnp.asarray(v[sel]), fn=fn))[: min(bs, len(v) - s)])
    return np.concatenate(out)


@functools.partial(jax.jit, static_argnames=("fn", "frame"))
def _frame_grads(params, clip, neurons, *, fn, frame):
    rates, vjp = jax.vjp(lambda z: fn(params, z[None])[0, frame], clip)
    cot = jax.nn.one_hot(neurons, rates.shape[0], dtype=rates.dtype)
    return jax.vmap(lambda c: vjp(c)[0])(cot)


def spatiotemporal_rf(
    fn,
    params,
    *,
    video_shape,
    value: float = 0.0,
    frame: int = -1,
    neurons=None,
    neuron_id=None,
    chunk_size: int = 64,
    frame_rate: float = 30.0,
) -> xr.DataArray:
    """Spatiotemporal gradient RFs (STRFs): ``d rate_n(frame) / d clip`` at a uniform clip.

    Args:
      fn, params: the video model.
      video_shape: (T, H, W) or (C, T, H, W) of the clip.
      value: the uniform pixel value of the clip (0 = mean grey).
      frame: the response frame differentiated (default the last).
      neurons, neuron_id: which neurons (default all) and their labels.
      chunk_size: neurons per backward batch.
      frame_rate: frames per second (for the ``lag_s`` coordinate).

    Returns:
      ``DataArray`` (neuron, channel, time, y, x) named ``strf``: rate per standardized
      pixel unit; coords ``lag_frames`` (time - response frame, <= 0 for a causal model)
      and ``lag_s``.
    """
    where = "spatiotemporal_rf"
    shape = video_shape4(where, video_shape)
    value = check_number(where, "value", value)
    frame = check_int(where, "frame", frame)
    if not -shape[1] <= frame < shape[1]:
        raise ConfigError(f"{where}: frame = {frame} is outside the {shape[1]} frames")
    frame = frame % shape[1]
    chunk = check_int(where, "chunk_size", chunk_size, minimum=1)
    idx, _ = video_neurons(where, fn, params, shape, neurons)
    chunk = min(chunk, len(idx))
    clip = jnp.full(shape, value, jnp.float32)
    out = []
    for s in range(0, len(idx), chunk):
        sel = idx[np.arange(s, s + chunk) % len(idx)]
        g = _frame_grads(params, clip, jnp.asarray(sel), fn=fn, frame=frame)
        out.append(np.asarray(g)[: min(chunk, len(idx) - s)])
    lag = np.arange(shape[1]) - frame
    return xr.DataArray(
        np.concatenate(out),
        dims=("neuron", "channel", "time", "y", "x"),
        coords={
            "neuron_id": ("neuron", idx if neuron_id is None else np.asarray(neuron_id)),
            "neuron_index": ("neuron", idx),
            "lag_frames": ("time", lag),
            "lag_s": ("time", lag / float(frame_rate)),
        },
        name="strf",
        attrs={"units": "rate per standardized pixel unit", "value": value, "frame": frame},
    )


def direction_tuning(
    fn,
    params,
    *,
    video_shape,
    n_directions: int = 16,
    spatial_frequencies=(0.04, 0.08, 0.16),
    temporal_frequency: float = 2.0,
    contrast: float = 1.0,
    burn_in: int = 0,
    frame_rate: float = 30.0,
    neurons=None,
    neuron_id=None,
    batch_size: int = 16,
) -> xr.Dataset:
    """Direction and orientation tuning from drifting gratings, per neuron.

    Every neuron's response to a grating is its mean rate over frames ``>= burn_in``
    (choose clips spanning whole temporal cycles so phase averages out). At each neuron's
    best spatial frequency (largest peak response) its tuning curve ``R(d)`` gives:

    * ``preferred_direction``: the angle of ``sum_d (R(d) - min R) e^{i d}`` (degrees in
      [0, 360); the vector average is exact for a tuning curve symmetric about its peak,
      so it is not limited to the sampled directions);
    * ``dsi = (R(p) - R(p + 180)) / (R(p) + R(p + 180))`` at the sampled direction ``p``
      nearest the preferred one (rates relative to 0; 0 for a neuron that responds
      equally to both directions of motion);
    * ``osi = (O(q) - O(q + 90)) / (O(q) + O(q + 90))`` on the orientation curve
      ``O(o) = (R(o) + R(o + 180)) / 2`` at the sampled orientation ``q`` nearest the
      preferred direction modulo 180.

    Args:
      fn, params: the video model.
      video_shape: (T, H, W) or (C, T, H, W) of the grating clips.
      n_directions: directions evenly spaced from 0 (a multiple of 4).
      spatial_frequencies: cycles per pixel tried.
      temporal_frequency: Hz.
      contrast: grating amplitude (standardized pixel units).
      burn_in: leading frames left out of the mean.
      frame_rate: frames per second.
      neurons, neuron_id: which neurons (default all) and their labels.
      batch_size: clips per compiled call.

    Returns:
      ``xarray.Dataset`` with ``response`` (neuron, spatial_frequency, direction),
      ``tuning`` (neuron, direction) at the best frequency, ``best_spatial_frequency``,
      ``preferred_direction`` (degrees), ``dsi``, ``osi`` (neuron); attrs give units and
      the direction convention (0 = rightward, 90 = downward motion).
    """
    where = "direction_tuning"
    shape = video_shape4(where, video_shape)
    n_dir = check_int(where, "n_directions", n_directions, minimum=4)
    if n_dir % 4:
        raise ConfigError(f"{where}: n_directions = {n_dir}: expected a multiple of 4 (for OSI)")
    burn_in = check_int(where, "burn_in", burn_in, minimum=0)
    if burn_in >= shape[1]:
        raise ConfigError(f"{where}: burn_in = {burn_in} leaves none of {shape[1]} frames")
    sfs = np.atleast_1d(np.asarray(spatial_frequencies, np.float64))
    idx, _ = video_neurons(where, fn, params, shape, neurons)
    dirs = even_directions(n_dir)
    clips = np.concatenate(
        [
            drifting_gratings(
                dirs,
                video_shape=shape,
                spatial_frequency=float(f),
                temporal_frequency=temporal_frequency,
                contrast=contrast,
                frame_rate=frame_rate,
            )
            for f in sfs
        ]
    )
    rates = video_rates(fn, params, clips, batch_size=batch_size)[:, burn_in:, idx]
    resp = rates.mean(1).reshape(len(sfs), n_dir, len(idx)).transpose(2, 0, 1)  # (N, SF, D)
    best = resp.max(2).argmax(1)
    tuning = resp[np.arange(len(idx)), best]  # (N, D)
    pref, dsi, osi = direction_indices(tuning, dirs)
    ids = idx if neuron_id is None else np.asarray(neuron_id)
    return xr.Dataset(
        {
            "response": (("neuron", "spatial_frequency", "direction"), resp),
            "tuning": (("neuron", "direction"), tuning),
            "best_spatial_frequency": ("neuron", sfs[best]),
            "preferred_direction": ("neuron", pref),
            "dsi": ("neuron", dsi),
            "osi": ("neuron", osi),
        },
        coords={
            "neuron_id": ("neuron", ids),
            "neuron_index": ("neuron", idx),
            "spatial_frequency": sfs,
            "direction": dirs,
        },
        attrs={
            "units": "response, tuning: mean rate (model units); directions: degrees; "
            "spatial_frequency: cycles per pixel; dsi, osi: dimensionless",
            "direction_convention": "direction of motion: 0 rightward (+x), 90 downward (+y)",
            "temporal_frequency_hz": float(temporal_frequency),
            "contrast": float(contrast),
            "burn_in_frames": burn_in,
        },
    )


def direction_indices(tuning, directions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(preferred_direction, dsi, osi)`` of (neuron, direction) tuning curves sampled at
    evenly spaced ``directions`` (degrees, a multiple of 4 of them); see
    :func:`direction_tuning` for the definitions."""
    r = np.asarray(tuning, np.float64)
    d = np.asarray(directions, np.float64)
    n = len(d)
    w = r - r.min(1, keepdims=True)
    z = (w * np.exp(1j * np.deg2rad(d))[None]).sum(1)
    pref = np.rad2deg(np.angle(z)) % 360.0
    step = 360.0 / n
    p = np.rint(pref / step).astype(int) % n
    rows = np.arange(len(r))
    rp, rn = r[rows, p], r[rows, (p + n // 2) % n]
    with np.errstate(invalid="ignore", divide="ignore"):
        dsi = (rp - rn) / (rp + rn)
        ori = 0.5 * (r + np.roll(r, -n // 2, axis=1))  # O(o) for o = d (period n / 2)
        q = p % (n // 2)
        op, oo = ori[rows, q], ori[rows, (q + n // 4) % n]
        osi = (op - oo) / (op + oo)
    return pref, dsi, osi


def bar_responses(
    fn,
    params,
    *,
    video_shape,
    n_directions: int = 8,
    width: float = 2.0,
    speed: float = 1.0,
    contrast: float = 1.0,
    frame_rate: float = 30.0,
    neurons=None,
    neuron_id=None,
    batch_size: int = 16,
) -> xr.Dataset:
    """Responses to a bar sweeping across the frame in evenly spaced directions.

    Args:
      fn, params: the video model.
      video_shape: (T, H, W) or (C, T, H, W) (choose T so the bar crosses the frame:
        ``T >= hypot(H, W) / speed``).
      n_directions: directions evenly spaced from 0.
      width, speed, contrast: the bar (pixels, pixels per frame, standardized units).
      frame_rate: frames per second (for the ``time_s`` coordinate).
      neurons, neuron_id, batch_size: as :func:`direction_tuning`.

    Returns:
      ``xarray.Dataset``: ``response`` (neuron, direction, time) rates, ``peak`` (neuron,
      direction) the maximum over time, ``peak_time_s`` (neuron, direction).
    """
    where = "bar_responses"
    shape = video_shape4(where, video_shape)
    n_dir = check_int(where, "n_directions", n_directions, minimum=1)
    idx, _ = video_neurons(where, fn, params, shape, neurons)
    dirs = even_directions(n_dir)
    clips = moving_bars(dirs, video_shape=shape, width=width, speed=speed, contrast=contrast)
    rates = video_rates(fn, params, clips, batch_size=batch_size)[:, :, idx]  # (D, T, N)
    resp = rates.transpose(2, 0, 1)
    t = np.arange(shape[1]) / float(frame_rate)
    return xr.Dataset(
        {
            "response": (("neuron", "direction", "time"), resp),
            "peak": (("neuron", "direction"), resp.max(2)),
            "peak_time_s": (("neuron", "direction"), t[resp.argmax(2)]),
        },
        coords={
            "neuron_id": ("neuron", idx if neuron_id is None else np.asarray(neuron_id)),
            "neuron_index": ("neuron", idx),
            "direction": dirs,
            "time_s": ("time", t),
        },
        attrs={
            "units": "response, peak: rate (model units); direction: degrees; time: s",
            "direction_convention": "direction of motion: 0 rightward (+x), 90 downward (+y)",
            "width_px": float(width),
            "speed_px_per_frame": float(speed),
            "contrast": float(contrast),
        },
    )


__all__ = [
    "bar_responses",
    "direction_indices",
    "direction_tuning",
    "spatiotemporal_rf",
    "video_rates",
]
