"""Generated movie stimuli (no download): natural-like movies, drifting gratings, moving
bars, random walks of blocks and moving digits.

Every generator returns RAW movies ``(n, time, y, x)`` float32 on the 0..255 scale
(``BACKGROUND`` grey = zero contrast), seeded: the same arguments give the same movies.
Directions follow the image convention of :func:`jaxsel.data.grating`: frames are indexed
``[y, x]`` with ``y`` downwards, and a direction ``theta`` (radians) points from the +x axis
towards +y. A drifting grating with direction ``theta`` moves along ``theta`` (its wave
vector), at ``tf / sf`` pixels per frame (``tf`` in cycles per frame, ``sf`` in cycles per
pixel).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxsel._errors import ConfigError
from jaxsel.data._pixels import BACKGROUND, SCALE
from jaxsel.data._stimuli import dead_leaves, pink_noise


def _check(where: str, **counts) -> None:
    for k, v in counts.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ConfigError(f"{where}: {k} = {v!r}: expected an integer >= 1")


def _bilinear(canvas: np.ndarray, y0: float, x0: float, shape) -> np.ndarray:
    """The (h, w) window of ``canvas`` at sub-pixel offset (y0, x0), bilinear."""
    h, w = shape
    iy, ix = int(np.floor(y0)), int(np.floor(x0))
    fy, fx = y0 - iy, x0 - ix
    a = canvas[iy : iy + h + 1, ix : ix + w + 1]
    return (
        (1 - fy) * (1 - fx) * a[:h, :w]
        + (1 - fy) * fx * a[:h, 1:]
        + fy * (1 - fx) * a[1:, :w]
        + fy * fx * a[1:, 1:]
    )


def natural_movies(
    n: int,
    n_frames: int = 90,
    shape: tuple[int, int] = (36, 64),
    *,
    seed: int = 0,
    kind: str = "dead_leaves",
    speed: float = 0.6,
    saccade_rate_hz: float = 1.0,
    frame_rate_hz: float = 30.0,
    margin: int = 24,
) -> np.ndarray:
    """Natural-like movies: a window drifting over a large natural-like image, with
    saccade-like jumps.

    The window's velocity (pixels per frame, about ``speed``) turns slowly (a smoothed random
    walk of its direction); saccades arrive as a Poisson process at ``saccade_rate_hz`` and
    move the window to a new random place within one frame.

    Args:
      n: number of movies.
      n_frames: frames per movie.
      shape: frame (height, width).
      seed: random seed.
      kind: ``"dead_leaves"`` or ``"pink"`` (1/f^2 noise) canvases.
      speed: mean drift speed in pixels per frame.
      saccade_rate_hz, frame_rate_hz: saccades per second and frames per second.
      margin: canvas border (pixels) around the frame on each side.

    Returns:
      (n, n_frames, y, x) float32 raw movies.
    """
    _check("natural_movies", n=n, n_frames=n_frames)
    if kind not in ("dead_leaves", "pink"):
        raise ConfigError(f"natural_movies: kind = {kind!r}: expected 'dead_leaves' or 'pink'")
    h, w = shape
    big = (h + 2 * margin + 1, w + 2 * margin + 1)
    if kind == "dead_leaves":
        canvas = dead_leaves(n, big, seed=seed)
    else:
        canvas = np.clip(BACKGROUND + 40.0 * pink_noise(n, big, seed=seed), 0, 255)
    rng = np.random.default_rng(seed + 1)
    out = np.empty((n, n_frames, h, w), np.float32)
    p_saccade = saccade_rate_hz / frame_rate_hz
    for i in range(n):
        pos = rng.uniform(0, 2 * margin, 2)
        angle = rng.uniform(0, 2 * np.pi)
        for t in range(n_frames):
            out[i, t] = _bilinear(canvas[i], pos[0], pos[1], shape)
            if rng.random() < p_saccade:
                pos = rng.uniform(0, 2 * margin, 2)
                angle = rng.uniform(0, 2 * np.pi)
                continue
            angle += 0.3 * rng.standard_normal()
            step = speed * np.array([np.sin(angle), np.cos(angle)])
            new = pos + step
            bounce = (new < 0) | (new > 2 * margin)
            angle = angle + np.pi if bounce.any() else angle
            pos = np.clip(new, 0, 2 * margin)
    return out


def drifting_gratings(
    directions,
    n_frames: int = 60,
    shape: tuple[int, int] = (36, 64),
    *,
    sf=0.08,
    tf=0.1,
    contrast=1.0,
    phase=0.0,
) -> np.ndarray:
    """Full-field sinusoidal gratings drifting along each direction.

    Frame ``t`` of the grating with direction ``theta`` is
    ``contrast * cos(2 pi (sf * u - tf * t) + phase)`` with ``u = x cos(theta) + y sin(theta)``,
    so its crests move along ``theta`` at ``tf / sf`` pixels per frame.

    Args:
      directions: scalar or (n,) directions of motion in radians.
      n_frames: frames per movie.
      shape: frame (height, width).
      sf: spatial frequency, cycles per pixel (scalar or (n,)).
      tf: temporal frequency, cycles per frame (scalar or (n,); Hz = tf * frame rate).
      contrast: amplitude in contrast units, 0..1 (scalar or (n,)).
      phase: phase at frame 0 (scalar or (n,)).

    Returns:
      (n, n_frames, y, x) float32 raw movies.
    """
    _check("drifting_gratings", n_frames=n_frames)
    th = np.atleast_1d(np.asarray(directions, np.float64))
    sf, tf, contrast, phase = (
        np.broadcast_to(np.asarray(v, np.float64), th.shape) for v in (sf, tf, contrast, phase)
    )
    h, w = shape
    y, x = np.mgrid[:h, :w].astype(np.float64)
    u = x[None] * np.cos(th)[:, None, None] + y[None] * np.sin(th)[:, None, None]
    space = 2 * np.pi * sf[:, None, None] * u + phase[:, None, None]  # (n, y, x)
    time = 2 * np.pi * tf[:, None] * np.arange(n_frames)[None]  # (n, time)
    # cos(space - time) = cos(space) cos(time) + sin(space) sin(time): two outer products
    c = np.cos(space)[:, None] * np.cos(time)[:, :, None, None]
    c += np.sin(space)[:, None] * np.sin(time)[:, :, None, None]
    c *= contrast[:, None, None, None]
    return (BACKGROUND + SCALE * c).astype(np.float32)


def moving_bars(
    directions,
    n_frames: int = 60,
    shape: tuple[int, int] = (36, 64),
    *,
    width: float = 4.0,
    speed: float = 1.5,
    contrast: float = 1.0,
) -> np.ndarray:
    """A bar (white for ``contrast > 0``, black for < 0) sweeping across the frame along each
    direction, perpendicular to its motion, entering at one edge at frame 0.

    Args:
      directions: scalar or (n,) directions of motion in radians.
      n_frames: frames per movie.
      shape: frame (height, width).
      width: bar width in pixels (soft edges, 1 pixel).
      speed: pixels per frame.
      contrast: bar contrast, -1..1.

    Returns:
      (n, n_frames, y, x) float32 raw movies.
    """
    _check("moving_bars", n_frames=n_frames)
    th = np.atleast_1d(np.asarray(directions, np.float64))
    h, w = shape
    y, x = np.mgrid[:h, :w].astype(np.float64)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    u = (x[None] - cx) * np.cos(th)[:, None, None] + (y[None] - cy) * np.sin(th)[:, None, None]
    reach = 0.5 * np.hypot(h, w) + width
    centre = -reach + speed * np.arange(n_frames)  # bar centre along u, per frame
    d = np.abs(u[:, None] - centre[None, :, None, None])
    bar = np.clip(width / 2 + 0.5 - d, 0.0, 1.0)
    return (BACKGROUND + SCALE * contrast * bar).astype(np.float32)


def block_walks(
    n: int,
    n_frames: int = 90,
    shape: tuple[int, int] = (36, 64),
    *,
    seed: int = 0,
    n_blocks: int = 6,
    block: int = 4,
    step: float = 1.0,
) -> np.ndarray:
    """Black and white square blocks on grey, each on an independent random walk.

    Each frame every block moves by ``step`` pixels in one of the four directions (or stays,
    probability 1/5), wrapping around the frame edges.

    Returns:
      (n, n_frames, y, x) float32 raw movies.
    """
    _check("block_walks", n=n, n_frames=n_frames, n_blocks=n_blocks, block=block)
    h, w = shape
    rng = np.random.default_rng(seed)
    moves = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]], np.float64) * step
    out = np.full((n, n_frames, h, w), BACKGROUND, np.float32)
    yy, xx = np.mgrid[:h, :w]
    for i in range(n):
        pos = rng.uniform(0, [h, w], (n_blocks, 2))
        sign = rng.choice([-1.0, 1.0], n_blocks)
        for t in range(n_frames):
            frame = np.zeros((h, w))
            for b in range(n_blocks):
                dy = (yy - pos[b, 0]) % h
                dx = (xx - pos[b, 1]) % w
                frame = np.where((dy < block) & (dx < block), sign[b], frame)
            out[i, t] = BACKGROUND + SCALE * frame
            pos = (pos + moves[rng.integers(0, 5, n_blocks)]) % [h, w]
    return out


def moving_digits(
    n: int,
    n_frames: int = 40,
    shape: tuple[int, int] = (36, 64),
    *,
    seed: int = 0,
    n_digits: int = 2,
    digit_size: int = 16,
    speed: float = 1.5,
    background: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """A Moving-MNIST-like set: handwritten digit glyphs bouncing inside the frame.

    Glyphs are scikit-learn's bundled 8x8 digits (``sklearn.datasets.load_digits``, 1797
    images, no download), upsampled bilinearly to ``digit_size`` pixels; each moves in a
    straight line at ``speed`` pixels per frame and bounces off the edges. Overlapping digits
    combine by their maximum.

    Args:
      n: number of movies.
      n_frames: frames per movie.
      shape: frame (height, width), each at least ``digit_size``.
      seed: random seed.
      n_digits: digits per movie.
      digit_size: glyph size in pixels.
      speed: pixels per frame.
      background: grey level of the background (0 = black, as in Moving MNIST).

    Returns:
      ``(movies, labels)``: (n, n_frames, y, x) float32 raw movies (digits white, 255) and
      (n, n_digits) int digit classes.
    """
    _check("moving_digits", n=n, n_frames=n_frames, n_digits=n_digits, digit_size=digit_size)
    h, w = shape
    if min(h, w) < digit_size:
        raise ConfigError(
            f"moving_digits: shape = {tuple(shape)} is smaller than digit_size = {digit_size}"
        )
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    digits: Any = load_digits()
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(digits.target), (n, n_digits))
    glyphs = {
        int(k): np.clip(np.asarray(zoom(digits.images[k] / 16.0, digit_size / 8.0, order=1)), 0, 1)
        for k in np.unique(pick)
    }
    out = np.empty((n, n_frames, h, w), np.float32)
    lim = np.array([h - digit_size, w - digit_size], np.float64)
    for i in range(n):
        pos = rng.uniform(0, 1, (n_digits, 2)) * lim
        angle = rng.uniform(0, 2 * np.pi, n_digits)
        vel = speed * np.stack([np.sin(angle), np.cos(angle)], 1)
        for t in range(n_frames):
            frame = np.zeros((h, w))
            for d in range(n_digits):
                g = glyphs[int(pick[i, d])]
                y0, x0 = np.round(pos[d]).astype(int)
                sl = frame[y0 : y0 + g.shape[0], x0 : x0 + g.shape[1]]
                np.maximum(sl, g[: sl.shape[0], : sl.shape[1]], out=sl)
            out[i, t] = background + (255.0 - background) * frame
            pos = pos + vel
            low, high = pos < 0, pos > lim
            vel = np.where(low | high, -vel, vel)
            pos = np.clip(pos, 0, lim)
    return out, digits.target[pick].astype(np.int64)
