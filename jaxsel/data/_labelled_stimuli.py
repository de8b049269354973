"""A labelled stimulus set with a known informative subset: oriented patches in an aperture.

Every image is one Gabor patch (a grating in a Gaussian aperture) on a grey background, at
a fixed place (``center``, aperture sd ``aperture`` pixels). The binary label is the patch's
orientation: ``theta`` (label 1) or ``theta + pi/2`` (label 0). Spatial frequency, phase and
contrast are drawn per image from the same distributions in both classes, so the label is
carried by orientation alone.

A neuron is informative about this label only if (a) its receptive field overlaps the
aperture and (b) its preferred orientation is near one of the two label orientations (a
neuron tuned to the oblique between them is driven equally by both classes). A population
with receptive fields spread over the image (the digital twin's) therefore holds a known
subset of informative neurons and a known subset of non-informative ones;
:func:`patch_alignment` predicts which from receptive-field parameters (centre, size and
preferred orientation), and the exact truth is the single-neuron information of the
noise-free rates (``jaxsel.measures.rate_information``).

Orientation convention as in :func:`jaxsel.data.gabor`: ``theta`` is the wave-vector
direction in radians, from +x towards +y.
"""

from __future__ import annotations

import jax
import numpy as np
import xarray as xr

from jaxsel._errors import DataError
from jaxsel.data._pixels import from_contrast
from jaxsel.data._stimuli import gabor, hw_tuple

_gabors = jax.jit(gabor, static_argnums=0)  # one compilation instead of one per jnp op


def _range(name: str, value, lo: float, hi: float) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise DataError(
            f"{name} = {value!r}", field=name, expected="a (low, high) pair of numbers"
        ) from None
    if not (lo <= a <= b <= hi) or not np.isfinite([a, b]).all():
        raise DataError(
            f"{name} = {value!r}", field=name, expected=f"low <= high, both within [{lo}, {hi}]"
        )
    return a, b


def oriented_patch_set(
    shape,
    n_per_class: int,
    *,
    theta: float = 0.0,
    center: tuple[float, float] | None = None,
    aperture: float | None = None,
    sf: tuple[float, float] = (0.12, 0.25),
    contrast: tuple[float, float] = (0.4, 0.9),
    seed: int = 0,
) -> xr.Dataset:
    """Gabor patches at orientation ``theta`` (label 1) or ``theta + pi/2`` (label 0).

    Args:
      shape: image (height, width) in pixels.
      n_per_class: images per label.
      theta: the label-1 orientation in radians (wave-vector direction).
      center: patch centre ``(x, y)`` in pixels (default: the image centre).
      aperture: Gaussian aperture sd in pixels (default ``0.15 * height``).
      sf: spatial frequency range (cycles per pixel), drawn log-uniformly per image.
      contrast: peak contrast range (contrast units, 1 = white), drawn uniformly per image.
      seed: NumPy generator seed (same seed, same set).

    Returns:
      ``xr.Dataset`` over ``image`` (label-1 images first): ``images`` (image, channel, y,
      x) raw grey levels (0..255), ``label`` (image,) 0/1, and per-image coords ``theta``,
      ``sf``, ``phase``, ``contrast``; attrs ``center_x``, ``center_y``, ``aperture``,
      ``label_theta``.

    Raises:
      DataError: ``n_per_class < 1``, a non-finite ``theta``, a bad range, or an aperture
        or centre outside the image.
    """
    h, w = hw_tuple(shape)
    n = int(n_per_class)
    if isinstance(n_per_class, bool) or n != n_per_class or n < 1:
        raise DataError(f"n_per_class = {n_per_class!r}", field="n_per_class", expected="int >= 1")
    if not np.isfinite(theta):
        raise DataError(f"theta = {theta!r}", field="theta", expected="a finite angle in radians")
    cx, cy = (w / 2.0, h / 2.0) if center is None else (float(center[0]), float(center[1]))
    if not (0 <= cx <= w - 1 and 0 <= cy <= h - 1):
        raise DataError(
            f"center = {center!r}", field="center", expected=f"(x, y) inside {w} x {h} pixels"
        )
    ap = 0.15 * h if aperture is None else float(aperture)
    if not (0 < ap <= max(h, w)):
        raise DataError(
            f"aperture = {aperture!r}", field="aperture", expected=f"sd in (0, {max(h, w)}] px"
        )
    sf_lo, sf_hi = _range("sf", sf, 1e-3, 0.5)
    c_lo, c_hi = _range("contrast", contrast, 0.0, 1.0)
    rng = np.random.default_rng(seed)
    th = np.r_[np.full(n, theta), np.full(n, theta + np.pi / 2)]
    f = np.exp(rng.uniform(np.log(sf_lo), np.log(sf_hi), 2 * n))
    ph = rng.uniform(0, 2 * np.pi, 2 * n)
    amp = rng.uniform(c_lo, c_hi, 2 * n)
    col = [np.asarray(a, np.float32)[:, None, None] for a in (th, f, ph)]
    c = np.asarray(_gabors((h, w), cx, cy, ap, *col))  # broadcast over images
    raw = np.clip(from_contrast(c * amp[:, None, None]), 0.0, 255.0).astype(np.float32)
    return xr.Dataset(
        {
            "images": (("image", "channel", "y", "x"), raw[:, None]),
            "label": ("image", np.r_[np.ones(n, np.int64), np.zeros(n, np.int64)]),
        },
        coords={
            "image": np.arange(2 * n),
            "theta": ("image", th),
            "sf": ("image", f),
            "phase": ("image", ph),
            "contrast": ("image", amp),
        },
        attrs={
            "center_x": cx,
            "center_y": cy,
            "aperture": ap,
            "label_theta": float(theta),
            "attribute": "patch orientation: 1 = theta, 0 = theta + pi/2",
        },
    )


def patch_alignment(stimuli: xr.Dataset, x0, y0, sigma, theta) -> np.ndarray:
    """How strongly each neuron's receptive field can tell the two classes apart (0..1).

    ``overlap * |cos 2 (theta_n - theta)|``: ``overlap = exp(-d^2 / (2 (aperture^2 +
    sigma_n^2)))`` with ``d`` the distance from the neuron's RF centre to the patch centre,
    times the orientation contrast between the two label orientations (1 at either label
    orientation, 0 at the oblique between them). A prediction from RF geometry only (it
    ignores gain, threshold and noise); the exact truth is the information of the rates.

    Args:
      stimuli: a set from :func:`oriented_patch_set`.
      x0, y0, sigma, theta: (neuron,) RF centre and size (pixels) and preferred orientation
        (radians), e.g. the twin's ``params``.

    Returns:
      (neuron,) alignment in [0, 1].
    """
    a = stimuli.attrs
    x0, y0, sigma, th = (np.asarray(v, np.float64) for v in (x0, y0, sigma, theta))
    d2 = (x0 - a["center_x"]) ** 2 + (y0 - a["center_y"]) ** 2
    overlap = np.exp(-d2 / (2.0 * (a["aperture"] ** 2 + sigma**2)))
    return overlap * np.abs(np.cos(2.0 * (th - a["label_theta"])))
