"""Movie stimuli for in-silico experiments: drifting gratings and moving bars (NumPy).

Conventions: clips are (stimulus, channel, time, y, x) float32 in the model's standardized
pixel units (0 = the mean grey; ``contrast`` is the amplitude in those units). A direction
``theta`` (degrees) is the direction of motion: 0 = rightward (+x, increasing column),
90 = downward (+y, increasing row), 180 = leftward, 270 = upward. Frame rate 30 Hz unless
given.
"""

from __future__ import annotations

import math

import numpy as np

from jaxsel._checks import check_int, check_number
from jaxsel._errors import ConfigError


def video_shape4(where: str, video_shape) -> tuple[int, int, int, int]:
    """(T, H, W) or (C, T, H, W) -> (C, T, H, W), validated."""
    try:
        shape = tuple(int(s) for s in video_shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) == 3:
        shape = (1,) + shape
    if len(shape) != 4 or min(shape) < 1:
        raise ConfigError(
            f"{where}: video_shape = {video_shape!r}: expected (time, y, x) or "
            "(channel, time, y, x) positive integers"
        )
    return shape  # type: ignore[return-value]


def _directions(where: str, directions) -> np.ndarray:
    d = np.atleast_1d(np.asarray(directions, np.float64))
    if d.ndim != 1 or d.size == 0 or not np.all(np.isfinite(d)):
        raise ConfigError(f"{where}: directions must be a non-empty list of finite degrees")
    return d


def drifting_gratings(
    directions,
    *,
    video_shape,
    spatial_frequency: float,
    temporal_frequency: float,
    contrast: float = 1.0,
    phase: float = 0.0,
    frame_rate: float = 30.0,
) -> np.ndarray:
    """Full-field sinusoidal gratings drifting in each direction.

    ``s(x, y, t) = contrast * cos(2 pi (f (x cos d + y sin d) - tf t / frame_rate) + phase)``
    (pixel coordinates from the frame centre): the crests move in direction ``d`` at
    ``tf / f`` pixels per second.

    Args:
      directions: motion directions in degrees.
      video_shape: (T, H, W) or (C, T, H, W); every channel gets the same grating.
      spatial_frequency: cycles per pixel (> 0, < 0.5).
      temporal_frequency: cycles per second (Hz, >= 0).
      contrast: amplitude in standardized pixel units.
      phase: spatial phase at t = 0 (radians).
      frame_rate: frames per second.

    Returns:
      (direction, C, T, H, W) float32.
    """
    where = "drifting_gratings"
    c, t, h, w = video_shape4(where, video_shape)
    d = np.deg2rad(_directions(where, directions))
    f = check_number(where, "spatial_frequency", spatial_frequency, positive=True)
    if f >= 0.5:
        raise ConfigError(f"{where}: spatial_frequency = {f}: expected < 0.5 cycles per pixel")
    tf = check_number(where, "temporal_frequency", temporal_frequency, nonnegative=True)
    rate = check_number(where, "frame_rate", frame_rate, positive=True)
    amp = check_number(where, "contrast", contrast)
    ph = check_number(where, "phase", phase)
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    yy, xx = yy - (h - 1) / 2, xx - (w - 1) / 2
    u = xx[None] * np.cos(d)[:, None, None] + yy[None] * np.sin(d)[:, None, None]  # (D, H, W)
    time = np.arange(t) / rate
    arg = 2 * np.pi * (f * u[:, None] - tf * time[None, :, None, None]) + ph
    g = (amp * np.cos(arg)).astype(np.float32)  # (D, T, H, W)
    return np.repeat(g[:, None], c, axis=1)


def moving_bars(
    directions,
    *,
    video_shape,
    width: float = 2.0,
    speed: float = 1.0,
    contrast: float = 1.0,
) -> np.ndarray:
    """A bar (perpendicular to its motion) sweeping across the frame in each direction.

    The bar centre starts half a frame diagonal before the frame centre (outside the frame)
    and moves ``speed`` pixels per frame; pixels within ``width / 2`` of it have value
    ``contrast`` (a light bar for positive contrast), the rest 0 (mean grey).

    Args:
      directions: motion directions in degrees.
      video_shape: (T, H, W) or (C, T, H, W).
      width: bar width in pixels (> 0).
      speed: pixels per frame (> 0).
      contrast: bar value in standardized pixel units.

    Returns:
      (direction, C, T, H, W) float32.
    """
    where = "moving_bars"
    c, t, h, w = video_shape4(where, video_shape)
    d = np.deg2rad(_directions(where, directions))
    width = check_number(where, "width", width, positive=True)
    speed = check_number(where, "speed", speed, positive=True)
    amp = check_number(where, "contrast", contrast)
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    yy, xx = yy - (h - 1) / 2, xx - (w - 1) / 2
    u = xx[None] * np.cos(d)[:, None, None] + yy[None] * np.sin(d)[:, None, None]
    centre = -math.hypot(h, w) / 2 + speed * np.arange(t)  # (T,)
    on = np.abs(u[:, None] - centre[None, :, None, None]) <= width / 2
    bars = (amp * on).astype(np.float32)
    return np.repeat(bars[:, None], c, axis=1)


def even_directions(n: int) -> np.ndarray:
    """``n`` directions evenly spaced on the circle, in degrees from 0."""
    n = check_int("even_directions", "n", n, minimum=1)
    return np.arange(n) * (360.0 / n)


__all__ = ["drifting_gratings", "even_directions", "moving_bars", "video_shape4"]
