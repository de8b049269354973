"""Procedural stimuli: natural-like images, Gabors and gratings.

Pixel convention everywhere in jaxsel: an image is indexed ``[y, x]`` (row, column), ``x``
grows to the right and ``y`` downwards. Orientation ``theta`` is the direction of a grating's
wave vector in that frame (radians, from the +x axis towards +y); spatial frequency ``sf`` is
in cycles per pixel. ``gabor`` and ``grating`` are pure ``jax.numpy`` functions, so they can
be differentiated and vmapped over their parameters.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np


def _grid(shape):
    h, w = shape
    y, x = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                        indexing="ij")
    return y, x


def gabor(shape: tuple[int, int], x0, y0, sigma, theta, sf, phase, aspect=1.0):
    """A Gabor patch (unnormalised, peak 1): Gaussian envelope times a cosine carrier.

    Args:
      shape: (height, width) in pixels.
      x0, y0: centre in pixels.
      sigma: envelope standard deviation in pixels (along the wave vector).
      theta: wave-vector direction in radians.
      sf: spatial frequency in cycles per pixel.
      phase: carrier phase in radians (0 = even/cosine, pi/2 = odd).
      aspect: envelope sigma across the wave vector divided by ``sigma``.

    Returns:
      (height, width) float32 array.
    """
    y, x = _grid(shape)
    dx, dy = x - x0, y - y0
    u = dx * jnp.cos(theta) + dy * jnp.sin(theta)
    v = -dx * jnp.sin(theta) + dy * jnp.cos(theta)
    env = jnp.exp(-(u ** 2 + (v / aspect) ** 2) / (2.0 * sigma ** 2))
    return env * jnp.cos(2.0 * jnp.pi * sf * u + phase)


def grating(shape: tuple[int, int], theta, sf, phase, contrast=1.0):
    """A full-field sinusoidal grating with values in [-contrast, contrast]."""
    y, x = _grid(shape)
    u = x * jnp.cos(theta) + y * jnp.sin(theta)
    return contrast * jnp.cos(2.0 * jnp.pi * sf * u + phase)


def pink_noise(n: int, shape: tuple[int, int] = (36, 64), *, seed: int = 0,
               exponent: float = 2.0) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/|k|^exponent, each image z-scored.

    Returns:
      (n, height, width) float32 array, zero mean and unit std per image.
    """
    h, w = shape
    rng = np.random.default_rng(seed)
    ky = np.fft.fftfreq(h)[:, None]
    kx = np.fft.rfftfreq(w)[None, :]
    k = np.sqrt(kx ** 2 + ky ** 2)
    k[0, 0] = np.inf
    amp = k ** (-exponent / 2.0)
    white = rng.standard_normal((n, h, w))
    img = np.fft.irfft2(np.fft.rfft2(white) * amp, s=(h, w))
    img -= img.mean(axis=(1, 2), keepdims=True)
    img /= img.std(axis=(1, 2), keepdims=True) + 1e-12
    return img.astype(np.float32)


@partial(jax.jit, static_argnames=("shape",))
def _paint_leaves(centres, radii, greys, background, shape):
    """Occlusion: each pixel takes the grey of the last disc covering it (vmapped over images)."""
    y, x = _grid(shape)

    def one(c, r, g, bg):
        d2 = (y[None] - c[:, 0, None, None]) ** 2 + (x[None] - c[:, 1, None, None]) ** 2
        covered = d2 <= r[:, None, None] ** 2                       # (disc, h, w)
        n = covered.shape[0]
        last = n - 1 - jnp.argmax(covered[::-1], axis=0)            # topmost covering disc
        return jnp.where(covered.any(0), g[last], bg)

    return jax.vmap(one)(centres, radii, greys, background)


def dead_leaves(n: int, shape: tuple[int, int] = (36, 64), *, seed: int = 0,
                n_discs: int = 300, r_min: float = 1.5, r_max: float = 24.0,
                alpha: float = 3.0, texture: float = 0.15, chunk: int = 512) -> np.ndarray:
    """Dead-leaves images: occluding discs with radii ~ r^-alpha, plus faint pink texture.

    Their statistics (occlusion edges, scale invariance, ~1/f^2 power) resemble natural
    images, which makes them a good seeded, download-free stand-in.

    Args:
      n: number of images.
      shape: (height, width).
      seed: random seed; the same seed gives the same images.
      n_discs: discs per image (enough to cover the frame).
      r_min, r_max, alpha: power-law radius distribution p(r) ~ r^-alpha on [r_min, r_max].
      texture: amplitude of the added 1/f^2 texture relative to the grey-level range.
      chunk: images painted per compiled call (bounds memory).

    Returns:
      (n, height, width) float32 grey levels in [0, 255].
    """
    h, w = shape
    rng = np.random.default_rng(seed)
    u = rng.random((n, n_discs))
    a = 1.0 - alpha
    radii = ((r_max ** a - r_min ** a) * u + r_min ** a) ** (1.0 / a)     # inverse CDF
    margin = r_max / 2
    centres = np.stack([rng.uniform(-margin, h + margin, (n, n_discs)),
                        rng.uniform(-margin, w + margin, (n, n_discs))], axis=-1)
    greys = rng.uniform(0.15, 0.85, (n, n_discs))
    background = rng.uniform(0.15, 0.85, n)
    out = np.empty((n, h, w), np.float32)
    for s in range(0, n, chunk):
        sl = slice(s, s + chunk)
        out[sl] = np.asarray(_paint_leaves(
            jnp.asarray(centres[sl], jnp.float32), jnp.asarray(radii[sl], jnp.float32),
            jnp.asarray(greys[sl], jnp.float32), jnp.asarray(background[sl], jnp.float32),
            shape))
    out += texture * 0.25 * pink_noise(n, shape, seed=seed + 1)
    return (255.0 * np.clip(out, 0.0, 1.0)).astype(np.float32)


def natural_like(n: int, shape: tuple[int, int] = (36, 64), *, seed: int = 0,
                 kind: str = "dead_leaves") -> np.ndarray:
    """Seeded natural-like grey images in [0, 255].

    Args:
      kind: ``"dead_leaves"``, ``"pink"`` (1/f^2 Gaussian noise) or ``"mix"`` (half each,
        interleaved).
    """
    if kind == "dead_leaves":
        return dead_leaves(n, shape, seed=seed)
    if kind == "pink":
        return np.clip(127.5 + 40.0 * pink_noise(n, shape, seed=seed), 0, 255).astype(np.float32)
    if kind == "mix":
        out = natural_like(n, shape, seed=seed, kind="dead_leaves")
        out[1::2] = natural_like(n // 2, shape, seed=seed + 7, kind="pink")
        return out
    raise ValueError(f"unknown stimulus kind {kind!r}; expected 'dead_leaves', 'pink' or 'mix'")
