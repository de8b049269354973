"""Reading the files of a static folder or its ``.zip``: the two file sources and
checked loaders of single arrays, numbered per-trial files and the optional per-trial
variables (behaviour, pupil centre, trial index). Used by :func:`jaxsel.data.load_static`."""

from __future__ import annotations

import contextlib
import io
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np
import xarray as xr

from jaxsel._errors import DataError
from jaxsel.data._dataset import BEHAVIOR_VARS

_NUMBERED = re.compile(r"^(\d+)\.npy$")
ANCHOR = "meta/trials/tiers.npy"


class FolderSource:
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


class ZipSource:
    """Files of the layout inside a zip archive (at its root or one folder down)."""

    def __init__(self, zf: zipfile.ZipFile, path: Path):
        self.zf, self.path = zf, path
        names = [n for n in zf.namelist() if not n.endswith("/")]
        roots = sorted(
            {n[: -len(ANCHOR)] for n in names if n == ANCHOR or n.endswith("/" + ANCHOR)}
        )
        roots = [r for r in roots if r.count("/") <= 1 and not r.startswith("__MACOSX")]
        if not roots:
            raise DataError(
                f"no {ANCHOR} at the archive's root or in a folder inside it",
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


def load_array(src, rel: str, field: str, allow_pickle: bool) -> np.ndarray:
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


def count_numbered(src, rel: str, field: str) -> int:
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


def as_strings(a: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "S":
        return a.astype(str)
    if a.dtype.kind == "O":
        return np.array(
            [x.decode() if isinstance(x, bytes) else str(x) for x in a.ravel()]
        ).reshape(a.shape)
    return a.astype(str)


def per_trial_vectors(src, folder: str, field: str, n: int, length: int, allow_pickle):
    """``folder/<i>.npy`` for every trial, each of shape (``length``,), stacked (n, length);
    None when the folder is absent."""
    if not src.listdir(folder):
        return None
    n_files = count_numbered(src, folder, field)
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
        a = np.asarray(load_array(src, rel, field, allow_pickle))
        if a.shape != (length,) or a.dtype.kind not in "biuf":
            raise DataError(
                f"has shape {a.shape} and dtype {a.dtype}",
                file=src.label(rel),
                field=field,
                expected=f"({length},) numbers",
            )
        out[i] = a
    return out


def read_trial_vars(src, n: int, allow_pickle: bool) -> dict:
    """The optional per-trial variables: behaviour, pupil centre, trial index."""
    out: dict = {}
    behavior = per_trial_vectors(
        src, "data/behavior", "behavior", n, len(BEHAVIOR_VARS), allow_pickle
    )
    if behavior is not None:
        out["behavior"] = xr.DataArray(
            behavior,
            dims=("trial", "behavior_var"),
            coords={"behavior_var": list(BEHAVIOR_VARS)},
            attrs={"description": "pupil dilation, its derivative, running speed"},
        )
    pupil = per_trial_vectors(src, "data/pupil_center", "pupil_center", n, 2, allow_pickle)
    if pupil is not None:
        out["pupil_center"] = xr.DataArray(pupil, dims=("trial", "xy"), coords={"xy": ["x", "y"]})
    rel = "meta/trials/trial_idx.npy"
    if src.exists(rel):
        idx = meta_vector(src, rel, "trial_idx", n, "trial", allow_pickle)
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


def meta_vector(src, rel, field, length, what, allow_pickle) -> np.ndarray:
    a = load_array(src, rel, field, allow_pickle)
    if a.shape != (length,):
        raise DataError(
            f"has shape {a.shape}",
            file=src.label(rel),
            field=field,
            expected=f"one value per {what}, shape ({length},)",
        )
    return a


@contextlib.contextmanager
def open_source(path: Path):
    """The files of a static folder or ``.zip`` (closed on exit)."""
    if path.is_dir():
        yield FolderSource(path)
        return
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(
            f"neither a folder nor a readable zip ({err})", file=path, field="path"
        ) from None
    with zf:
        yield ZipSource(zf, path)


def read_neuron_meta(src, n_neuron: int, allow_pickle: bool):
    """``unit_ids`` (neuron,), and ``area`` (neuron,) and ``cell_motor_coordinates``
    (neuron, 2 or 3) or None where their files are absent."""
    unit_ids = meta_vector(
        src, "meta/neurons/unit_ids.npy", "unit_ids", n_neuron, "neuron", allow_pickle
    )
    unit_ids = as_strings(unit_ids) if unit_ids.dtype.kind in "SO" else unit_ids
    area = xyz = None
    if src.exists("meta/neurons/area.npy"):
        area = as_strings(
            meta_vector(src, "meta/neurons/area.npy", "area", n_neuron, "neuron", allow_pickle)
        )
    rel = "meta/neurons/cell_motor_coordinates.npy"
    if src.exists(rel):
        xyz = load_array(src, rel, "cell_motor_coordinates", allow_pickle)
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
    return unit_ids, area, xyz
