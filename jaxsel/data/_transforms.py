"""Explicit, invertible transforms between raw data and model space.

A :class:`Standardizer` holds the train-tier statistics; ``images``/``responses`` map raw data
to model space and the ``*_inverse`` methods map back. Works on NumPy and JAX arrays alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from jaxsel.data._dataset import global_image_stats


@dataclass(frozen=True)
class Standardizer:
    """Image z-score and per-neuron response scaling.

    Attributes:
      image_mean: scalar or (channel, y, x) array subtracted from images.
      image_std: scalar or (channel, y, x) array images are divided by.
      response_scale: (neuron,) array responses are divided by (std with a floor).
    """

    image_mean: np.ndarray
    image_std: np.ndarray
    response_scale: np.ndarray

    def images(self, x):
        return (x - self.image_mean) / self.image_std

    def images_inverse(self, z):
        return z * self.image_std + self.image_mean

    def responses(self, r):
        return r / self.response_scale

    def responses_inverse(self, r):
        return r * self.response_scale


def standardizer(
    ds: xr.Dataset,
    *,
    per_pixel: bool = False,
    scale_responses: bool = True,
    response_floor: float = 0.01,
) -> Standardizer:
    """Build the standardizer from a dataset's train-tier statistics.

    Args:
      ds: a dataset from :func:`jaxsel.data.make_dataset` (carries the statistics).
      per_pixel: z-score each pixel separately instead of with the global mean/std.
      scale_responses: divide responses by their per-neuron std (else leave them as they are).
      response_floor: stds below ``response_floor * mean(std)`` are raised to it, so silent
        neurons are not blown up.

    Returns:
      A :class:`Standardizer`.
    """
    if per_pixel:
        mean = ds["image_mean"].values
        std = np.maximum(ds["image_std"].values, 1e-6)
    else:
        m, s = global_image_stats(ds)
        mean, std = np.float32(m), np.float32(max(s, 1e-6))
    r_std = ds["response_std"].values.astype(np.float32)
    if scale_responses:
        floor = response_floor * float(np.mean(r_std)) if r_std.size else 1.0
        scale = np.maximum(r_std, max(floor, 1e-12)).astype(np.float32)
    else:
        scale = np.ones_like(r_std)
    return Standardizer(np.asarray(mean, np.float32), np.asarray(std, np.float32), scale)


def standardize(ds: xr.Dataset, st: Standardizer) -> xr.Dataset:
    """Apply a standardizer to a dataset's images and responses (statistics are kept raw)."""
    return ds.assign(
        images=st.images(ds["images"]),
        responses=ds["responses"] / xr.DataArray(st.response_scale, dims="neuron"),
    )
