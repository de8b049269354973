"""Writing a video dataset in the Sensorium 2023 folder layout (read by
:func:`jaxsel.data.load_videos`; the layout is described there)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from jaxsel._atomic import atomic_directory
from jaxsel.data._video_dataset import FRAME_RATE_HZ

_TRACES = ("behavior", "pupil_center")


def save_videos(ds: xr.Dataset, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a video dataset in the Sensorium 2023 folder layout (see :func:`load_videos`).

    Per-trial files hold the time axis last and NaN after the trial's ``n_frames``.

    Returns:
      The folder path.
    """
    names = [k for k in ("videos", "responses", *_TRACES) if k in ds.data_vars]
    with atomic_directory(Path(path), overwrite=overwrite) as tmp:
        for k in names:
            (tmp / "data" / k).mkdir(parents=True)
        nf = ds["n_frames"].values
        for i in range(ds.sizes["trial"]):
            for k in names:
                a = np.array(ds[k].variable[i].values, np.float32)
                axis = 1 if k == "videos" else 0
                sl = [slice(None)] * a.ndim
                sl[axis] = slice(int(nf[i]), None)
                a[tuple(sl)] = np.nan
                a = np.moveaxis(a, axis, -1)  # time last
                if k == "videos" and a.shape[0] == 1:
                    a = a[0]  # grey movies: (y, x, time) as released
                np.save(tmp / "data" / k / f"{i}.npy", a)
        meta = tmp / "meta"
        for d in ("trials", "neurons"):
            (meta / d).mkdir(parents=True)
        np.save(meta / "trials/tiers.npy", ds["tier"].values.astype(str))
        np.save(meta / "trials/video_ids.npy", ds["video_id"].values.astype(np.int64))
        np.save(meta / "neurons/unit_ids.npy", ds["neuron_id"].values)
        if "cortex_x" in ds.coords:
            axes = [a for a in ("cortex_x", "cortex_y", "cortex_z") if a in ds.coords]
            np.save(
                meta / "neurons/cell_motor_coordinates.npy",
                np.stack([ds[a].values for a in axes], 1),
            )
        if "area" in ds.coords:
            np.save(meta / "neurons/area.npy", ds["area"].values.astype(str))
        for k, stat in (("videos", "video"), ("responses", "response"), *((t, t) for t in _TRACES)):
            if f"{stat}_mean" in ds.data_vars:
                d = meta / "statistics" / k / "all"
                d.mkdir(parents=True)
                np.save(d / "mean.npy", ds[f"{stat}_mean"].values)
                np.save(d / "std.npy", ds[f"{stat}_std"].values)
        info = {
            "frame_rate_hz": float(ds.attrs.get("frame_rate_hz", FRAME_RATE_HZ)),
            "name": str(ds.attrs.get("name", "")),
        }
        if "behavior_var" in ds.coords:
            info["behavior_vars"] = [str(b) for b in ds["behavior_var"].values]
        (meta / "jaxsel.json").write_text(json.dumps(info, indent=1))
        (tmp / "config.json").write_text(json.dumps({"links": {}}))
    return Path(path)
