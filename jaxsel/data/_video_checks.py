"""Checks of video-dataset inputs: one trial at a time (shared by every loader), per-trial
and per-neuron coords, tiers and repeats. Every failure is a one-line DataError naming the
source, the field and the fix."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from jaxsel._errors import DataError
from jaxsel.data._dataset import TIERS
from jaxsel.data._video_stats import is_lazy


def err(msg: str, where, field: str, expected: str | None = None) -> DataError:
    return DataError(msg, file=where, field=field, expected=expected)


def as_float(a, field: str, where) -> np.ndarray:
    try:
        x = np.asarray(a)
    except (TypeError, ValueError) as e:
        raise err(f"not an array ({e})", where, field, "an array of numbers") from None
    if x.dtype.kind not in "biuf":
        raise err(f"has dtype {x.dtype}", where, field, "an array of numbers")
    return x.astype(np.float32, copy=False)


def leading_valid(*arrays: np.ndarray | None, time_axis: Sequence[int]) -> int:
    """Frames before the first one that is all-NaN in any array (trailing-NaN padding)."""
    n = None
    for a, ax in zip(arrays, time_axis, strict=True):
        if a is None:
            continue
        t = a.shape[ax]
        other = tuple(i for i in range(a.ndim) if i != ax % a.ndim)
        pad = np.isnan(a).all(axis=other) if other else np.isnan(a)
        k = int(np.argmax(pad)) if pad.any() else t
        n = k if n is None else min(n, k)
    return int(n or 0)


def _time_mismatch(i: int, video: np.ndarray, r: np.ndarray, where) -> DataError:
    """The error for a video and responses of different lengths, naming a likely axis mix-up."""
    t_v = video.shape[0] if video.ndim == 3 else video.shape[1]
    t_r = r.shape[0]
    if video.ndim == 3 and video.shape[-1] == t_r:
        return err(
            f"trial {i}: video {video.shape} looks like (y, x, time) (Sensorium's file "
            f"order) for {t_r} response frames",
            where,
            "videos",
            "(time, y, x): pass np.moveaxis(video, -1, 0)",
        )
    if r.shape[1] == t_v:
        return err(
            f"trial {i}: responses {r.shape} look like (neuron, time) for a {t_v}-frame video",
            where,
            "responses",
            "(time, neuron): pass responses.T (np.swapaxes(responses, -1, -2) for a stack)",
        )
    return err(
        f"trial {i}: video has {t_v} frames but responses have {t_r}",
        where,
        "videos/responses",
        "the same number of frames (trim both to the shorter one)",
    )


def _check_finite(i: int, name: str, real: np.ndarray, ax: int, where) -> None:
    if not np.isfinite(real).all():
        bad = np.argwhere(~np.isfinite(real))[0]
        raise err(
            f"trial {i}: non-finite value at frame {int(bad[ax])} of its {real.shape[ax]} "
            "real frames",
            where,
            name,
            "finite numbers (only trailing all-NaN frames count as padding)",
        )


def check_trial(
    i: int,
    video: np.ndarray,
    response: np.ndarray,
    behavior: np.ndarray | None = None,
    pupil: np.ndarray | None = None,
    *,
    n_frames: int | None = None,
    where: str | Path = "videos",
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, int]:
    """Check and normalise one trial: video (channel, time, y, x), response (time, neuron).

    Accepts a video (time, y, x) or (channel, time, y, x). Detects the two common axis-order
    mistakes (a Sensorium file's (y, x, time) video, a (neuron, time) response) and names
    the fix. Trailing all-NaN frames are padding; ``n_frames`` (default: the frames before
    the first padding frame) must leave only finite values in the real frames.
    """
    v = video[None] if video.ndim == 3 else video
    r = response
    if v.ndim != 4:
        raise err(
            f"trial {i}: video has shape {video.shape}",
            where,
            "videos",
            "(time, y, x) or (channel, time, y, x) per trial",
        )
    if r.ndim != 2:
        raise err(
            f"trial {i}: responses have shape {response.shape}",
            where,
            "responses",
            "(time, neuron)",
        )
    t_v = v.shape[1]
    if t_v != r.shape[0]:
        raise _time_mismatch(i, video, r, where)
    traces = {}
    for name, a, width in (("behavior", behavior, None), ("pupil_center", pupil, 2)):
        if a is None:
            continue
        if a.ndim != 2 or a.shape[0] != t_v or (width and a.shape[1] != width):
            hint = " (it looks like (var, time): transpose it)" if a.ndim == 2 else ""
            raise err(
                f"trial {i}: has shape {a.shape} for {t_v} frames{hint}",
                where,
                name,
                f"(time, {width or 'behavior_var'})",
            )
        traces[name] = a
    n = (
        leading_valid(v, r, *traces.values(), time_axis=(1, 0) + (0,) * len(traces))
        if n_frames is None
        else int(n_frames)
    )
    if not 0 < n <= t_v:
        raise err(
            f"trial {i}: n_frames = {n} for {t_v} frames",
            where,
            "n_frames",
            f"1..{t_v} real frames (is the trial all NaN?)",
        )
    for name, a, ax in (("videos", v, 1), ("responses", r, 0)) + tuple(
        (k, a, 0) for k, a in traces.items()
    ):
        _check_finite(i, name, np.take(a, np.arange(n), axis=ax), ax, where)
    return v, r, traces.get("behavior"), traces.get("pupil_center"), n


def trial_vector(values, n: int, field: str, where) -> np.ndarray:
    a = np.asarray(values)
    if a.shape != (n,):
        raise err(f"has shape {a.shape}", where, field, f"one value per trial, shape ({n},)")
    return a


def trial_coords(video_id, tier, n_frames, n_trial: int, where) -> dict:
    """Validated per-trial coords ``video_id``, ``tier``, ``n_frames``."""
    vid = trial_vector(video_id, n_trial, "video_id", where)
    if vid.dtype.kind not in "iu":
        f = vid.astype(np.float64) if vid.dtype.kind in "fb" else None
        if f is None or not (np.isfinite(f).all() and (f == np.round(f)).all()):
            raise err(
                f"video ids of dtype {vid.dtype} are not all integers",
                where,
                "video_id",
                "integer ids, one per distinct movie (repeats share one)",
            )
        vid = f.astype(np.int64)
    tiers = trial_vector(tier, n_trial, "tier", where).astype(str)
    return {
        "video_id": ("trial", vid.astype(np.int64)),
        "tier": ("trial", tiers),
        "n_frames": ("trial", np.asarray(n_frames, np.int64)),
    }


def neuron_coords(neuron_id, area, cortex_xyz, n_neuron: int, where) -> dict:
    """Validated per-neuron coords (as for static datasets)."""
    ids = np.arange(n_neuron) if neuron_id is None else np.asarray(neuron_id)
    if ids.shape != (n_neuron,):
        raise err(
            f"{ids.size} neuron ids for {n_neuron} neurons", where, "neuron_id", f"({n_neuron},)"
        )
    if len(np.unique(ids)) != n_neuron:
        raise err("neuron ids are not unique", where, "neuron_id", "unique ids")
    out = {"neuron_id": ("neuron", ids)}
    if area is not None:
        a = np.asarray(area).astype(str)
        if a.shape != (n_neuron,):
            raise err(f"area has shape {a.shape}", where, "area", f"({n_neuron},)")
        out["area"] = ("neuron", a)
    if cortex_xyz is not None:
        xyz = as_float(cortex_xyz, "cortex_xyz", where)
        if xyz.ndim != 2 or xyz.shape[0] != n_neuron or xyz.shape[1] not in (2, 3):
            raise err(f"has shape {xyz.shape}", where, "cortex_xyz", f"({n_neuron}, 2 or 3)")
        for k, axis in enumerate("xyz"[: xyz.shape[1]]):
            out[f"cortex_{axis}"] = ("neuron", xyz[:, k])
    return out


def finish(
    ds: xr.Dataset,
    frame_rate_hz: float,
    where,
    counts: bool = False,
    require_tiers: Sequence[str] = TIERS,
    require_repeats: bool = True,
) -> xr.Dataset:
    """Add ``time_s`` and ``frame_rate_hz``, check tiers, repeats and counts."""
    if isinstance(frame_rate_hz, bool) or not np.isfinite(frame_rate_hz) or not frame_rate_hz > 0:
        raise err(f"frame_rate_hz = {frame_rate_hz!r}", where, "frame_rate_hz", "a number > 0")
    ds = ds.assign_coords(time_s=("time", np.arange(ds.sizes["time"]) / float(frame_rate_hz)))
    ds["time_s"].attrs["units"] = "s"
    ds.attrs["frame_rate_hz"] = float(frame_rate_hz)
    tiers = ds["tier"].values
    unknown = sorted(set(tiers.tolist()) - set(TIERS))
    if unknown:
        raise err(f"unknown tier values {unknown}", where, "tier", f"values in {list(TIERS)}")
    for t in require_tiers:
        if not (tiers == t).any():
            raise err(
                f"no trials in tier '{t}'",
                where,
                "tier",
                f"trials in each of {list(require_tiers)} (API: require_tiers=...)",
            )
    if require_repeats and "test" in require_tiers:
        _, n_rep = np.unique(ds["video_id"].values[tiers == "test"], return_counts=True)
        if n_rep.max(initial=0) < 2:
            raise err(
                "no test movie is shown more than once",
                where,
                "video_id (tier 'test')",
                "repeated test movies (for oracle correlation); API: require_repeats=False",
            )
    if counts and not is_lazy(ds["responses"]):
        r = ds["responses"].values
        if (r < 0).any():
            t, f, n = np.argwhere(r < 0)[0]
            raise err(
                f"negative spike count {r[t, f, n]} at trial {t}, frame {f}, neuron {n}",
                where,
                "responses",
                "non-negative counts",
            )
    if not is_lazy(ds["responses"]):
        ds.attrs["n_negative_neurons"] = int((ds["responses"].values < 0).any(axis=(0, 1)).sum())
    return ds
