"""The canonical VIDEO dataset: movies shown to an animal and per-frame neural responses.

Layout (one ``xarray.Dataset``; every loader and simulator of movies returns it)::

    videos        (trial, channel, time, y, x) float32  raw grey levels, 0..255 scale
                                                       (the pixel convention of images:
                                                       ``BACKGROUND`` grey, ``SCALE`` per
                                                       unit of contrast)
    responses     (trial, time, neuron)        float32  one response per frame
    behavior      (trial, time, behavior_var)  float32  optional (Sensorium 2023: pupil
                                                       dilation, running speed)
    pupil_center  (trial, time, xy)            float32  optional, coord xy = ["x", "y"]
    coords:  video_id (trial) int  - repeats of one movie share an id
             tier (trial) str      - "train" / "validation" / "test"
             n_frames (trial) int  - the trial's real length in frames
             time_s (time) float   - frame onset in seconds (``time / frame_rate_hz``)
             neuron_id (neuron), optional area, cortex_x/y/z (neuron)
    train statistics (over train trials, real frames only):
             video_mean, video_std (channel, y, x) per pixel; response_mean,
             response_std (neuron); behavior_mean/std, pupil_center_mean/std when present
    attrs:   frame_rate_hz (float, Hz), name, source, n_negative_neurons

PADDING. Trials may differ in length; every array is padded to the longest trial
(``time = max(n_frames)``). Frames ``t >= n_frames[trial]`` are padding and hold FILL
values, never NaN: videos hold ``BACKGROUND`` (mid-grey, zero contrast, so a causal model
run over them computes finite numbers) and responses, behaviour and pupil centre hold 0.
The mask of real frames is derived, not stored: :func:`frame_mask` (``time < n_frames``).
Every loss, statistic and metric must use that mask (NaN-free padding keeps ``jit``-ed
losses and their gradients finite; a mask multiplies, NaN would poison the sum).

Inputs to :func:`make_video_dataset` may be ragged (a list of per-trial arrays) or padded
arrays with ``n_frames``; Sensorium-style trailing-NaN padding is recognised and replaced
by the fill values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from jaxsel.data._dataset import TIERS
from jaxsel.data._pixels import BACKGROUND
from jaxsel.data._video_checks import (
    as_float,
    check_trial,
    err,
    finish,
    neuron_coords,
    trial_coords,
    trial_vector,
)
from jaxsel.data._video_stats import with_video_statistics

FRAME_RATE_HZ = 30.0
"""Default frame rate (Sensorium 2023 movies are shown at 30 Hz)."""
VIDEO_BEHAVIOR_VARS = ("pupil", "running")
"""Names of the two Sensorium 2023 behaviour traces (pupil dilation, running speed)."""
FILL = {"videos": BACKGROUND, "responses": 0.0, "behavior": 0.0, "pupil_center": 0.0}
"""The value padding frames hold, per variable."""


def frame_mask(ds: xr.Dataset) -> xr.DataArray:
    """(trial, time) boolean mask of real frames: ``time < n_frames``."""
    t = np.arange(ds.sizes["time"])
    m = t[None, :] < ds["n_frames"].values[:, None]
    return xr.DataArray(m, dims=("trial", "time"), name="frame_mask")


def _trials(values, n_trial: int | None, field: str, where, ndim: int) -> list[np.ndarray]:
    """A ragged list of per-trial arrays, or a padded array split into its trials."""
    if isinstance(values, (list, tuple)):
        out = [as_float(v, field, where) for v in values]
        if n_trial is not None and len(out) != n_trial:
            raise err(
                f"{len(out)} trials but responses have {n_trial}",
                where,
                field,
                "one entry per trial",
            )
        return out
    x = as_float(values, field, where)
    if x.ndim not in (ndim, ndim + 1):
        return [x]  # shape checked per trial below (gives the better message)
    return list(x)


def _some(a: np.ndarray | None) -> np.ndarray:
    assert a is not None  # present in every trial when present in one
    return a


def _pad(a: np.ndarray, n: int, t_max: int, axis: int, fill: float) -> np.ndarray:
    out = np.full(a.shape[:axis] + (t_max,) + a.shape[axis + 1 :], fill, np.float32)
    idx = [slice(None)] * a.ndim
    idx[axis] = slice(0, n)
    out[tuple(idx)] = np.take(a, np.arange(n), axis=axis)
    return out


def make_video_dataset(
    videos,
    responses,
    *,
    video_id,
    tier,
    n_frames=None,
    frame_rate_hz: float = FRAME_RATE_HZ,
    behavior=None,
    pupil_center=None,
    behavior_vars: Sequence[str] | None = None,
    neuron_id=None,
    area=None,
    cortex_xyz=None,
    name: str = "videos",
    source: str | None = None,
    counts: bool = False,
    require_tiers: Sequence[str] = TIERS,
    require_repeats: bool = True,
) -> xr.Dataset:
    """Build and validate a video dataset (the layout in :mod:`jaxsel.data`).

    Args:
      videos: a list of per-trial (time, y, x) / (channel, time, y, x) arrays (ragged), or a
        padded (trial, time, y, x) / (trial, channel, time, y, x) array. Raw grey levels.
      responses: a list of (time, neuron) arrays, or a padded (trial, time, neuron) array.
      video_id: (trial,) integer ids; repeats of one movie share an id.
      tier: (trial,) values in ``TIERS``.
      n_frames: (trial,) real lengths of padded arrays; None: the list lengths, or the
        frames before trailing all-NaN padding (Sensorium style).
      frame_rate_hz: frames per second.
      behavior: optional list of (time, k) or padded (trial, time, k) traces.
      pupil_center: optional list of (time, 2) or padded (trial, time, 2) traces.
      behavior_vars: names of the k behaviour traces (default ``VIDEO_BEHAVIOR_VARS`` for
        k = 2, else ``b0, b1, ...``).
      neuron_id, area, cortex_xyz: per-neuron ids (default 0..N-1), areas, (N, 2|3) positions.
      name, source: stored in attrs; ``source`` names the data in error messages.
      counts: responses are spike counts (must be >= 0).
      require_tiers: tiers that must hold at least one trial.
      require_repeats: some test movie must be shown at least twice.

    Returns:
      The dataset with train statistics.

    Raises:
      DataError: one line naming the source, the field, what was found and the fix.
    """
    where = source or name
    checked = _checked_trials(videos, responses, behavior, pupil_center, n_frames, where)
    data, extra_coords, lengths = _padded(checked, behavior_vars, where)
    coords = {
        **trial_coords(video_id, tier, lengths, len(checked), where),
        **neuron_coords(neuron_id, area, cortex_xyz, checked[0][1].shape[1], where),
        **extra_coords,
    }
    ds = xr.Dataset(data, coords=coords, attrs={"name": name, "source": str(source or "")})
    ds = finish(ds, frame_rate_hz, where, counts, require_tiers, require_repeats)
    return with_video_statistics(ds)


def _checked_trials(videos, responses, behavior, pupil_center, n_frames, where) -> list:
    """Every trial through :func:`check_trial`, then one frame size, neuron set and
    behaviour width for all."""
    rlist = _trials(responses, None, "responses", where, 2)
    n_trial = len(rlist)
    vlist = _trials(videos, n_trial, "videos", where, 4)
    if len(vlist) != n_trial:
        raise err(
            f"{len(vlist)} video trials but {n_trial} response trials",
            where,
            "videos/responses",
            "the same number of trials",
        )
    blist = None if behavior is None else _trials(behavior, n_trial, "behavior", where, 2)
    plist = (
        None if pupil_center is None else _trials(pupil_center, n_trial, "pupil_center", where, 2)
    )
    nf = None if n_frames is None else trial_vector(n_frames, n_trial, "n_frames", where)
    checked = [
        check_trial(
            i,
            vlist[i],
            rlist[i],
            None if blist is None else blist[i],
            None if plist is None else plist[i],
            n_frames=None if nf is None else int(nf[i]),
            where=where,
        )
        for i in range(n_trial)
    ]
    first = checked[0]
    for i, (v, r, b, *_rest) in enumerate(checked):
        if v.shape[0] != first[0].shape[0] or v.shape[2:] != first[0].shape[2:]:
            raise err(
                f"trial {i}: frames are (channel, y, x) = {(v.shape[0], *v.shape[2:])} but "
                f"trial 0's are {(first[0].shape[0], *first[0].shape[2:])}",
                where,
                "videos",
                "one frame size for all trials (resize the movies)",
            )
        if r.shape[1] != first[1].shape[1]:
            raise err(
                f"trial {i}: {r.shape[1]} neurons but trial 0 has {first[1].shape[1]}",
                where,
                "responses",
                "the same neurons in every trial",
            )
        if first[2] is not None and b is not None and b.shape[1] != first[2].shape[1]:
            raise err(f"trial {i}: behaviour width differs from trial 0's", where, "behavior")
    return checked


def _padded(checked: list, behavior_vars, where) -> tuple[dict, dict, np.ndarray]:
    """The padded per-trial variables, their extra coords, and the trial lengths."""
    lengths = np.array([c[4] for c in checked], np.int64)
    pairs = list(zip(checked, lengths.tolist(), strict=True))
    t_max = int(lengths.max())
    vids = np.stack([_pad(c[0], n, t_max, 1, FILL["videos"]) for c, n in pairs])
    resp = np.stack([_pad(c[1], n, t_max, 0, 0.0) for c, n in pairs])
    data = {
        "videos": (("trial", "channel", "time", "y", "x"), vids),
        "responses": (("trial", "time", "neuron"), resp),
    }
    extra_coords = {}
    if checked[0][2] is not None:
        beh = np.stack([_pad(_some(c[2]), n, t_max, 0, 0.0) for c, n in pairs])
        k = beh.shape[-1]
        default = VIDEO_BEHAVIOR_VARS if k == 2 else [f"b{j}" for j in range(k)]
        names = [str(v) for v in (default if behavior_vars is None else behavior_vars)]
        if len(names) != k:
            raise err(f"{len(names)} names for {k} behaviour traces", where, "behavior_vars")
        data["behavior"] = (("trial", "time", "behavior_var"), beh)
        extra_coords["behavior_var"] = ("behavior_var", names)
    if checked[0][3] is not None:
        pup = np.stack([_pad(_some(c[3]), n, t_max, 0, 0.0) for c, n in pairs])
        data["pupil_center"] = (("trial", "time", "xy"), pup)
        extra_coords["xy"] = ("xy", ["x", "y"])
    return data, extra_coords, lengths
