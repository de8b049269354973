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

    * ``preferred_direction``: the argmax (0.1 degree grid) of the fitted tuning curve, the
      least-squares circular Fourier series of ``R`` up to the third harmonic (fewer
      with fewer directions), so it is not limited to the sampled directions (SPEC 14);
    * ``dsi = (R(p) - R(p + 180)) / (R(p) + R(p + 180))`` at the sampled direction ``p``
      nearest the preferred one (0 for a neuron that responds equally to both directions
      of motion);
    * ``osi = |sum_d R(d) e^{2 i d}| / sum_d R(d)`` (1 - circular variance of orientation;
      0 for an untuned neuron).

    Args:
      fn, params: the video model.
      video_shape: (T, H, W) or (C, T, H, W) of the grating clips.
      n_directions: directions evenly spaced from 0 (even, >= 8).
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
    n_dir = check_int(where, "n_directions", n_directions, minimum=8)
    if n_dir % 2:
        raise ConfigError(
            f"{where}: n_directions = {n_dir}: expected an even number (each direction's "
            "opposite must be sampled for the DSI)"
        )
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
    """``(preferred_direction, dsi, osi)`` of (neuron, direction) tuning curves (rates
    >= 0) sampled at evenly spaced ``directions`` (degrees); see :func:`direction_tuning`
    for the definitions."""
    r = np.asarray(tuning, np.float64)
    d = np.asarray(directions, np.float64)
    n = len(d)
    rad = np.deg2rad(d)
    harmonics = np.arange(min(3, (n - 1) // 2) + 1)

    def basis(theta):  # (len(theta), 2 * len(harmonics) - 1) Fourier terms
        cols = [np.cos(k * theta) for k in harmonics]
        return np.stack(cols + [np.sin(k * theta) for k in harmonics[1:]], axis=1)

    coef = np.linalg.lstsq(basis(rad), r.T, rcond=None)[0]  # (terms, neuron)
    fine = np.deg2rad(np.arange(3600) / 10.0)
    pref = np.arange(3600)[np.argmax(basis(fine) @ coef, axis=0)] / 10.0
    p = np.rint(pref / (360.0 / n)).astype(int) % n
    rows = np.arange(len(r))
    rp, rn = r[rows, p], r[rows, (p + n // 2) % n]
    with np.errstate(invalid="ignore", divide="ignore"):
        dsi = (rp - rn) / (rp + rn)
        osi = np.abs((r * np.exp(2j * rad)[None]).sum(1)) / r.sum(1)
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
