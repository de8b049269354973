"""Video training inputs: the run config (:class:`VideoConfig`), trial checks, and the random
clips of an epoch.

Trials may have different lengths. Every epoch draws ``clips_per_trial`` clips of
``clip_frames`` consecutive frames from every training trial, at offsets drawn from a
generator seeded by ``(seed, epoch)`` (a resumed run draws the same clips); the first
``burn_in`` frames of a clip warm up the causal temporal filters and are excluded from the
loss.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from jaxsel._dataclass_io import from_dict, to_dict
from jaxsel._errors import ConfigError, DataError
from jaxsel.data import iterate
from jaxsel.models import VideoModelConfig
from jaxsel.train._config import TrainConfig

_SALT = 0x564944  # keeps clip-offset streams apart from other generators seeded by `seed`


def _default_train() -> TrainConfig:
    return TrainConfig(batch_size=8, max_epochs=50, patience=4, eval_batch_size=8)


@dataclass(frozen=True)
class VideoConfig:
    """A video run: model, training and clip settings.

    Attributes:
      name: a label.
      model: the :class:`~jaxsel.models.VideoModelConfig`.
      train: the :class:`~jaxsel.train.TrainConfig` (``batch_size`` counts clips,
        ``eval_batch_size`` whole validation trials; ``per_pixel`` must stay false: videos
        arrive standardized).
      clip_frames: frames per training clip (30 Hz: 60 frames = 2 s).
      burn_in: leading frames of every clip (and of every validation trial) excluded from
        the loss and the scores; at least ``model.receptive_frames - 1`` is recommended so
        every scored frame sees a full temporal kernel of real frames.
      clips_per_trial: random clips drawn from each training trial per epoch.
    """

    name: str = "video"
    model: VideoModelConfig = field(default_factory=VideoModelConfig)
    train: TrainConfig = field(default_factory=_default_train)
    clip_frames: int = 60
    burn_in: int = 10
    clips_per_trial: int = 1

    def __post_init__(self):
        for name, lo in (("clip_frames", 1), ("burn_in", 0), ("clips_per_trial", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ConfigError(
                    f"video config: {name} = {v!r}: expected an integer >= {lo} "
                    f"(VideoConfig({name}=...))"
                )
        if self.burn_in >= self.clip_frames:
            raise ConfigError(
                f"video config: burn_in = {self.burn_in} leaves no scored frame in a clip of "
                f"clip_frames = {self.clip_frames}: use burn_in < clip_frames"
            )
        if self.train.per_pixel:
            raise ConfigError(
                "video config: train.per_pixel = True: videos are standardized by the caller; "
                "set train.per_pixel = false"
            )

    def to_dict(self) -> dict:
        """Plain JSON-able data (round-trips through :meth:`from_dict`)."""
        return to_dict(self)

    @classmethod
    def from_dict(cls, d: dict) -> VideoConfig:
        """Build strictly from ``{"name", "model": {...}, "train": {...}, "clip_frames",
        ...}``; an unknown key raises a ConfigError naming the closest valid one."""
        return from_dict(cls, d, where="video")


@dataclass
class VideoTrials:
    """Checked trials: ``videos`` list of (channel, time, y, x) float32, ``responses`` list
    of (time, neuron) float32 (model units after :func:`scale_trials`)."""

    videos: list
    responses: list

    @property
    def lengths(self) -> np.ndarray:
        return np.array([v.shape[1] for v in self.videos], np.int64)

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        c, _, h, w = self.videos[0].shape
        return (int(c), int(h), int(w))

    @property
    def n_neurons(self) -> int:
        return int(self.responses[0].shape[1])


def check_trials(where: str, name: str, videos, responses, *, min_frames: int) -> VideoTrials:
    """Trials as float32 lists, checked: equal counts, 4-D videos of one frame shape, 2-D
    responses with the videos' lengths, one neuron count, finite values, >= ``min_frames``."""
    vids = [np.asarray(v, np.float32) for v in videos]
    resp = [np.asarray(r, np.float32) for r in responses]
    rname = name.replace("videos", "responses")
    if not vids:
        raise DataError(f"{where}: no trials", field=name, expected="at least one trial")
    if len(vids) != len(resp):
        raise DataError(
            f"{where}: {len(vids)} video trials but {len(resp)} response trials",
            field=rname,
            expected="one (time, neuron) response array per video",
        )
    shape = vids[0].shape[:1] + vids[0].shape[2:] if vids[0].ndim == 4 else None
    for i, (v, r) in enumerate(zip(vids, resp, strict=True)):
        if v.ndim != 4 or v.shape[:1] + v.shape[2:] != shape:
            raise DataError(
                f"{where}: trial {i} has video shape {v.shape}",
                field=name,
                expected=f"(channel, time, y, x) with (channel, y, x) = {shape}",
            )
        if r.ndim != 2 or r.shape[0] != v.shape[1] or r.shape[1] != resp[0].shape[1]:
            raise DataError(
                f"{where}: trial {i} has responses of shape {r.shape} for {v.shape[1]} frames",
                field=rname,
                expected=f"(time, neuron) = ({v.shape[1]}, {resp[0].shape[1]})",
            )
        if v.shape[1] < min_frames:
            raise DataError(
                f"{where}: trial {i} has {v.shape[1]} frames, fewer than {min_frames}",
                field=name,
                expected=f"trials of >= {min_frames} frames, or a shorter clip_frames / burn_in",
            )
        for arr, what in ((v, name), (r, rname)):
            if not np.all(np.isfinite(arr)):
                raise DataError(
                    f"{where}: trial {i} has non-finite values", field=what, expected="finite"
                )
    return VideoTrials(vids, resp)


def response_scale(trials: VideoTrials, scale: bool) -> np.ndarray:
    """(neuron,) divisor of the responses: their std over all training frames (floored at
    1e-3 of the mean std), or ones."""
    n = trials.n_neurons
    if not scale:
        return np.ones(n, np.float32)
    sd = np.concatenate(trials.responses).std(0)
    floor = max(1e-3 * float(sd.mean()), 1e-8)
    return np.maximum(sd, floor).astype(np.float32)


def scale_trials(trials: VideoTrials, scale: np.ndarray) -> VideoTrials:
    """Responses divided by ``scale`` (model units)."""
    return VideoTrials(trials.videos, [r / scale for r in trials.responses])


def fingerprint(*groups: VideoTrials) -> str:
    """A hash of the trials' shapes and values (a resume must see the same data)."""
    h = hashlib.sha1()
    for g in groups:
        for arr in (*g.videos, *g.responses):
            h.update(str(arr.shape).encode())
            h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:16]


def epoch_clips(lengths: np.ndarray, cfg: VideoConfig, seed: int, epoch: int) -> np.ndarray:
    """(n_clips, 2) ``(trial, first frame)`` of an epoch's clips, shuffled; depends only on
    ``(seed, epoch)``."""
    rng = np.random.default_rng((int(seed), int(epoch), _SALT))
    trial = np.repeat(np.arange(len(lengths)), cfg.clips_per_trial)
    start = rng.integers(0, lengths[trial] - cfg.clip_frames + 1)
    order = rng.permutation(len(trial))
    return np.stack([trial[order], start[order]], axis=1)


def clip_batches(trials: VideoTrials, clips: np.ndarray, clip_frames: int, batch_size: int):
    """Yield ``(videos (B, C, clip, y, x), responses (B, clip, neuron), mask (B,))``: the
    clips in order, the last batch padded (mask False) to ``batch_size``."""
    idx = np.arange(len(clips))
    for batch in iterate(idx[:, None], idx[:, None], batch_size):
        sel = clips[batch.images[:, 0]]  # padding repeats the batch's first clip
        vids = np.stack([trials.videos[t][:, s : s + clip_frames] for t, s in sel])
        resp = np.stack([trials.responses[t][s : s + clip_frames] for t, s in sel])
        yield vids, resp, np.asarray(batch.mask)


__all__ = [
    "VideoConfig",
    "VideoTrials",
    "check_trials",
    "clip_batches",
    "epoch_clips",
    "fingerprint",
    "response_scale",
    "scale_trials",
]
