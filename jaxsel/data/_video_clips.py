"""Random clips of a video dataset for training, read in a background thread.

:func:`subsequences` draws, for every trial of a tier in random order, one clip of
``length`` consecutive frames starting at a uniform random frame in
``0..max(n_frames - length, 0)``, and yields them in batches (:class:`Clips`). The plan (which
trial, which start) is drawn from ``rng`` before any data is read, so the clips depend only
on the seed, never on the storage: an in-memory dataset and the same data streamed from a
zarr store (:func:`jaxsel.data.open_video_store`) give identical clips.

BURN-IN. A causal model's first frames see a history that starts at the clip's start, not
at the trial's, so their predictions are wrong in a way the data cannot fix. ``mask`` is
False for the first ``burn_in`` frames of every clip (default :data:`BURN_IN` = 10 frames,
333 ms at 30 Hz, at least the temporal kernel of the dynamic twin and of the usual 3-D
cores) and for padding frames (beyond the trial's ``n_frames``); the loss should average
over ``mask`` only. Evaluation uses whole trials and skips the same burn-in.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import xarray as xr

from jaxsel._errors import ConfigError, DataError
from jaxsel.data._video_dataset import FILL

BURN_IN = 10
"""Default burn-in: frames at the start of each clip excluded from the loss."""


@dataclass(frozen=True)
class Clips:
    """A batch of clips.

    Attributes:
      videos: (batch, channel, length, y, x) raw pixels.
      responses: (batch, length, neuron).
      mask: (batch, length) bool: a real frame past the burn-in (use it in the loss).
      trial: (batch,) trial indices into the dataset.
      start: (batch,) first frame of each clip within its trial.
      behavior: (batch, length, behavior_var) or None.
      pupil_center: (batch, length, 2) or None.
    """

    videos: np.ndarray
    responses: np.ndarray
    mask: np.ndarray
    trial: np.ndarray
    start: np.ndarray
    behavior: np.ndarray | None = None
    pupil_center: np.ndarray | None = None


def clip_plan(
    ds: xr.Dataset,
    length: int,
    rng: np.random.Generator | int = 0,
    *,
    batch_size: int = 8,
    tier: str = "train",
    n_batches: int | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (trial indices, start frames) of every batch; see :func:`subsequences`."""
    for name, v in (("length", length), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ConfigError(f"subsequences: {name} = {v!r}: expected an integer >= 1")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    trials = np.flatnonzero(ds["tier"].values == tier)
    if not len(trials):
        raise DataError(f"no trials in tier '{tier}'", field="tier", expected="a tier with trials")
    n_frames = ds["n_frames"].values
    per_epoch = -(-len(trials) // batch_size)
    total = per_epoch if n_batches is None else int(n_batches)
    plan = []
    order = np.empty(0, np.int64)
    while len(plan) < total:
        if len(order) == 0:
            order = rng.permutation(trials)
        take, order = order[:batch_size], order[batch_size:]
        hi = np.maximum(n_frames[take] - length, 0)
        start = np.floor(rng.random(len(take)) * (hi + 1)).astype(np.int64)
        plan.append((take, start))
    return plan


def read_clips(
    ds: xr.Dataset, trial: np.ndarray, start: np.ndarray, length: int, burn_in: int = BURN_IN
) -> Clips:
    """Read the clips ``(trial[i], start[i] .. start[i] + length)``; padding beyond a
    trial's end holds the fill values and is masked."""
    out: dict[str, np.ndarray | None] = {}
    for name in ("videos", "responses", "behavior", "pupil_center"):
        if name not in ds.data_vars:
            out[name] = None
            continue
        var = ds[name].variable
        axis = var.dims.index("time")
        parts = []
        for t, s in zip(trial.tolist(), start.tolist(), strict=True):
            idx: list = [slice(None)] * var.ndim
            idx[0], idx[axis] = t, slice(s, s + length)
            a = np.asarray(var[tuple(idx)].values, np.float32)
            short = length - a.shape[axis - 1]
            if short > 0:
                pad = [(0, 0)] * a.ndim
                pad[axis - 1] = (0, short)
                a = np.pad(a, pad, constant_values=FILL[name])
            parts.append(a)
        out[name] = np.stack(parts)
    frame = start[:, None] + np.arange(length)[None]
    mask = (frame < ds["n_frames"].values[trial][:, None]) & (np.arange(length)[None] >= burn_in)
    return Clips(
        videos=out["videos"],  # type: ignore[arg-type]
        responses=out["responses"],  # type: ignore[arg-type]
        mask=mask,
        trial=np.asarray(trial),
        start=np.asarray(start),
        behavior=out["behavior"],
        pupil_center=out["pupil_center"],
    )


def subsequences(
    ds: xr.Dataset,
    length: int,
    rng: np.random.Generator | int = 0,
    *,
    batch_size: int = 8,
    tier: str = "train",
    burn_in: int = BURN_IN,
    n_batches: int | None = None,
    prefetch: int = 2,
) -> Iterator[Clips]:
    """Random training clips, batched, read ahead in a background thread.

    Args:
      ds: a video dataset (in memory or streamed from a zarr store).
      length: frames per clip (e.g. 60-80; a trial shorter than that is padded and masked).
      rng: a NumPy generator or a seed; the clips depend on it alone.
      batch_size: clips per batch (the last batch of an epoch may be smaller).
      tier: the tier to draw from.
      burn_in: leading frames of each clip masked out of the loss: a causal model's first
        frames of a clip lack the history before the clip's start.
      n_batches: batches to yield (epochs repeat with fresh orders and starts); None: one
        epoch, every trial of the tier once.
      prefetch: batches read ahead by a background thread (0: read in the caller's thread).

    Yields:
      :class:`Clips`.
    """
    if isinstance(burn_in, bool) or not isinstance(burn_in, (int, np.integer)) or burn_in < 0:
        raise ConfigError(f"subsequences: burn_in = {burn_in!r}: expected an integer >= 0")
    if burn_in >= length:
        raise ConfigError(
            f"subsequences: burn_in = {burn_in} leaves no frame of a {length}-frame clip in the "
            "loss: expected burn_in < length"
        )
    plan = clip_plan(ds, length, rng, batch_size=batch_size, tier=tier, n_batches=n_batches)
    if prefetch <= 0:
        for trial, start in plan:
            yield read_clips(ds, trial, start, length, burn_in)
        return
    yield from _prefetched(ds, plan, length, burn_in, prefetch)


_DONE = object()


def _prefetched(ds, plan, length, burn_in, prefetch) -> Iterator[Clips]:
    """Read the plan's batches in a daemon thread, ``prefetch`` ahead; errors re-raise here."""
    q: queue.Queue = queue.Queue(maxsize=prefetch)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work():
        try:
            for trial, start in plan:
                if not put(read_clips(ds, trial, start, length, burn_in)):
                    return
            put(_DONE)
        except BaseException as err:  # handed to the consumer, re-raised there
            put(err)

    thread = threading.Thread(target=work, name="jaxsel-clips", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5.0)
