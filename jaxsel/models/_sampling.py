"""Bilinear sampling of feature maps and the Laplacian pyramid used by the readouts.

Coordinate convention (identical to ``torch.nn.functional.grid_sample(...,
align_corners=True, padding_mode="zeros")``): a grid point ``(gx, gy)`` in [-1, 1]^2 maps to
the pixel position ``x = (gx + 1) / 2 * (W - 1)``, ``y = (gy + 1) / 2 * (H - 1)``; so -1 and
+1 are the centres of the first and last pixels, ``gx`` runs along the width (columns) and
``gy`` along the height (rows). Taps outside the map contribute zero.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

GAUSS_5X5 = np.array(
    [
        [0.003765, 0.015019, 0.023792, 0.015019, 0.003765],
        [0.015019, 0.059912, 0.094907, 0.059912, 0.015019],
        [0.023792, 0.094907, 0.150342, 0.094907, 0.023792],
        [0.015019, 0.059912, 0.094907, 0.059912, 0.015019],
        [0.003765, 0.015019, 0.023792, 0.015019, 0.003765],
    ],
    dtype=np.float32,
)
GAUSS_3X3 = np.array(
    [[1 / 16, 1 / 8, 1 / 16], [1 / 8, 1 / 4, 1 / 8], [1 / 16, 1 / 8, 1 / 16]], dtype=np.float32
)
PYRAMID_FILTERS = {"gauss5x5": GAUSS_5X5, "gauss3x3": GAUSS_3X3}


def grid_to_pixels(grid, height: int, width: int):
    """Normalized grid (..., 2) [x, y] in [-1, 1] -> pixel coordinates (x, y) (align_corners)."""
    x = (grid[..., 0] + 1.0) * 0.5 * (width - 1)
    y = (grid[..., 1] + 1.0) * 0.5 * (height - 1)
    return x, y


def bilinear_sample(features, grid) -> jnp.ndarray:
    """Sample a feature map at one grid point per (image, neuron).

    Args:
      features: (batch, H, W, C) feature map (channels last).
      grid: (batch, N, 2) normalized positions ``[x, y]`` (see the module docstring), or
        (N, 2) for the same positions in every image.

    Returns:
      (batch, N, C) bilinearly interpolated features.
    """
    b, h, w, c = features.shape
    if grid.ndim == 2:
        grid = jnp.broadcast_to(grid[None], (b,) + grid.shape)
    x, y = grid_to_pixels(grid.astype(features.dtype), h, w)
    x0 = jnp.floor(x)
    y0 = jnp.floor(y)
    wx1 = x - x0
    wy1 = y - y0
    x0 = x0.astype(jnp.int32)
    y0 = y0.astype(jnp.int32)
    ys = jnp.stack([y0, y0, y0 + 1, y0 + 1], axis=-1)  # (b, N, 4) taps
    xs = jnp.stack([x0, x0 + 1, x0, x0 + 1], axis=-1)
    weights = jnp.stack(
        [(1 - wy1) * (1 - wx1), (1 - wy1) * wx1, wy1 * (1 - wx1), wy1 * wx1], axis=-1
    )
    valid = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
    # one gather of whole channel rows from the flattened (b*h*w, c) map: its gradient is a
    # single row scatter-add, about twice as fast on CPU as per-tap batched gathers
    rows = (
        jnp.clip(ys, 0, h - 1) * w
        + jnp.clip(xs, 0, w - 1)
        + (jnp.arange(b, dtype=jnp.int32) * (h * w))[:, None, None]
    )
    vals = features.reshape(b * h * w, c)[rows.reshape(-1)].reshape(b, -1, 4, c)
    return jnp.einsum("bnkc,bnk->bnc", vals, jnp.where(valid, weights, 0.0))


def _depthwise(x, kernel2d, *, stride=1, lhs_dilation=1, padding):
    """Apply one 2-D filter to every channel of an NHWC map."""
    c = x.shape[-1]
    k = jnp.broadcast_to(
        jnp.asarray(kernel2d, x.dtype)[:, :, None, None], kernel2d.shape + (1, c)
    )  # HWIO, groups=c
    return lax.conv_general_dilated(
        x,
        k,
        (stride, stride),
        padding,
        lhs_dilation=(lhs_dilation, lhs_dilation),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=c,
    )


def laplacian_pyramid(x, levels: int, filt: str = "gauss5x5") -> list[jnp.ndarray]:
    """Laplacian pyramid of a feature map (seed 002 / neuralpredictors convention).

    At each level: ``smooth = g * img`` (zero padding), ``lo = smooth[::2, ::2]``,
    ``lo2 = 4 * conv_transpose(lo, g, stride 2)`` back at the level's size, and the band
    ``hi = img - lo2``; the next level works on ``lo``.

    Args:
      x: (batch, H, W, C).
      levels: number of band-pass levels.
      filt: ``"gauss5x5"`` or ``"gauss3x3"``.

    Returns:
      ``levels + 1`` maps: the band-pass maps (finest first), then the final low-pass.
    """
    g = PYRAMID_FILTERS[filt]
    k = g.shape[0]
    p = k // 2
    out = []
    img = x
    for _ in range(levels):
        h, w = img.shape[1:3]
        smooth = _depthwise(img, g, padding=((p, p), (p, p)))
        lo = smooth[:, ::2, ::2]
        # transposed conv (stride 2, padding p, output_padding (h+1)%2): zero-insertion
        # upsampling then a correlation with the flipped (here symmetric) filter.
        oph, opw = (h + 1) % 2, (w + 1) % 2
        lo2 = 4.0 * _depthwise(
            lo,
            g[::-1, ::-1],
            lhs_dilation=2,
            padding=((k - 1 - p, k - 1 - p + oph), (k - 1 - p, k - 1 - p + opw)),
        )
        out.append(img - lo2)
        img = lo
    out.append(img)
    return out


__all__ = [
    "GAUSS_3X3",
    "GAUSS_5X5",
    "PYRAMID_FILTERS",
    "bilinear_sample",
    "grid_to_pixels",
    "laplacian_pyramid",
]
