"""Writing a dataset in the static folder layout (the inverse of
:func:`jaxsel.data.load_static`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from jaxsel._atomic import atomic_directory
from jaxsel._errors import DataError
from jaxsel.data._dataset import global_image_stats, validate


def save_static(ds: xr.Dataset, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a dataset in the static folder layout (readable by :func:`load_static`).

    The dataset is validated first and written into a temporary sibling folder that is
    renamed at the end, so a failure never leaves a half-written folder. Statistics go to
    ``meta/statistics/{images,responses}/all/{mean,std}.npy`` (global image mean/std,
    per-neuron response mean/std, train tier). The optional ``behavior``, ``pupil_center``
    and ``trial_idx`` variables are written to ``data/behavior``, ``data/pupil_center`` and
    ``meta/trials/trial_idx.npy``, with their train-tier statistics in
    ``meta/statistics/{behavior,pupil_center}/all/{mean,std,min,max,median}.npy``.

    Args:
      ds: a dataset as made by :func:`jaxsel.data.make_dataset`.
      path: the folder to create.
      overwrite: replace an existing non-empty folder.

    Returns:
      The folder written.
    """
    path = Path(path)
    for key in ("images", "responses", "image_id", "tier", "neuron_id"):
        if key not in ds.variables:
            raise DataError("missing from the dataset", file=path, field=key)
    if ds["images"].ndim != 4:
        raise DataError(
            f"images have dims {ds['images'].dims}",
            file=path,
            field="images",
            expected="(trial, channel, y, x)",
        )
    validate(ds, source=str(path), require_tiers=(), require_repeats=False)
    images = ds["images"].values.astype(np.float32)
    responses = ds["responses"].values.astype(np.float32)
    neuron_id = np.asarray(ds["neuron_id"].values)
    with atomic_directory(path, overwrite=overwrite) as tmp:
        dirs = {
            k: tmp / k
            for k in (
                "data/images",
                "data/responses",
                "meta/trials",
                "meta/neurons",
                "meta/statistics/images/all",
                "meta/statistics/responses/all",
            )
        }
        for d in dirs.values():
            d.mkdir(parents=True)
        for i in range(images.shape[0]):
            np.save(dirs["data/images"] / f"{i}.npy", images[i])
            np.save(dirs["data/responses"] / f"{i}.npy", responses[i])
        for var, folder in (("behavior", "data/behavior"), ("pupil_center", "data/pupil_center")):
            if var in ds.variables:
                values = ds[var].values.astype(np.float32)
                (tmp / folder).mkdir(parents=True)
                for i in range(values.shape[0]):
                    np.save(tmp / folder / f"{i}.npy", values[i])
        if "trial_idx" in ds.variables:
            np.save(dirs["meta/trials"] / "trial_idx.npy", ds["trial_idx"].values.astype(np.int64))
        np.save(dirs["meta/trials"] / "tiers.npy", ds["tier"].values.astype(str))
        np.save(dirs["meta/trials"] / "frame_image_id.npy", ds["image_id"].values)
        np.save(
            dirs["meta/neurons"] / "unit_ids.npy",
            neuron_id.astype(str) if neuron_id.dtype.kind == "O" else neuron_id,
        )
        if "area" in ds.coords:
            np.save(dirs["meta/neurons"] / "area.npy", ds["area"].values.astype(str))
        axes = [f"cortex_{a}" for a in "xyz" if f"cortex_{a}" in ds.coords]
        if axes:
            np.save(
                dirs["meta/neurons"] / "cell_motor_coordinates.npy",
                np.stack([ds[a].values for a in axes], axis=1).astype(np.float32),
            )
        if all(k in ds for k in ("image_mean", "image_std", "response_mean", "response_std")):
            mean, std = global_image_stats(ds)
            stats = dirs["meta/statistics/images/all"]
            np.save(stats / "mean.npy", np.float32(mean))
            np.save(stats / "std.npy", np.float32(std))
            stats = dirs["meta/statistics/responses/all"]
            np.save(stats / "mean.npy", ds["response_mean"].values.astype(np.float32))
            np.save(stats / "std.npy", ds["response_std"].values.astype(np.float32))
        _save_trial_var_stats(ds, tmp / "meta/statistics")
    return path


def _save_trial_var_stats(ds: xr.Dataset, root: Path) -> None:
    """``<var>/all/{mean,std,min,max,median}.npy`` of ``behavior`` and ``pupil_center``
    over the train tier (all trials if it is empty), as other tools' normalizers read."""
    train = ds["tier"].values == "train"
    for var in ("behavior", "pupil_center"):
        if var not in ds.variables:
            continue
        a = ds[var].values.astype(np.float64)
        a = a[train] if train.any() else a
        out = root / var / "all"
        out.mkdir(parents=True)
        for stat, f in (
            ("mean", np.mean),
            ("std", np.std),
            ("min", np.min),
            ("max", np.max),
            ("median", np.median),
        ):
            np.save(out / f"{stat}.npy", f(a, axis=0).astype(np.float32))
