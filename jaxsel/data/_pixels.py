"""The pixel convention: raw grey levels, contrast images and the MEI norm budget.

A RAW image holds grey levels on the 8-bit scale (0..255, mid-grey ``BACKGROUND``). Its
CONTRAST image is ``u = (x - BACKGROUND) / SCALE``, about [-1, 1]; the inverse is
``x = BACKGROUND + SCALE * u``. Recorded data sets that are not on this scale use their own
``background`` (the mean pixel) and ``scale`` (the pixel std) in the same two formulas.

The norm budget of optimal stimuli (MEIs, optimal Gabors) is a fraction of the median L2
norm of the training images' contrast images (:func:`norm_budget`).
"""

from __future__ import annotations

import numpy as np

from jaxsel._errors import DataError

BACKGROUND = 127.5
"""Mid-grey of the 8-bit scale: the raw value of a zero-contrast pixel."""
SCALE = 127.5
"""Raw grey levels per unit of contrast (so contrast 1 is white, -1 black)."""
BUDGET_FRACTION = 0.15
"""Default norm budget, as a fraction of the median contrast norm of the training images."""


def to_contrast(x, background=BACKGROUND, scale=SCALE):
    """Raw images -> contrast images ``(x - background) / scale`` (NumPy or JAX arrays)."""
    return (x - background) / scale


def from_contrast(u, background=BACKGROUND, scale=SCALE):
    """Contrast images -> raw images ``u * scale + background`` (NumPy or JAX arrays)."""
    return u * scale + background


def norm_budget(
    contrast_images, fraction: float = BUDGET_FRACTION, *, center: bool = False
) -> float:
    """``fraction`` x the median L2 norm of the images' contrast images.

    Args:
      contrast_images: (n, ...) contrast images (see :func:`to_contrast`).
      fraction: the budget as a fraction of the median norm.
      center: remove each image's own mean before taking its norm.

    Returns:
      The L2 budget (a float, in contrast units).
    """
    c = np.asarray(contrast_images)
    c = c.reshape(len(c), -1)
    if center:
        c = c - c.mean(1, keepdims=True)
    return fraction * float(np.median(np.linalg.norm(c, axis=1)))


def as_images(images, image_shape: tuple | None = None) -> np.ndarray:
    """Raw images as float32 (n, channel, y, x), checked against ``image_shape``.

    Args:
      images: (n, channel, y, x) or (n, y, x) array (or ``xarray.DataArray``).
      image_shape: expected (channel, y, x), or None/() to accept any.

    Raises:
      DataError: naming ``images``, for a wrong number of dims or a shape that is not
        ``image_shape``.
    """
    x = np.asarray(getattr(images, "values", images), np.float32)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise DataError(
            f"images have shape {x.shape}",
            field="images",
            expected="(n, channel, y, x) or (n, y, x) raw images",
        )
    if image_shape and tuple(x.shape[1:]) != tuple(image_shape):
        raise DataError(
            f"images are (channel, y, x) = {tuple(x.shape[1:])} but the model "
            f"takes {tuple(image_shape)}",
            field="images",
            expected=f"images of shape (n, {', '.join(map(str, image_shape))})",
        )
    return x
