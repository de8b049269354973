"""Data-driven initial readout positions: where each neuron's response follows local
contrast energy.

A Gaussian readout learns each neuron's position ``mu`` by gradient descent through bilinear
sampling, which only sees the feature map near the current position: a neuron whose random
initial ``mu`` lies far from its receptive field gets almost no gradient towards it and can
stay there (on the digital twin, 15 % of the neurons of a ``small`` CNN, fitted on 99
neurons, kept a test correlation near 0 while the LN model fitted them at 0.9+). Starting
``mu`` at the peak of the correlation between the response and the local contrast energy of
the stimulus finds the receptive field of simple, complex and surround-suppressed cells alike
(all respond to contrast energy there) in one matrix product.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def energy_positions(
    images, responses, *, sigma: float = 1.5, max_trials: int = 4000, limit: float = 0.95
) -> np.ndarray:
    """Per-neuron position of the strongest response-energy correlation.

    Args:
      images: (trial, channel, y, x) standardized training images.
      responses: (trial, neuron) training responses.
      sigma: Gaussian blur (pixels) of the squared contrast (the energy map) and of the
        correlation map.
      max_trials: at most this many trials are used (evenly spaced).
      limit: positions are clipped to ``[-limit, limit]``.

    Returns:
      (neuron, 2) float32 ``[x, y]`` in the readout's [-1, 1] grid convention
      (align-corners: -1 and 1 are the centres of the first and last pixels).
    """
    x = np.asarray(images, np.float32)
    r = np.asarray(responses, np.float32)
    if x.ndim != 4 or r.ndim != 2 or len(x) != len(r):
        raise ValueError(
            f"images (trial, channel, y, x) and responses (trial, neuron) with "
            f"the same trials expected, got {x.shape} and {r.shape}"
        )
    step = max(1, len(x) // max_trials)
    x, r = x[::step], r[::step]
    c = x - x.mean(axis=(1, 2, 3), keepdims=True)
    energy: np.ndarray = ndimage.gaussian_filter(np.sum(c**2, axis=1), (0, sigma, sigma))
    t, h, w = energy.shape
    e = energy.reshape(t, -1)
    e = (e - e.mean(0)) / (e.std(0) + 1e-8)
    rz = (r - r.mean(0)) / (r.std(0) + 1e-8)
    corr = (rz.T @ e / t).reshape(-1, h, w)
    corr = ndimage.gaussian_filter(corr, (0, sigma, sigma))
    flat = np.argmax(corr.reshape(len(corr), -1), axis=1)
    py, px = np.unravel_index(flat, (h, w))
    pos = np.stack([2.0 * px / max(w - 1, 1) - 1.0, 2.0 * py / max(h - 1, 1) - 1.0], axis=1)
    return np.clip(pos, -limit, limit).astype(np.float32)


__all__ = ["energy_positions"]
