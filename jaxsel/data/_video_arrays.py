"""A video dataset as one ``.npz`` file of padded arrays (the arrays form).

Keys: ``videos`` (trial, [channel,] time, y, x), ``responses`` (trial, time, neuron),
``video_id`` and ``tier`` (trial,), optional ``n_frames`` (trial,) (default: trailing
all-NaN frames are padding), ``behavior`` (trial, time, k), ``pupil_center``
(trial, time, 2), ``behavior_vars`` (k,), ``neuron_id`` (neuron,), ``cortex_xyz``
(neuron, 3), ``area`` (neuron,), ``frame_rate_hz`` (scalar). The time axis is the one
after ``channel``, as in the canonical dataset (not last as in the Sensorium files).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from jaxsel._errors import DataError
from jaxsel.data._video_dataset import FRAME_RATE_HZ, make_video_dataset

_OPTIONAL = (
    "n_frames",
    "behavior",
    "pupil_center",
    "behavior_vars",
    "neuron_id",
    "cortex_xyz",
    "area",
)


def load_video_arrays(
    path: str | Path,
    *,
    require_tiers: Sequence[str] = ("train",),
    require_repeats: bool = False,
) -> xr.Dataset:
    """Read a video dataset from one ``.npz`` file of padded arrays.

    Keys: ``videos`` (trial, [channel,] time, y, x), ``responses`` (trial, time, neuron),
    ``video_id`` and ``tier`` (trial,); optional ``n_frames`` (trial,) (default: trailing
    all-NaN frames are padding), ``behavior`` (trial, time, k), ``pupil_center``
    (trial, time, 2), ``behavior_vars`` (k,), ``neuron_id``, ``cortex_xyz`` (neuron, 3),
    ``area``, ``frame_rate_hz``. Time follows channel (the canonical order).

    Raises:
      DataError: a missing file or key (named), or any check of
        :func:`jaxsel.data.make_video_dataset`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", file=path, field="path", expected="a .npz file")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError) as err:
        raise DataError(
            f"cannot read ({err})", file=path, field="path", expected="a .npz file"
        ) from None
    for key in ("videos", "responses", "video_id", "tier"):
        if key not in arrays:
            raise DataError(
                f"no array '{key}' (found {sorted(arrays)})",
                file=path,
                field=key,
                expected="keys videos, responses, video_id, tier",
            )
    rate = float(arrays["frame_rate_hz"]) if "frame_rate_hz" in arrays else FRAME_RATE_HZ
    return make_video_dataset(
        arrays["videos"],
        arrays["responses"],
        video_id=arrays["video_id"],
        tier=arrays["tier"],
        frame_rate_hz=rate,
        name=path.stem,
        source=str(path),
        require_tiers=require_tiers,
        require_repeats=require_repeats,
        **{k: arrays[k] for k in _OPTIONAL if k in arrays},
    )


def save_video_arrays(ds: xr.Dataset, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a (in-memory) video dataset as the arrays form; returns the path."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise DataError(
            "file exists", file=path, field="path", expected="a new path or overwrite=True"
        )
    out = {
        "videos": ds["videos"].values,
        "responses": ds["responses"].values,
        "video_id": ds["video_id"].values,
        "tier": ds["tier"].values.astype(str),
        "n_frames": ds["n_frames"].values,
        "neuron_id": ds["neuron_id"].values,
        "frame_rate_hz": np.float64(ds.attrs.get("frame_rate_hz", FRAME_RATE_HZ)),
    }
    for k in ("behavior", "pupil_center"):
        if k in ds.data_vars:
            out[k] = ds[k].values
    if "behavior_var" in ds.coords:
        out["behavior_vars"] = ds["behavior_var"].values.astype(str)
    if "cortex_x" in ds.coords:
        out["cortex_xyz"] = np.stack(
            [ds[a].values for a in ("cortex_x", "cortex_y", "cortex_z") if a in ds.coords], 1
        )
    if "area" in ds.coords:
        out["area"] = ds["area"].values.astype(str)
    tmp = path.with_name(f".{path.name}.partial.npz")  # renamed into place when complete
    np.savez(tmp, **out)
    tmp.replace(path)
    return path
