"""The Sensorium 2023 movie folder layout, read (:func:`load_videos`) and written
(:func:`save_videos`), and a single-file arrays form (:func:`load_video_arrays`).

Folder layout (as released for Sensorium 2023 and read by neuralpredictors'
``MovieFileTreeDataset``; ``n`` trials numbered ``0..n-1``)::

    data/videos/<i>.npy        (y, x, time) float, raw grey levels (36 x 64 x 300 there);
                               (channel, y, x, time) also read
    data/responses/<i>.npy     (neuron, time)
    data/behavior/<i>.npy      optional (2, time): pupil dilation, running speed
    data/pupil_center/<i>.npy  optional (2, time)
    meta/trials/tiers.npy      (n,) 'train', 'oracle', 'live_test_main', 'live_test_bonus',
                               'final_test_main', 'final_test_bonus', 'none' (or jaxsel's
                               'train' / 'validation' / 'test')
    meta/trials/video_ids.npy  optional (n,) ids; repeats share one (not in the release:
                               then ``condition_hash.npy`` if present, else the content of
                               each video, rounded to integers, identifies it)
    meta/neurons/unit_ids.npy  optional (neuron,); cell_motor_coordinates.npy (neuron, 3)
                               and area.npy optional
    meta/statistics/...        ignored on load (recomputed on the train tier), written on save
    meta/jaxsel.json           optional: frame_rate_hz, name, behavior_vars (written on save)

The TIME axis is LAST in every per-trial file. Trials shorter than the longest are padded
with trailing all-NaN frames (the release's convention; the writer does the same).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from jaxsel._errors import DataError
from jaxsel.data._video_checks import check_trial, finish, neuron_coords, trial_coords
from jaxsel.data._video_dataset import FILL, FRAME_RATE_HZ, VIDEO_BEHAVIOR_VARS, make_video_dataset
from jaxsel.data._video_stats import StatsAccumulator, accumulate_trial, statistics_vars
from jaxsel.data._video_store import MEMORY_BUDGET_GB, nbytes_gb, open_video_store, write_store

SENSORIUM_TIERS = {"train": "train", "validation": "validation", "test": "test", "oracle": "test"}
"""Default tier mapping of :func:`load_videos` (file tier -> jaxsel tier); tiers not listed
(the withheld 'live_test_*'/'final_test_*' sets, 'none') are dropped."""
_TRACES = ("behavior", "pupil_center")


def _npy(root: Path, rel: str, field: str, *, mmap: bool = False) -> np.ndarray:
    f = root / rel
    if not f.is_file():
        raise DataError(
            "file not found",
            file=f,
            field=field,
            expected="the Sensorium 2023 movie layout (data/videos, data/responses, "
            "meta/trials/tiers.npy): check the path given to load_videos",
        )
    try:
        return np.load(f, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(
            f"cannot read ({type(err).__name__}: {err})",
            file=f,
            field=field,
            expected="a .npy array",
        ) from None


def _trial_files(root: Path, i: int, traces: Sequence[str]) -> dict[str, np.ndarray]:
    """One trial's arrays in the canonical order: video (C, T, y, x), traces (T, k)."""
    v = np.asarray(_npy(root, f"data/videos/{i}.npy", "videos"), np.float32)
    r = np.asarray(_npy(root, f"data/responses/{i}.npy", "responses"), np.float32)
    vf, rf = root / f"data/videos/{i}.npy", root / f"data/responses/{i}.npy"
    if v.ndim not in (3, 4):
        raise DataError(f"has shape {v.shape}", file=vf, field="videos", expected="(y, x, time)")
    T = v.shape[-1]
    if r.ndim != 2:
        raise DataError(
            f"has shape {r.shape}", file=rf, field="responses", expected="(neuron, time)"
        )
    if r.shape[1] != T:
        if v.ndim == 3 and v.shape[0] == r.shape[1] and v.shape[0] != v.shape[-1]:
            raise DataError(
                f"video {v.shape} looks like (time, y, x) for {r.shape[1]} response frames",
                file=vf,
                field="videos",
                expected="(y, x, time), the time axis last (np.moveaxis(video, 0, -1))",
            )
        if r.shape[0] == T:
            raise DataError(
                f"responses {r.shape} look like (time, neuron) for a {T}-frame video",
                file=rf,
                field="responses",
                expected="(neuron, time), the time axis last (responses.T)",
            )
        raise DataError(
            f"responses have {r.shape[1]} frames but data/videos/{i}.npy has {T}",
            file=rf,
            field="responses",
            expected="the same number of frames as the video",
        )
    out = {"videos": np.moveaxis(v if v.ndim == 4 else v[None], -1, 1), "responses": r.T}
    for name in traces:
        a = np.asarray(_npy(root, f"data/{name}/{i}.npy", name), np.float32)
        if a.ndim != 2 or a.shape[1] != T:
            raise DataError(
                f"has shape {a.shape} for a {T}-frame video",
                file=root / f"data/{name}/{i}.npy",
                field=name,
                expected="(var, time), the time axis last",
            )
        out[name] = a.T
    return out


def _checked(root: Path, i: int, traces) -> tuple[dict, int]:
    a = _trial_files(root, i, traces)
    try:
        v, r, b, p, n = check_trial(
            i, a["videos"], a["responses"], a.get("behavior"), a.get("pupil_center"), where=root
        )
    except DataError as err:  # re-aim the message at the trial's file
        name = (err.field or "videos").split("/")[-1]
        msg = str(err).split(f"field '{err.field}': ", 1)[-1]
        msg = msg.removesuffix(f" (expected {err.expected})") if err.expected else msg
        raise DataError(
            msg, file=root / f"data/{name}/{i}.npy", field=err.field, expected=err.expected
        ) from None
    return {"videos": v, "responses": r, "behavior": b, "pupil_center": p}, n


def _count(root: Path, folder: str) -> int:
    d = root / folder
    names = [p.stem for p in d.glob("*.npy")] if d.is_dir() else []
    ids = sorted(int(s) for s in names if s.isdigit())
    if not ids:
        raise DataError(
            "no numbered .npy files",
            file=d,
            field=folder.split("/")[-1],
            expected="files 0.npy, 1.npy, ...",
        )
    missing = sorted(set(range(ids[-1] + 1)) - set(ids))
    if missing:
        raise DataError(
            "file missing",
            file=d / f"{missing[0]}.npy",
            field=folder.split("/")[-1],
            expected=f"files numbered 0..{ids[-1]} without gaps",
        )
    return len(ids)


def _video_ids(root: Path, keep: np.ndarray) -> np.ndarray:
    for name in ("video_ids", "condition_hash"):
        f = root / f"meta/trials/{name}.npy"
        if f.is_file():
            ids = np.asarray(_npy(root, f"meta/trials/{name}.npy", name))[keep]
            if ids.dtype.kind in "iu":
                return ids.astype(np.int64)
            return np.unique(ids.astype(str), return_inverse=True)[1].astype(np.int64)
    digests = []
    for i in keep.tolist():
        v = np.asarray(_npy(root, f"data/videos/{i}.npy", "videos"), np.float32)
        digests.append(hashlib.sha1(np.nan_to_num(np.round(v), nan=-1).tobytes()).hexdigest())
    return np.unique(np.asarray(digests), return_inverse=True)[1].astype(np.int64)


def _layout(root: Path, tiers: Mapping[str, str]):
    """The trials' tiers, which are kept, counts of dropped tiers, and the trace folders."""
    tier_file = np.asarray(_npy(root, "meta/trials/tiers.npy", "tiers")).astype(str)
    n = _count(root, "data/videos")
    n_resp = _count(root, "data/responses")
    if not n == n_resp == len(tier_file):
        raise DataError(
            f"{n} videos, {n_resp} response files and {len(tier_file)} tiers",
            file=root / "meta/trials/tiers.npy",
            field="tiers",
            expected="one video, response file and tier per trial",
        )
    kept = np.isin(tier_file, list(tiers))
    if not kept.any():
        raise DataError(
            f"no trial has a tier in {sorted(tiers)} (found {sorted(set(tier_file.tolist()))})",
            file=root / "meta/trials/tiers.npy",
            field="tiers",
            expected="map the file's tier names: load_videos(path, tiers={'<name>': 'train', ...})",
        )
    names, counts = np.unique(tier_file[~kept], return_counts=True)
    dropped = {str(k): int(c) for k, c in zip(names, counts, strict=True)}
    traces = [k for k in _TRACES if (root / f"data/{k}").is_dir()]
    for k in traces:
        if _count(root, f"data/{k}") != n:
            raise DataError(
                "not one file per trial",
                file=root / f"data/{k}",
                field=k,
                expected=f"{n} files (or no folder)",
            )
    return tier_file, np.flatnonzero(kept), dropped, traces


def _neuron_meta(root: Path) -> dict:
    out = {}
    for key, rel in (
        ("neuron_id", "unit_ids"),
        ("cortex_xyz", "cell_motor_coordinates"),
        ("area", "area"),
    ):
        if (root / f"meta/neurons/{rel}.npy").is_file():
            out[key] = _npy(root, f"meta/neurons/{rel}.npy", rel)
    return out


def _in_memory(root: Path, keep, traces, common: dict, behavior_vars) -> xr.Dataset:
    arrays = [_checked(root, i, traces) for i in keep.tolist()]

    def stack(name):
        return [a[name] for a, _ in arrays] if name in traces else None

    return make_video_dataset(
        [a["videos"] for a, _ in arrays],
        [a["responses"] for a, _ in arrays],
        n_frames=[m for _, m in arrays],
        behavior=stack("behavior"),
        pupil_center=stack("pupil_center"),
        behavior_vars=behavior_vars,
        **common,
    )


def load_videos(
    path: str | Path,
    *,
    tiers: Mapping[str, str] = SENSORIUM_TIERS,
    frame_rate_hz: float | None = None,
    memory_budget_gb: float | None = MEMORY_BUDGET_GB,
    zarr_path: str | Path | None = None,
    require_tiers: Sequence[str] = ("train",),
    require_repeats: bool = False,
) -> xr.Dataset:
    """Read a Sensorium 2023 style movie folder as a video dataset.

    Layout (``n`` trials; the TIME axis is LAST in every per-trial file; shorter trials end
    in all-NaN frames)::

        data/videos/<i>.npy        (y, x, time) raw grey levels ((channel, y, x, time) too)
        data/responses/<i>.npy     (neuron, time)
        data/behavior/<i>.npy      optional (2, time): pupil dilation, running speed
        data/pupil_center/<i>.npy  optional (2, time)
        meta/trials/tiers.npy      (n,) tier names (see ``tiers``)
        meta/trials/video_ids.npy  optional (n,); else condition_hash.npy; else the
                                   rounded content of each video identifies repeats
        meta/neurons/unit_ids.npy, cell_motor_coordinates.npy, area.npy   optional
        meta/jaxsel.json           optional: frame_rate_hz, name, behavior_vars

    Args:
      path: the folder (holding ``data/`` and ``meta/``).
      tiers: file tier name -> jaxsel tier; trials of other tiers are dropped (their counts
        are in ``attrs["dropped_tiers"]``). The default keeps train, maps the repeated
        'oracle' set to 'test' and drops the competition's withheld test sets and 'none'.
      frame_rate_hz: frames per second (default: ``meta/jaxsel.json``, else 30).
      memory_budget_gb: when the kept trials need more memory than this, they are copied
        trial by trial into a zarr store and streamed from it (None: always in memory).
      zarr_path: where that store goes (default: a sibling folder ``<path>.zarr``; an
        existing store there is reused).
      require_tiers, require_repeats: as for :func:`make_video_dataset`.

    Returns:
      The canonical video dataset (``attrs["streamed"]`` tells which way it was loaded).

    Raises:
      DataError: one line naming the file, the field and the fix.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError("not a folder", file=root, field="path", expected="a movie data folder")
    tier_file, keep, dropped, traces = _layout(root, tiers)
    info = (
        json.loads((root / "meta/jaxsel.json").read_text())
        if (root / "meta/jaxsel.json").is_file()
        else {}
    )
    common: dict[str, Any] = dict(
        video_id=_video_ids(root, keep),
        tier=np.asarray([tiers[t] for t in tier_file[keep]]),
        frame_rate_hz=float(frame_rate_hz or info.get("frame_rate_hz", FRAME_RATE_HZ)),
        name=str(info.get("name", root.name)),
        source=str(root),
        require_tiers=require_tiers,
        require_repeats=require_repeats,
        **_neuron_meta(root),
    )
    shapes = _shapes(root, keep, traces)
    if memory_budget_gb is None or nbytes_gb(shapes) <= float(memory_budget_gb):
        ds = _in_memory(root, keep, traces, common, info.get("behavior_vars"))
        ds.attrs["streamed"] = False
    else:
        ds = _stream(root, keep, traces, shapes, common, info, zarr_path, memory_budget_gb)
    ds.attrs["dropped_tiers"] = json.dumps(dropped)
    return ds


def _shapes(root: Path, keep: np.ndarray, traces) -> dict[str, tuple[int, ...]]:
    """Padded (trial, ...) shapes of the kept trials, from the file headers."""
    v0 = _npy(root, f"data/videos/{keep[0]}.npy", "videos", mmap=True)
    r0 = _npy(root, f"data/responses/{keep[0]}.npy", "responses", mmap=True)
    T = max(
        int(_npy(root, f"data/videos/{i}.npy", "videos", mmap=True).shape[-1])
        for i in keep.tolist()
    )
    c = v0.shape[0] if v0.ndim == 4 else 1
    out = {"videos": (len(keep), c, T, *v0.shape[-3:-1]), "responses": (len(keep), T, r0.shape[0])}
    for k in traces:
        a = _npy(root, f"data/{k}/{keep[0]}.npy", k, mmap=True)
        out[k] = (len(keep), T, a.shape[0])
    return out


def _stream(root, keep, traces, shapes, common, info, zarr_path, budget) -> xr.Dataset:
    """Copy the kept trials into a zarr store, trial by trial, and open it lazily."""
    store = Path(zarr_path) if zarr_path is not None else root.with_name(root.name + ".zarr")
    if not (store / "attrs.json").is_file():
        T = shapes["videos"][2]
        lengths: list[int] = []
        acc = StatsAccumulator()
        train = common["tier"] == "train"

        def trials():
            for j, i in enumerate(keep.tolist()):
                a, m = _checked(root, i, traces)
                lengths.append(m)
                if train[j] or not train.any():
                    accumulate_trial(
                        acc, m, a["videos"], a["responses"], a["behavior"], a["pupil_center"]
                    )
                yield {k: _pad_to(a[k], m, T, 1 if k == "videos" else 0, FILL[k]) for k in shapes}

        def meta():
            k = shapes.get("behavior", (0, 0, 0))[2]
            names = info.get("behavior_vars") or (
                VIDEO_BEHAVIOR_VARS if k == 2 else [f"b{j}" for j in range(k)]
            )
            coords = {
                **trial_coords(common["video_id"], common["tier"], lengths, len(keep), root),
                **neuron_coords(
                    common.get("neuron_id"),
                    common.get("area"),
                    common.get("cortex_xyz"),
                    shapes["responses"][2],
                    root,
                ),
                **({"behavior_var": ("behavior_var", list(names))} if "behavior" in traces else {}),
                **({"xy": ("xy", ["x", "y"])} if "pupil_center" in traces else {}),
                **statistics_vars(acc, [t for t in _TRACES if t in traces]),
            }
            out = {
                k: ((v[0],) if isinstance(v[0], str) else tuple(v[0]), np.asarray(v[1]))
                for k, v in coords.items()
            }
            return out, {
                "name": common["name"],
                "source": str(root),
                "frame_rate_hz": common["frame_rate_hz"],
            }

        write_store(store, shapes, trials, meta)
    ds = open_video_store(store, memory_budget_gb=budget)
    if ds.attrs.get("source") != str(root) or not np.array_equal(ds["tier"].values, common["tier"]):
        raise DataError(
            f"this zarr store was made from other data (source {ds.attrs.get('source')!r})",
            file=store,
            field="zarr_path",
            expected="a store made from this folder: delete it or pass another zarr_path",
        )
    return finish(
        ds, common["frame_rate_hz"], root, False, common["require_tiers"], common["require_repeats"]
    )


def _pad_to(a: np.ndarray, n: int, T: int, axis: int, fill: float) -> np.ndarray:
    out = np.full(a.shape[:axis] + (T,) + a.shape[axis + 1 :], fill, np.float32)
    sl = [slice(None)] * a.ndim
    sl[axis] = slice(0, n)
    out[tuple(sl)] = a[tuple(sl)]
    return out
