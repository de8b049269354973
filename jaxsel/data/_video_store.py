"""Video datasets on disk as zarr v3 (tensorstore), streamed when larger than a memory budget.

Store layout (a folder, written atomically)::

    videos/        zarr v3 (trial, channel, time, y, x) float32, one chunk per trial
    responses/     zarr v3 (trial, time, neuron) float32, one chunk per trial
    behavior/      optional zarr v3 (trial, time, behavior_var)
    pupil_center/  optional zarr v3 (trial, time, xy)
    meta.npz       coords (video_id, tier, n_frames, neuron ids, positions, names) and the
                   train statistics
    attrs.json     the dataset's attrs (frame_rate_hz, name, source, ...)

:func:`open_video_store` loads the store whole when it fits ``memory_budget_gb``; otherwise
the per-trial variables stay on disk as lazy xarray variables and only the frames asked for
are read (:func:`jaxsel.data.subsequences` reads one clip at a time, in a background
thread). Either way the result is the canonical video dataset.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from jaxsel._atomic import atomic_directory
from jaxsel._errors import DataError
from jaxsel.data._zarr_store import load_zarr

MEMORY_BUDGET_GB = 8.0
"""Default memory budget: larger data sets stream from a zarr store."""
TRIAL_VARS = {
    "videos": ("trial", "channel", "time", "y", "x"),
    "responses": ("trial", "time", "neuron"),
    "behavior": ("trial", "time", "behavior_var"),
    "pupil_center": ("trial", "time", "xy"),
}
_FORMAT = 1


def nbytes_gb(shapes: dict[str, tuple[int, ...]]) -> float:
    """Size in GB (1e9 bytes) of float32 arrays of these shapes."""
    return sum(4.0 * float(np.prod(s)) for s in shapes.values()) / 1e9


def dataset_gb(ds: xr.Dataset) -> float:
    """Size in GB of a video dataset's per-trial variables."""
    return nbytes_gb({k: ds[k].shape for k in TRIAL_VARS if k in ds.data_vars})


def write_store(
    path: Path,
    shapes: dict[str, tuple[int, ...]],
    trials: Callable[[], Iterator[dict[str, np.ndarray]]],
    meta: Callable[[], tuple[dict, dict]],
    *,
    overwrite: bool = False,
) -> Path:
    """Create the store and fill it trial by trial.

    Args:
      path: the store folder.
      shapes: the full (padded) shape of each per-trial variable.
      trials: yields, per trial in order, ``{name: array}`` without the trial axis.
      meta: called after all trials are written: ``(coords, attrs)`` where ``coords`` maps
        a name to ``(dims, values)`` (coords and statistics).
      overwrite: replace an existing store.
    """
    import tensorstore as ts

    with atomic_directory(Path(path), overwrite=overwrite) as tmp:
        stores = {}
        for name, shape in shapes.items():
            spec = {
                "driver": "zarr3",
                "kvstore": {"driver": "file", "path": str(tmp / name)},
                "metadata": {"dimension_names": list(TRIAL_VARS[name])},
            }
            stores[name] = ts.open(
                spec,
                create=True,
                dtype=ts.float32,
                shape=list(shape),
                chunk_layout=ts.ChunkLayout(chunk_shape=[1, *shape[1:]]),
            ).result()
        n = 0
        for i, arrays in enumerate(trials()):
            futures = [stores[k][i].write(np.asarray(a, np.float32)) for k, a in arrays.items()]
            for f in futures:
                f.result()
            n = i + 1
        n_trial = next(iter(shapes.values()))[0]
        if n != n_trial:
            raise DataError(f"{n} trials written for {n_trial}", file=path, field="trials")
        coords, attrs = meta()
        payload: dict[str, Any] = {
            f"{k}|{','.join(d)}": np.asarray(v) for k, (d, v) in coords.items()
        }
        np.savez(tmp / "meta.npz", **payload)
        (tmp / "attrs.json").write_text(json.dumps({"format": _FORMAT, **attrs}, indent=1))
    return Path(path)


def save_video_store(ds: xr.Dataset, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a video dataset (in memory or itself streamed) as a zarr store, trial by trial.

    Returns:
      The store path.
    """
    names = [k for k in TRIAL_VARS if k in ds.data_vars]

    def trials():
        for i in range(ds.sizes["trial"]):
            yield {k: np.asarray(ds[k].variable[i].values) for k in names}

    def meta():
        keep = {k: v for k, v in ds.variables.items() if k not in TRIAL_VARS}
        return {k: (v.dims, v.values) for k, v in keep.items()}, _json_attrs(ds.attrs)

    return write_store(
        Path(path), {k: ds[k].shape for k in names}, trials, meta, overwrite=overwrite
    )


def _json_attrs(attrs: dict) -> dict:
    out = {}
    for k, v in attrs.items():
        if isinstance(v, (np.generic,)):
            v = v.item()
        try:
            json.dumps(v)
        except TypeError:
            v = str(v)
        out[str(k)] = v
    return out


def _lazy_array(path: Path) -> xr.DataArray:
    a = load_zarr(path, lazy=True)
    if not isinstance(a, xr.DataArray):
        raise DataError("array without dimension names", file=path, field="store")
    return a


def open_video_store(
    path: str | Path, *, memory_budget_gb: float | None = MEMORY_BUDGET_GB
) -> xr.Dataset:
    """Open a store written by :func:`save_video_store` (or :func:`jaxsel.data.load_videos`).

    Args:
      path: the store folder.
      memory_budget_gb: load the per-trial arrays into memory when they fit this many GB;
        otherwise they stay on disk and are read on indexing (``attrs["streamed"]`` is True).
        None: always load.

    Returns:
      The canonical video dataset.

    Raises:
      DataError: not a video store (missing ``attrs.json``/``meta.npz``/``videos``).
    """
    path = Path(path)
    for rel in ("attrs.json", "meta.npz", "videos/zarr.json", "responses/zarr.json"):
        if not (path / rel).is_file():
            raise DataError(
                "not a jaxsel video store (file missing)",
                file=path / rel,
                field="store",
                expected="a folder written by jaxsel.data.save_video_store / load_videos",
            )
    attrs = json.loads((path / "attrs.json").read_text())
    if attrs.pop("format", None) != _FORMAT:
        raise DataError("unsupported store format", file=path / "attrs.json", field="format")
    arrays = {k: _lazy_array(path / k) for k in TRIAL_VARS if (path / k / "zarr.json").is_file()}
    lazy = memory_budget_gb is not None and nbytes_gb(
        {k: a.shape for k, a in arrays.items()}
    ) > float(memory_budget_gb)
    data = {k: (a if lazy else a.load()) for k, a in arrays.items()}
    coords, stats = {}, {}
    with np.load(path / "meta.npz") as z:
        for key in z.files:
            name, dims = key.split("|")
            dims_t = tuple(d for d in dims.split(",") if d)
            (stats if name.endswith(("_mean", "_std")) else coords)[name] = (dims_t, z[key])
    ds = xr.Dataset(
        {k: a.variable for k, a in data.items()},
        coords=coords,
        attrs={**attrs, "streamed": bool(lazy), "store": str(path)},
    )
    ds = ds.assign(stats)
    if "time_s" in ds.coords:
        ds["time_s"].attrs["units"] = "s"
    return ds
