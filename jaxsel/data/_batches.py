"""Fixed-shape minibatches, so jitted steps compile once.

The last batch of an epoch is padded to ``batch_size`` with copies of the first trial and a
``mask`` that is False on the padding; losses weight by the mask.
"""

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import xarray as xr


class Batch(NamedTuple):
    """One fixed-shape minibatch of one tier (NumPy arrays, padded to ``batch_size``)."""

    images: np.ndarray  # (batch, channel, y, x) float32
    responses: np.ndarray  # (batch, neuron) float32
    mask: np.ndarray  # (batch,) bool, False on padding
    trial: np.ndarray  # (batch,) int trial index into the tier, -1 on padding


def tier_arrays(ds: xr.Dataset, tier: str) -> tuple[np.ndarray, np.ndarray]:
    """Images and responses of one tier as contiguous NumPy arrays."""
    idx = np.flatnonzero(ds["tier"].values == tier)
    return (
        np.ascontiguousarray(ds["images"].values[idx]),
        np.ascontiguousarray(ds["responses"].values[idx]),
    )


def n_batches(n_trials: int, batch_size: int) -> int:
    return -(-n_trials // batch_size)


def iterate(
    images: np.ndarray,
    responses: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
) -> Iterator[Batch]:
    """Yield fixed-shape batches over arrays (trial axis first).

    Args:
      images, responses: arrays with the same first (trial) dimension.
      batch_size: trials per batch; the last batch is padded and masked.
      shuffle: permute trials; the permutation depends only on ``(seed, epoch)``.
      seed, epoch: make the order reproducible and resumable mid-run.
    """
    n = images.shape[0]
    if n == 0:
        return
    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        k = len(idx)
        trial = np.full(batch_size, -1, dtype=np.int64)
        trial[:k] = idx
        take = np.where(trial >= 0, trial, idx[0])
        yield Batch(images[take], responses[take], trial >= 0, trial)


def batches(
    ds: xr.Dataset,
    tier: str = "train",
    batch_size: int = 64,
    *,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
) -> Iterator[Batch]:
    """Fixed-shape batches of one tier of a dataset (see :func:`iterate`)."""
    images, responses = tier_arrays(ds, tier)
    yield from iterate(images, responses, batch_size, shuffle=shuffle, seed=seed, epoch=epoch)
