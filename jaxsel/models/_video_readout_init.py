"""Data-driven initial readout positions of a video model: where each neuron's response
follows the recent local contrast energy of the clip.

The video version of :func:`jaxsel.models.energy_positions` (whose docstring explains why
random starts fail: a Gaussian readout only sees the feature map near its current
position). For the ``window`` frames up to each response frame (the first layer's temporal
reach), a neuron's score map adds the squared correlations of its response with every
pixel at every lag (the spike-triggered average: simple cells) and the squared positive
correlation with the blurred contrast energy of those frames (complex cells); the neuron
starts at the peak of the blurred score map. (Energy alone was too weak for white-noise
clips: correlations ~0.05 at the receptive field, no better than at the corners.)
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def video_energy_positions(
    videos,
    responses,
    *,
    window: int,
    sigma: float = 1.5,
    max_frames: int = 4000,
    limit: float = 0.95,
) -> np.ndarray:
    """Per-neuron position of the strongest correlation of response and recent energy.

    Args:
      videos: trials of (channel, time, y, x) standardized frames.
      responses: trials of (time, neuron).
      window: frames of energy summed up to each response frame (>= 1).
      sigma: Gaussian blur (pixels) of the energy maps and of the correlation maps.
      max_frames: at most this many response frames enter (evenly spaced over all
        trials; memory is ``max_frames * window * C * H * W`` floats).
      limit: positions are clipped to ``[-limit, limit]``.

    Returns:
      (neuron, 2) float32 ``[x, y]`` in [-1, 1] (align-corners grid convention).
    """
    frames, resp = _windows(videos, responses, window, max_frames)  # (t, L, C, H, W)
    t, _, _, h, w = frames.shape
    rz = (resp - resp.mean(0)) / (resp.std(0) + 1e-8)  # (t, N)

    def zcorr(x):  # (t, H * W) -> (N, H, W) correlations with every neuron
        x = (x - x.mean(0)) / (x.std(0) + 1e-8)
        return (rz.T @ x / t).reshape(-1, h, w)

    # linear part: the squared spike-triggered average, summed over lags and channels
    score = sum(
        zcorr(frames[:, lag, c].reshape(t, -1)) ** 2
        for lag in range(frames.shape[1])
        for c in range(frames.shape[2])
    )
    # energy part: the correlation with the blurred recent contrast energy (complex cells)
    c = frames - frames.mean(axis=(2, 3, 4), keepdims=True)
    energy = ndimage.gaussian_filter(np.sum(c**2, axis=(1, 2)), (0, sigma, sigma))
    score = score + np.maximum(zcorr(energy.reshape(t, -1)), 0.0) ** 2
    corr = ndimage.gaussian_filter(np.asarray(score), (0, sigma, sigma))
    py, px = np.unravel_index(np.argmax(corr.reshape(len(corr), -1), axis=1), (h, w))
    pos = np.stack([2.0 * px / max(w - 1, 1) - 1.0, 2.0 * py / max(h - 1, 1) - 1.0], axis=1)
    return np.clip(pos, -limit, limit).astype(np.float32)


def _windows(videos, responses, window: int, max_frames: int):
    """The ``window`` frames up to every response frame, (t, window, C, H, W), and the
    responses (t, N), for at most ``max_frames`` response frames (evenly spaced)."""
    index = [(i, f) for i, v in enumerate(videos) for f in range(window - 1, np.shape(v)[1])]
    step = max(1, len(index) // max_frames)
    index = index[::step]
    frames = np.stack(
        [np.asarray(videos[i], np.float32)[:, f - window + 1 : f + 1] for i, f in index]
    )
    resp = np.stack([np.asarray(responses[i], np.float32)[f] for i, f in index])
    return np.moveaxis(frames, 2, 1)[:, ::-1], resp  # lag 0 first


__all__ = ["video_energy_positions"]
