"""Procedural stimuli (natural-like images, Gabors, gratings) and labelled stimulus sets.

Pixel convention everywhere in jaxsel: an image is indexed ``[y, x]`` (row, column), ``x``
grows to the right and ``y`` downwards. Orientation ``theta`` is the direction of a grating's
wave vector in that frame (radians, from the +x axis towards +y); spatial frequency ``sf`` is
in cycles per pixel. ``gabor`` and ``grating`` are pure ``jax.numpy`` functions, so they can
be differentiated and vmapped over their parameters. Raw grey levels and contrast images
follow ``jaxsel.data`` (``BACKGROUND``, ``SCALE``, ``to_contrast``, ``from_contrast``).

Labelled sets, for selectivity measures (``jaxsel.measures.selectivity``): a label per image
from a file (:func:`labels_from_file`) or a function (:func:`labels_from_function`), from the
image's oriented energy (:func:`orientation_energy`, :func:`orientation_labels`), or a
generated set (:func:`grating_stimuli`); :func:`add_gaussian_noise` perturbs any set.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from jaxsel._errors import DataError
from jaxsel.data._pixels import BACKGROUND, as_images, from_contrast


def hw_tuple(shape) -> tuple[int, int]:
    """``(H, W)`` from any 2-sequence (list, array shape); the ``tuple(shape)`` of 2-D code."""
    h, w = shape
    return (h, w)


def _grid(shape):
    h, w = shape
    y, x = jnp.meshgrid(
        jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij"
    )
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
    env = jnp.exp(-(u**2 + (v / aspect) ** 2) / (2.0 * sigma**2))
    return env * jnp.cos(2.0 * jnp.pi * sf * u + phase)


def grating(shape: tuple[int, int], theta, sf, phase, contrast=1.0):
    """A full-field sinusoidal grating with values in [-contrast, contrast]."""
    y, x = _grid(shape)
    u = x * jnp.cos(theta) + y * jnp.sin(theta)
    return contrast * jnp.cos(2.0 * jnp.pi * sf * u + phase)


def pink_noise(
    n: int, shape: tuple[int, int] = (36, 64), *, seed: int = 0, exponent: float = 2.0
) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/|k|^exponent, each image z-scored.

    Returns:
      (n, height, width) float32 array, zero mean and unit std per image.
    """
    h, w = shape
    rng = np.random.default_rng(seed)
    ky = np.fft.fftfreq(h)[:, None]
    kx = np.fft.rfftfreq(w)[None, :]
    k = np.sqrt(kx**2 + ky**2)
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
        covered = d2 <= r[:, None, None] ** 2  # (disc, h, w)
        n = covered.shape[0]
        last = n - 1 - jnp.argmax(covered[::-1], axis=0)  # topmost covering disc
        return jnp.where(covered.any(0), g[last], bg)

    return jax.vmap(one)(centres, radii, greys, background)


def dead_leaves(
    n: int,
    shape: tuple[int, int] = (36, 64),
    *,
    seed: int = 0,
    n_discs: int = 300,
    r_min: float = 1.5,
    r_max: float = 24.0,
    alpha: float = 3.0,
    texture: float = 0.15,
    chunk: int = 512,
) -> np.ndarray:
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
    radii = ((r_max**a - r_min**a) * u + r_min**a) ** (1.0 / a)  # inverse CDF
    margin = r_max / 2
    centres = np.stack(
        [
            rng.uniform(-margin, h + margin, (n, n_discs)),
            rng.uniform(-margin, w + margin, (n, n_discs)),
        ],
        axis=-1,
    )
    greys = rng.uniform(0.15, 0.85, (n, n_discs))
    background = rng.uniform(0.15, 0.85, n)
    out = np.empty((n, h, w), np.float32)
    for s in range(0, n, chunk):
        sl = slice(s, s + chunk)
        out[sl] = np.asarray(
            _paint_leaves(
                jnp.asarray(centres[sl], jnp.float32),
                jnp.asarray(radii[sl], jnp.float32),
                jnp.asarray(greys[sl], jnp.float32),
                jnp.asarray(background[sl], jnp.float32),
                shape,
            )
        )
    out += texture * 0.25 * pink_noise(n, shape, seed=seed + 1)
    return (255.0 * np.clip(out, 0.0, 1.0)).astype(np.float32)


def natural_like(
    n: int, shape: tuple[int, int] = (36, 64), *, seed: int = 0, kind: str = "dead_leaves"
) -> np.ndarray:
    """Seeded natural-like grey images in [0, 255].

    Args:
      kind: ``"dead_leaves"``, ``"pink"`` (1/f^2 Gaussian noise) or ``"mix"`` (half each,
        interleaved).
    """
    if kind == "dead_leaves":
        return dead_leaves(n, shape, seed=seed)
    if kind == "pink":
        return np.clip(BACKGROUND + 40.0 * pink_noise(n, shape, seed=seed), 0, 255).astype(
            np.float32
        )
    if kind == "mix":
        out = natural_like(n, shape, seed=seed, kind="dead_leaves")
        out[1::2] = natural_like(n // 2, shape, seed=seed + 7, kind="pink")
        return out
    raise ValueError(f"unknown stimulus kind {kind!r}; expected 'dead_leaves', 'pink' or 'mix'")


# --------------------------------------------------------------------------- labelled stimuli


def add_gaussian_noise(
    images, amplitude: float, *, seed: int = 0, clip: tuple[float, float] | None = None
) -> np.ndarray:
    """Images plus i.i.d. Gaussian pixel noise of standard deviation ``amplitude``.

    Args:
      images: raw images (any shape).
      amplitude: noise sd in the images' pixel units (e.g. 20 on a 0..255 scale).
      seed: NumPy generator seed (same seed, same noise).
      clip: optional (low, high) range to clip to (e.g. (0, 255)).
    """
    if amplitude < 0:
        raise DataError(f"amplitude={amplitude}", field="amplitude", expected=">= 0")
    x = np.asarray(images, np.float32)
    if amplitude > 0:
        x = x + amplitude * np.random.default_rng(seed).standard_normal(x.shape).astype(np.float32)
    if clip is not None:
        x = np.clip(x, clip[0], clip[1])
    return x


# --------------------------------------------------------------------------- labels


def labels_from_file(
    path: str | Path, *, column: str | None = None, image_id=None, id_column: str = "image_id"
) -> xr.DataArray:
    """Read a label per image from CSV (one id column + label columns) or ``.npy``.

    Args:
      path: ``.csv`` or ``.npy`` (a vector, in image order).
      column: CSV label column (required if there are several).
      image_id: optional ids to return labels for, in that order.
      id_column: the CSV column with image ids.

    Returns:
      ``xr.DataArray`` (image) of integer labels with an ``image_id`` coord.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("label file not found", file=path, expected="a .csv or .npy file")
    if path.suffix == ".npy":
        lab = np.load(path)
        ids = np.arange(len(lab))
    elif path.suffix == ".csv":
        import pandas as pd

        df = pd.read_csv(path)
        if id_column not in df.columns:
            raise DataError(
                f"no column '{id_column}' (columns: {list(df.columns)})",
                file=path,
                field=id_column,
                expected="an image id column",
            )
        cols = [c for c in df.columns if c != id_column]
        if column is None:
            if len(cols) != 1:
                raise DataError(
                    f"several label columns {cols}",
                    file=path,
                    field="column",
                    expected="pass column=<name>",
                )
            column = cols[0]
        if column not in df.columns:
            raise DataError(f"no column '{column}' (columns: {cols})", file=path, field=column)
        lab, ids = df[column].to_numpy(), df[id_column].to_numpy()
    else:
        raise DataError(f"unsupported suffix '{path.suffix}'", file=path, expected=".csv or .npy")
    lab = np.asarray(lab)
    if lab.ndim != 1:
        raise DataError(f"labels have shape {lab.shape}", file=path, expected="a vector")
    if lab.dtype == bool or np.issubdtype(lab.dtype, np.number):
        if not np.all(lab == np.round(lab)) or np.any(lab < 0):
            raise DataError(
                "labels are not non-negative integers",
                file=path,
                field=column or "labels",
                expected="0/1 or classes 0..C-1",
            )
        lab = lab.astype(np.int64)
    else:
        raise DataError(
            f"labels of dtype {lab.dtype}",
            file=path,
            field=column or "labels",
            expected="0/1 or classes 0..C-1",
        )
    out = xr.DataArray(lab, dims=("image",), coords={"image_id": ("image", ids)}, name="label")
    if image_id is not None:
        pos = {v: i for i, v in enumerate(ids.tolist())}
        want = np.asarray(image_id).tolist()
        missing = [v for v in want if v not in pos]
        if missing:
            raise DataError(f"no label for image ids {missing[:5]}", file=path, field=id_column)
        out = out.isel(image=[pos[v] for v in want])
    return out


def labels_from_function(images, fn: Callable, *, batched: bool = False) -> xr.DataArray:
    """Label every image with a user function.

    Args:
      images: (n, ...) images.
      fn: ``fn(image) -> label`` (or ``fn(images) -> (n,)`` labels with ``batched=True``);
        booleans become 0/1.
      batched: call ``fn`` once on all images.

    Returns:
      ``xr.DataArray`` (image) of integer labels.
    """
    x = np.asarray(images)
    lab = np.asarray(fn(x)) if batched else np.asarray([np.asarray(fn(im)) for im in x])
    if lab.shape != (len(x),):
        raise DataError(
            f"label function returned shape {lab.shape}",
            field="fn",
            expected=f"one label per image, ({len(x)},)",
        )
    if lab.dtype != bool and not np.all(lab == np.round(lab)):
        raise DataError(
            "label function returned non-integer labels",
            field="fn",
            expected="booleans or integer classes",
        )
    return xr.DataArray(lab.astype(np.int64), dims=("image",), name="label")


def orientation_energy(
    images,
    theta,
    sf=None,
    *,
    bandwidth: float = np.pi / 8,
    octaves: float = 1.0,
    background: float = BACKGROUND,
) -> np.ndarray:
    """Fraction of each image's (non-DC) power at orientation ``theta`` (and near ``sf``).

    Orientation = direction of the wave vector (radians from +x towards +y, y = row index
    downwards), as ``jaxsel.data.grating``; the band is ``|angle - theta| <=
    bandwidth`` modulo pi and, if ``sf`` is given, ``|log2(|k| / sf)| <= octaves / 2``.

    Args:
      images: (n, [1,] y, x) raw images.
      theta: scalar or (m,) orientations (e.g. each neuron's preferred one).
      sf: None, scalar or (m,) spatial frequencies in cycles/pixel.
      bandwidth: half-width of the orientation band in radians.
      octaves: full width of the frequency band in octaves.
      background: grey level subtracted before the transform.

    Returns:
      (n,) for scalar ``theta``, else (n, m) fractions in [0, 1].
    """
    x = as_images(images)[:, 0].astype(np.float64) - background
    h, w = x.shape[1:]
    power = np.abs(np.fft.fft2(x)) ** 2
    ky = np.fft.fftfreq(h)[:, None] * np.ones((1, w))
    kx = np.fft.fftfreq(w)[None, :] * np.ones((h, 1))
    kr = np.hypot(kx, ky)
    ang = np.arctan2(ky, kx)
    scalar = np.ndim(theta) == 0
    th = np.atleast_1d(np.asarray(theta, np.float64))
    d = np.abs((ang[None] - th[:, None, None] + np.pi / 2) % np.pi - np.pi / 2)
    band = (d <= bandwidth) & (kr[None] > 0)
    if sf is not None:
        f = np.broadcast_to(np.atleast_1d(np.asarray(sf, np.float64)), th.shape)
        with np.errstate(divide="ignore"):
            band &= np.abs(np.log2(kr[None] / f[:, None, None])) <= octaves / 2
    total = power.reshape(len(x), -1)[:, kr.ravel() > 0].sum(1)
    e = power.reshape(len(x), -1) @ band.reshape(len(th), -1).T.astype(np.float64)
    frac = e / np.where(total > 0, total, 1.0)[:, None]
    return frac[:, 0] if scalar else frac


def orientation_labels(
    images, theta, sf=None, *, threshold: float | None = None, quantile: float = 0.5, **band
) -> xr.DataArray:
    """Binary label: is structure at orientation ``theta`` present in the image?

    Positive when the image's :func:`orientation_energy` exceeds ``threshold`` or, if None,
    the given ``quantile`` of that energy over the images (per orientation), so the median
    default gives balanced classes. With the twin, pass ``twin.params['theta']`` (and
    ``'sf'``) for a per-neuron label: "the neuron's preferred orientation is present".

    Returns:
      ``xr.DataArray`` (image,) or (image, neuron) of 0/1 labels.
    """
    e = orientation_energy(images, theta, sf, **band)
    thr = np.quantile(e, quantile, axis=0) if threshold is None else threshold
    lab = (e > thr).astype(np.int64)
    dims = ("image",) if lab.ndim == 1 else ("image", "neuron")
    return xr.DataArray(
        lab, dims=dims, name="label", attrs={"attribute": "orientation energy above threshold"}
    )


def grating_stimuli(
    shape: tuple[int, int],
    theta: float,
    sf: float,
    n_per_class: int,
    *,
    seed: int = 0,
    contrast: float = 0.5,
    noise: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """A labelled set: gratings at ``theta`` (label 1) vs at ``theta + pi/2`` (label 0).

    Phases are random per image; optional white pixel noise (contrast units) on top.

    Returns:
      ``(images, labels)``: (2 n, 1, y, x) float32 RAW images (0..255 scale, grey ``BACKGROUND``)
      and (2 n,) int labels, positives first.
    """
    rng = np.random.default_rng(seed)
    n = int(n_per_class)
    th = np.r_[np.full(n, theta), np.full(n, theta + np.pi / 2)]
    ph = rng.uniform(0, 2 * np.pi, 2 * n)
    make = jax.vmap(lambda t, p: grating(hw_tuple(shape), t, sf, p, contrast))
    c = np.asarray(make(jnp.asarray(th, jnp.float32), jnp.asarray(ph, jnp.float32)))
    if noise > 0:
        c = c + noise * rng.standard_normal(c.shape)
    raw = np.clip(from_contrast(c), 0.0, 255.0).astype(np.float32)[:, None]
    return raw, np.r_[np.ones(n, np.int64), np.zeros(n, np.int64)]
