"""The Sensorium / Lurz 2020 "static" folder layout, read from a folder or a ``.zip``.

Layout (``n`` trials numbered ``0..n-1``)::

    data/images/<i>.npy          (1, y, x) per trial (any y, x; (y, x) and (c, y, x) also read)
    data/responses/<i>.npy       (neuron,) per trial
    meta/trials/tiers.npy        (n,) 'train' / 'validation' / 'test' (/ 'final_test')
    meta/trials/frame_image_id.npy  (n,) image ids; repeats share one
    meta/neurons/unit_ids.npy    (neuron,)
    meta/neurons/area.npy        optional (neuron,)
    meta/neurons/cell_motor_coordinates.npy  optional (neuron, 3)
    data/behavior/<i>.npy        optional (3,) per trial: pupil dilation, its derivative,
                                 running speed -> dataset variable ``behavior``
                                 (trial, behavior_var)
    data/pupil_center/<i>.npy    optional (2,) per trial -> ``pupil_center`` (trial, xy)
    meta/trials/trial_idx.npy    optional (n,) -> ``trial_idx`` (trial)
    meta/statistics/...          optional; ignored on load (statistics are recomputed from
                                 the train tier), written on save for other tools

An optional folder, when present, must hold one file per trial. Sensorium's ``final_test``
tier is merged into ``test`` by default (``final_test="merge"``: both hold repeated
held-out images); ``"drop"`` removes those trials and ``"error"`` rejects them (the run
config's ``data.final_test``). Competition releases withhold those responses (stored as
zeros): a ``final_test`` tier whose responses are all zero is rejected with a hint to drop
it. The dataset's ``attrs["final_test"]`` records the choice.

A ``.zip`` is read in place (``zipfile`` + ``np.load``), the layout at its root or in one
folder inside it. Loading never writes anything.
"""

from __future__ import annotations

import contextlib
import io
import re
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from jaxsel._atomic import atomic_directory
from jaxsel._errors import DataError
from jaxsel.data._dataset import (
    BEHAVIOR_VARS,
    TIERS,
    global_image_stats,
    make_dataset,
    validate,
)

_NUMBERED = re.compile(r"^(\d+)\.npy$")
_ANCHOR = "meta/trials/tiers.npy"
FINAL_TEST = ("merge", "drop", "error")
_FINAL_FIX = "data.final_test = '{0}' (API: final_test='{0}')"


class _FolderSource:
    """Files of the layout in a folder."""

    def __init__(self, root: Path):
        self.root = root

    def label(self, rel: str) -> str:
        return str(self.root / rel)

    def exists(self, rel: str) -> bool:
        return (self.root / rel).is_file()

    def listdir(self, rel: str) -> list[str]:
        d = self.root / rel
        return [p.name for p in d.iterdir() if p.is_file()] if d.is_dir() else []

    def read(self, rel: str) -> io.BytesIO | Path:
        return self.root / rel


class _ZipSource:
    """Files of the layout inside a zip archive (at its root or one folder down)."""

    def __init__(self, zf: zipfile.ZipFile, path: Path):
        self.zf, self.path = zf, path
        names = [n for n in zf.namelist() if not n.endswith("/")]
        roots = sorted(
            {n[: -len(_ANCHOR)] for n in names if n == _ANCHOR or n.endswith("/" + _ANCHOR)}
        )
        roots = [r for r in roots if r.count("/") <= 1 and not r.startswith("__MACOSX")]
        if not roots:
            raise DataError(
                f"no {_ANCHOR} at the archive's root or in a folder inside it",
                file=path,
                field="meta/trials/tiers",
                expected="the static layout (data/, meta/) in the zip",
            )
        if len(roots) > 1:
            raise DataError(
                f"several datasets in one archive: {roots}",
                file=path,
                field="layout",
                expected="one static folder per zip",
            )
        self.prefix = roots[0]
        self.names = {n[len(self.prefix) :] for n in names if n.startswith(self.prefix)}

    def label(self, rel: str) -> str:
        return f"{self.path}::{self.prefix}{rel}"

    def exists(self, rel: str) -> bool:
        return rel in self.names

    def listdir(self, rel: str) -> list[str]:
        head = rel.rstrip("/") + "/"
        return [
            n[len(head) :] for n in self.names if n.startswith(head) and "/" not in n[len(head) :]
        ]

    def read(self, rel: str) -> io.BytesIO | Path:
        return io.BytesIO(self.zf.read(self.prefix + rel))


def _load(src, rel: str, field: str, allow_pickle: bool) -> np.ndarray:
    if not src.exists(rel):
        raise DataError(
            "file not found",
            file=src.label(rel),
            field=field,
            expected="a Sensorium/Lurz static folder (data/images, data/responses, "
            "meta/trials, meta/neurons): check data.path (API: load_static(path))",
        )
    try:
        return np.load(src.read(rel), allow_pickle=allow_pickle)
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise DataError(
                "holds pickled Python objects, which are not loaded by default (a pickle can "
                "run code)",
                file=src.label(rel),
                field=field,
                expected="a plain .npy array; if you trust the file set data.allow_pickle = "
                "true (API: load_static(..., allow_pickle=True))",
            ) from None
        raise DataError(
            f"cannot read ({err})", file=src.label(rel), field=field, expected="a .npy array"
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise DataError(
            f"cannot read ({type(err).__name__}: {err})",
            file=src.label(rel),
            field=field,
            expected="a readable .npy file (re-copy or re-extract the data)",
        ) from None


def _numbered(src, rel: str, field: str) -> int:
    """Number of files ``<i>.npy`` in a folder, checking they run 0..n-1 without gaps."""
    found: dict[int, str] = {}
    for name in src.listdir(rel):
        m = _NUMBERED.match(name)
        if m:
            i = int(m.group(1))
            if i in found:
                raise DataError(
                    f"both {found[i]} and {name} give trial {i}", file=src.label(rel), field=field
                )
            found[i] = name
    if not found:
        raise DataError(
            "no numbered .npy files",
            file=src.label(rel),
            field=field,
            expected="files 0.npy, 1.npy, ...",
        )
    n = max(found) + 1
    if len(found) != n:
        gap = min(set(range(n)) - set(found))
        raise DataError(
            f"file {gap}.npy is missing ({len(found)} files, numbered up to {n - 1})",
            file=src.label(f"{rel}/{gap}.npy"),
            field=field,
            expected=f"files numbered 0..{n - 1} without gaps",
        )
    return n


def _strings(a: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "S":
        return a.astype(str)
    if a.dtype.kind == "O":
        return np.array(
            [x.decode() if isinstance(x, bytes) else str(x) for x in a.ravel()]
        ).reshape(a.shape)
    return a.astype(str)


def _read_trials(src, n: int, allow_pickle: bool) -> tuple[np.ndarray, np.ndarray]:
    images = responses = None
    for i in range(n):
        rel = f"data/images/{i}.npy"
        im = _load(src, rel, "images", allow_pickle)
        if im.dtype.kind not in "biuf":
            raise DataError(
                f"image has dtype {im.dtype} (shape {im.shape})",
                file=src.label(rel),
                field="images",
                expected="a numeric (1, y, x) array of pixel values",
            )
        im = im[None] if im.ndim == 2 else im
        if im.ndim != 3:
            raise DataError(
                f"image has shape {im.shape}",
                file=src.label(rel),
                field="images",
                expected="(1, y, x)",
            )
        if not np.isfinite(im).all():
            raise DataError(
                f"{int((~np.isfinite(im)).sum())} non-finite pixel values",
                file=src.label(rel),
                field="images",
                expected="finite numbers",
            )
        if images is None:
            images = np.empty((n,) + im.shape, dtype=np.float32)
        elif im.shape != images.shape[1:]:
            raise DataError(
                f"image has shape {im.shape} but 0.npy has {images.shape[1:]}",
                file=src.label(rel),
                field="images",
                expected="all images of one shape",
            )
        images[i] = im
        rel = f"data/responses/{i}.npy"
        r = np.asarray(_load(src, rel, "responses", allow_pickle))
        if responses is None:
            if r.ndim != 1:
                raise DataError(
                    f"responses have shape {r.shape}",
                    file=src.label(rel),
                    field="responses",
                    expected="(neuron,)",
                )
            responses = np.empty((n, r.shape[0]), dtype=np.float32)
        elif r.shape != responses.shape[1:]:
            raise DataError(
                f"responses have shape {r.shape} but 0.npy has {responses.shape[1:]}",
                file=src.label(rel),
                field="responses",
                expected="(neuron,) with the same neurons in every trial",
            )
        if r.dtype.kind not in "biuf" or not np.isfinite(r).all():
            bad = np.flatnonzero(~np.isfinite(r))[:5].tolist() if r.dtype.kind in "biuf" else "all"
            raise DataError(
                f"non-finite or non-numeric responses at neurons {bad}",
                file=src.label(rel),
                field="responses",
                expected="finite numbers",
            )
        responses[i] = r
    if images is None or responses is None:
        raise DataError(
            "no trials",
            file=src.label("data"),
            field="images",
            expected="at least one image and response file",
        )
    return images, responses


def _per_trial_vectors(src, folder: str, field: str, n: int, length: int, allow_pickle):
    """``folder/<i>.npy`` for every trial, each of shape (``length``,), stacked (n, length);
    None when the folder is absent."""
    if not src.listdir(folder):
        return None
    n_files = _numbered(src, folder, field)
    if n_files != n:
        raise DataError(
            f"{n_files} files for {n} trials",
            file=src.label(folder),
            field=field,
            expected="one file per trial (or no folder)",
        )
    out = np.empty((n, length), dtype=np.float32)
    for i in range(n):
        rel = f"{folder}/{i}.npy"
        a = np.asarray(_load(src, rel, field, allow_pickle))
        if a.shape != (length,) or a.dtype.kind not in "biuf":
            raise DataError(
                f"has shape {a.shape} and dtype {a.dtype}",
                file=src.label(rel),
                field=field,
                expected=f"({length},) numbers",
            )
        out[i] = a
    return out


def _trial_vars(src, n: int, allow_pickle: bool) -> dict:
    """The optional per-trial variables: behaviour, pupil centre, trial index."""
    out: dict = {}
    behavior = _per_trial_vectors(
        src, "data/behavior", "behavior", n, len(BEHAVIOR_VARS), allow_pickle
    )
    if behavior is not None:
        out["behavior"] = xr.DataArray(
            behavior,
            dims=("trial", "behavior_var"),
            coords={"behavior_var": list(BEHAVIOR_VARS)},
            attrs={"description": "pupil dilation, its derivative, running speed"},
        )
    pupil = _per_trial_vectors(src, "data/pupil_center", "pupil_center", n, 2, allow_pickle)
    if pupil is not None:
        out["pupil_center"] = xr.DataArray(pupil, dims=("trial", "xy"), coords={"xy": ["x", "y"]})
    rel = "meta/trials/trial_idx.npy"
    if src.exists(rel):
        idx = _meta_vector(src, rel, "trial_idx", n, "trial", allow_pickle)
        if idx.dtype.kind not in "iuf" or (
            idx.dtype.kind == "f" and not (np.isfinite(idx).all() and (idx == idx.round()).all())
        ):
            raise DataError(
                f"has dtype {idx.dtype}",
                file=src.label(rel),
                field="trial_idx",
                expected="integers",
            )
        out["trial_idx"] = xr.DataArray(idx.astype(np.int64), dims=("trial",))
    return out


def _meta_vector(src, rel, field, length, what, allow_pickle) -> np.ndarray:
    a = _load(src, rel, field, allow_pickle)
    if a.shape != (length,):
        raise DataError(
            f"has shape {a.shape}",
            file=src.label(rel),
            field=field,
            expected=f"one value per {what}, shape ({length},)",
        )
    return a


def load_static(
    path: str | Path,
    *,
    neurons=None,
    require_tiers: Sequence[str] = TIERS,
    require_repeats: bool = True,
    final_test: str = "merge",
    allow_pickle: bool = False,
    name: str | None = None,
) -> xr.Dataset:
    """Load a Sensorium / Lurz 2020 static folder (or its ``.zip``).

    Args:
      path: the folder, or a ``.zip`` holding it at its root or in one folder inside.
      neurons: keep only these neuron ids (``unit_ids`` values) or a boolean mask.
      require_tiers: tiers that must have at least one trial.
      require_repeats: the test tier must contain repeated images.
      final_test: what to do with Sensorium's ``final_test`` trials: ``"merge"`` (into the
        test tier; ``"test"`` is accepted as its old name), ``"drop"`` or ``"error"``.
      allow_pickle: allow pickled object arrays in the meta files (only for trusted data).
      name: dataset name (default: the folder or zip name).

    Returns:
      The validated dataset; ``area`` and ``cortex_x/y/z`` coords, ``behavior``,
      ``pupil_center`` and ``trial_idx`` variables when their files exist;
      ``attrs["final_test"]`` and ``attrs["n_final_test"]`` (trials of that tier found).

    Raises:
      DataError: naming the file and field (missing file or trial number, wrong shapes,
        non-finite responses, unknown tiers, missing tiers, test images without repeats).
    """
    final_test = "merge" if final_test == "test" else final_test
    if final_test not in FINAL_TEST:
        raise DataError(
            f"final_test={final_test!r}",
            field="final_test",
            expected="set data.final_test = 'merge', 'drop' or 'error' "
            "(API: final_test='merge' / 'drop' / 'error')",
        )
    path = Path(path)
    if not path.exists():
        raise DataError(
            "not found", file=path, field="path", expected="a static folder or its .zip"
        )
    with contextlib.ExitStack() as stack:
        if path.is_dir():
            src = _FolderSource(path)
        else:
            try:
                zf = stack.enter_context(zipfile.ZipFile(path))
            except (zipfile.BadZipFile, OSError) as err:
                raise DataError(
                    f"neither a folder nor a readable zip ({err})", file=path, field="path"
                ) from None
            src = _ZipSource(zf, path)
        tiers = _strings(_load(src, _ANCHOR, "tiers", allow_pickle))
        n = _numbered(src, "data/images", "images")
        n_resp = _numbered(src, "data/responses", "responses")
        if n != n_resp:
            raise DataError(
                f"{n} image files but {n_resp} response files",
                file=src.label("data"),
                field="images/responses",
                expected="one image and one response file per trial",
            )
        if tiers.shape != (n,):
            raise DataError(
                f"has shape {tiers.shape} for {n} trials",
                file=src.label(_ANCHOR),
                field="tiers",
                expected=f"({n},)",
            )
        image_id = _meta_vector(
            src, "meta/trials/frame_image_id.npy", "frame_image_id", n, "trial", allow_pickle
        )
        images, responses = _read_trials(src, n, allow_pickle)
        n_neuron = responses.shape[1]
        unit_ids = _meta_vector(
            src, "meta/neurons/unit_ids.npy", "unit_ids", n_neuron, "neuron", allow_pickle
        )
        unit_ids = _strings(unit_ids) if unit_ids.dtype.kind in "SO" else unit_ids
        area = xyz = None
        if src.exists("meta/neurons/area.npy"):
            area = _strings(
                _meta_vector(src, "meta/neurons/area.npy", "area", n_neuron, "neuron", allow_pickle)
            )
        rel = "meta/neurons/cell_motor_coordinates.npy"
        if src.exists(rel):
            xyz = _load(src, rel, "cell_motor_coordinates", allow_pickle)
            if (
                xyz.dtype.kind not in "biuf"
                or xyz.ndim != 2
                or xyz.shape[0] != n_neuron
                or xyz.shape[1] not in (2, 3)
            ):
                raise DataError(
                    f"has shape {xyz.shape} and dtype {xyz.dtype}",
                    file=src.label(rel),
                    field="cell_motor_coordinates",
                    expected=f"({n_neuron}, 3) numbers",
                )
        trial_vars = _trial_vars(src, n, allow_pickle)
        tier_file = src.label(_ANCHOR)
    keep = _tier_mask(tiers, responses, final_test, tier_file)
    n_final = int((tiers == "final_test").sum())
    tiers = np.where(tiers == "final_test", "test", tiers)
    idx = _neuron_index(neurons, unit_ids, src.label("meta/neurons/unit_ids.npy"))
    ds = make_dataset(
        images[keep],
        responses[keep][:, idx],
        image_id=image_id[keep],
        tier=tiers[keep],
        neuron_id=unit_ids[idx],
        area=None if area is None else area[idx],
        cortex_xyz=None if xyz is None else xyz[idx],
        name=name or path.stem,
        source=str(path),
        require_tiers=require_tiers,
        require_repeats=require_repeats,
    )
    if trial_vars:
        ds = ds.assign({k: v.isel(trial=np.flatnonzero(keep)) for k, v in trial_vars.items()})
        validate(ds, source=str(path), require_tiers=(), require_repeats=False)
    ds.attrs.update(final_test=final_test, n_final_test=n_final)
    return ds


def _tier_mask(tiers, responses, final_test, where) -> np.ndarray:
    unknown = sorted(set(tiers.tolist()) - set(TIERS) - {"final_test"})
    if unknown:
        raise DataError(
            f"unknown tier values {unknown}",
            file=where,
            field="tiers",
            expected=f"values in {list(TIERS)} (or 'final_test')",
        )
    is_final = tiers == "final_test"
    if not is_final.any():
        return np.ones(len(tiers), dtype=bool)
    if final_test == "error":
        raise DataError(
            f"{int(is_final.sum())} trials in tier 'final_test'",
            file=where,
            field="tiers",
            expected=f"set {_FINAL_FIX.format('merge')} to test on them or "
            f"{_FINAL_FIX.format('drop')} to leave them out",
        )
    if final_test == "drop":
        return ~is_final
    if not responses[is_final].any():
        raise DataError(
            "all responses of the 'final_test' trials are zero (withheld in competition releases)",
            file=where,
            field="tiers",
            expected=f"{_FINAL_FIX.format('drop')} for such data",
        )
    return np.ones(len(tiers), dtype=bool)


def _neuron_index(neurons, unit_ids, where) -> np.ndarray:
    if neurons is None:
        return np.arange(len(unit_ids))
    neurons = np.asarray(neurons)
    if neurons.dtype == bool:
        if neurons.shape != unit_ids.shape:
            raise DataError(
                f"neuron mask has shape {neurons.shape}",
                file=where,
                field="neurons",
                expected=f"{unit_ids.shape}",
            )
        return np.flatnonzero(neurons)
    pos = {v: i for i, v in enumerate(unit_ids.tolist())}
    missing = [v for v in neurons.tolist() if v not in pos]
    if missing:
        raise DataError(
            f"unknown neuron ids {missing[:5]}",
            file=where,
            field="unit_ids",
            expected=f"ids among the {len(unit_ids)} unit_ids (API: load_static(neurons=...))",
        )
    return np.array([pos[v] for v in neurons.tolist()], dtype=int)


def save_static(ds: xr.Dataset, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a dataset in the static folder layout (readable by :func:`load_static`).

    The dataset is validated first and written into a temporary sibling folder that is
    renamed at the end, so a failure never leaves a half-written folder. Statistics go to
    ``meta/statistics/{images,responses}/all/{mean,std}.npy`` (global image mean/std,
    per-neuron response mean/std, train tier). The optional ``behavior``, ``pupil_center``
    and ``trial_idx`` variables are written to ``data/behavior``, ``data/pupil_center`` and
    ``meta/trials/trial_idx.npy``.

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
    return path
