"""Datasets from plain arrays (``.npz`` or a folder of ``.npy``) and from a response table.

Array form: arrays named ``images`` (trial, [channel,] y, x), ``responses`` (trial, neuron),
``image_id`` (trial,), ``tier`` (trial,), and optionally ``neuron_id``, ``area`` (neuron,)
and ``cortex_xyz`` (neuron, 2 or 3).

Table form (seed 002): a CSV of per-image mean responses, one row per image/frame (first
column the frame id or image file name, the other columns neurons, header = neuron ids) and
a folder with the images. Tables have no repeats, so tiers come from :func:`split_tiers`.
"""

from __future__ import annotations

import csv
import os
import re
import secrets
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from jaxsel._errors import DataError
from jaxsel.data._dataset import TIERS, make_dataset, validate
from jaxsel.data._image_folder import load_image_folder

_PLAIN = (
    "plain (non-pickled) NumPy arrays: store strings as a str array (a.astype(str)) and "
    "save with np.save / np.savez"
)
REQUIRED = ("images", "responses", "image_id", "tier")
OPTIONAL = ("neuron_id", "area", "cortex_xyz")


def split_tiers(ids, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> np.ndarray:
    """Assign each distinct id to a tier by a seeded permutation; repeats share a tier.

    The sorted distinct ids are permuted with ``numpy.random.default_rng(seed)``; the first
    share goes to train, the next to validation, the rest to test. Shares are the fractions
    times the number of ids, rounded by largest remainder; every tier with a positive
    fraction gets at least one id when there are enough ids.

    Args:
      ids: (trial,) image ids.
      fractions: (train, validation, test) fractions, non-negative, summing to 1.
      seed: permutation seed.

    Returns:
      (trial,) array of tier names.
    """
    frac = np.asarray(fractions, dtype=np.float64)
    if frac.shape != (3,) or (frac < 0).any() or not np.isclose(frac.sum(), 1.0):
        raise DataError(
            f"tier fractions {tuple(fractions)}",
            field="tiers",
            expected="(train, validation, test), non-negative, summing to 1",
        )
    ids = np.asarray(ids)
    uniq, inverse = np.unique(ids, return_inverse=True)
    n = len(uniq)
    raw = frac * n
    sizes = np.floor(raw).astype(int)
    for k in np.argsort(-(raw - sizes), kind="stable")[: n - sizes.sum()]:
        sizes[k] += 1
    for k in np.flatnonzero((frac > 0) & (sizes == 0)):
        donor = int(np.argmax(sizes))
        if sizes[donor] > 1:
            sizes[donor] -= 1
            sizes[k] += 1
    order = np.random.default_rng(seed).permutation(n)
    tier_of = np.empty(n, dtype="<U10")
    tier_of[order] = np.repeat(np.array(TIERS), sizes)
    return tier_of[inverse]


def _required_tiers(fractions) -> tuple[str, ...]:
    return tuple(t for t, f in zip(TIERS, fractions, strict=True) if f > 0)


def load_arrays(
    path: str | Path,
    *,
    counts: bool = False,
    require_tiers=TIERS,
    require_repeats: bool = True,
    name: str | None = None,
) -> xr.Dataset:
    """Load a dataset from a ``.npz`` file or a folder of ``.npy`` files.

    Args:
      path: ``x.npz`` with the arrays as keys, or a folder with ``images.npy``, ... .
      counts: responses are spike counts (must be non-negative).
      require_tiers: tiers that must have at least one trial.
      require_repeats: the test tier must contain repeated images.
      name: dataset name (default: the file name).

    Returns:
      The validated dataset (see :func:`jaxsel.data.validate`).

    Raises:
      DataError: missing file or array, or invalid content (naming the file and field).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(
            "not found", file=path, field="arrays", expected="a .npz file or a folder of .npy files"
        )
    arrays = {}
    if path.is_dir():
        for key in REQUIRED + OPTIONAL:
            f = path / f"{key}.npy"
            if f.exists():
                arrays[key] = _load_npy(f, key)
        missing_where = lambda key: path / f"{key}.npy"  # noqa: E731
    else:
        try:
            # np.load of an open file: a corrupt archive must not leak numpy's own handle
            with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files if k in REQUIRED + OPTIONAL}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
            raise DataError(
                f"not a readable .npz file ({type(err).__name__}: {err})",
                file=path,
                field="arrays",
                expected=_PLAIN,
            ) from None
        missing_where = lambda key: path  # noqa: E731
    for key in REQUIRED:
        if key not in arrays:
            raise DataError(
                "missing",
                file=missing_where(key),
                field=key,
                expected=f"arrays {', '.join(REQUIRED)}",
            )
    return make_dataset(
        arrays["images"],
        arrays["responses"],
        image_id=arrays["image_id"],
        tier=arrays["tier"],
        neuron_id=arrays.get("neuron_id"),
        area=arrays.get("area"),
        cortex_xyz=arrays.get("cortex_xyz"),
        name=name or path.stem,
        source=str(path),
        counts=counts,
        require_tiers=require_tiers,
        require_repeats=require_repeats,
    )


def _load_npy(f: Path, key: str) -> np.ndarray:
    try:
        return np.load(f, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(
            f"cannot read ({type(err).__name__}: {err})", file=f, field=key, expected=_PLAIN
        ) from None


def _cortex_xyz(ds: xr.Dataset) -> np.ndarray | None:
    axes = [f"cortex_{a}" for a in "xyz" if f"cortex_{a}" in ds.coords]
    if not axes:
        return None
    return np.stack([ds[a].values for a in axes], axis=1).astype(np.float32)


def plain_ids(values: np.ndarray) -> np.ndarray:
    """Ids as a NumPy array that ``np.save`` writes without pickling (objects → str)."""
    values = np.asarray(values)
    return values.astype(str) if values.dtype.kind == "O" else values


def save_arrays(ds: xr.Dataset, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a dataset as one ``.npz`` (readable by :func:`load_arrays`).

    The dataset is validated first; the file is written to a temporary sibling and renamed,
    so a failure leaves nothing behind.

    Args:
      ds: a dataset as made by :func:`jaxsel.data.make_dataset`.
      path: target file (``.npz`` is appended when missing).
      overwrite: replace an existing file.

    Returns:
      The path written.
    """
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    for key in ("images", "responses", "image_id", "tier", "neuron_id"):
        if key not in ds.variables:
            raise DataError("missing from the dataset", file=path, field=key)
    validate(ds, source=str(path), require_tiers=(), require_repeats=False)
    if path.exists() and not overwrite:
        raise DataError(
            "already exists", file=path, field="path", expected="a new path, or overwrite=True"
        )
    out = {
        "images": ds["images"].values.astype(np.float32),
        "responses": ds["responses"].values.astype(np.float32),
        "image_id": ds["image_id"].values,
        "tier": ds["tier"].values.astype(str),
        "neuron_id": plain_ids(ds["neuron_id"].values),
    }
    if "area" in ds.coords:
        out["area"] = ds["area"].values.astype(str)
    xyz = _cortex_xyz(ds)
    if xyz is not None:
        out["cortex_xyz"] = xyz
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as fh:
            np.savez(fh, **out)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


# ---------------------------------------------------------------- table form (seed 002)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _image_lookup(names: list[str]) -> tuple[dict, dict]:
    """Maps from file name/stem and from the stem's last integer to the image index."""
    by_name, by_int = {}, {}
    for i, n in enumerate(names):
        by_name[n] = i
        by_name.setdefault(Path(n).stem, i)
        digits = re.findall(r"\d+", Path(n).stem)
        if digits:
            by_int.setdefault(int(digits[-1]), []).append(i)
    return by_name, by_int


def load_table(
    csv_path: str | Path,
    image_dir: str | Path,
    *,
    image_size: Sequence[int] | None = (36, 64),
    crop: str = "center",
    tiers: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    exclude_columns: Sequence[str] = ("stimulus_presentation_id",),
    skip_ids: Sequence[int] = (-1,),
    name: str | None = None,
) -> xr.Dataset:
    """Load the seed-002 table form: a CSV of per-image responses plus an image folder.

    Each CSV row is one trial. The first column identifies the image: a frame number
    (``12`` or ``12.0``; matched to the file whose name's last number is 12, e.g.
    ``scene_012.png``) or a file name (with or without extension). The header of the other
    columns gives the neuron ids (integers when all are integers). Rows whose numeric id is
    in ``skip_ids`` (the Allen blank frame, -1) are dropped.

    Image ids are the frame numbers when every row id is a number, else the position of the
    matched file in the folder's natural order. Tiers come from :func:`split_tiers` over the
    image ids with ``tiers``/``seed``; the test tier need not contain repeats.

    Args:
      csv_path: the response table.
      image_dir: folder of PNG/JPEG/TIFF images.
      image_size: (height, width) images are resized to (None keeps the size).
      crop: ``"center"`` crops each image to the aspect of ``image_size`` before resizing
        (no stretching); ``"none"`` stretches it.
      tiers: (train, validation, test) fractions of the image ids.
      seed: seed of the tier split (the pipeline's ``data.split_seed``, not ``run.seed``).
      exclude_columns: non-neuron columns to ignore (seed 002 has a mean presentation id).
      skip_ids: row ids to drop.
      name: dataset name (default: the CSV file's stem).

    Returns:
      The validated dataset; ``attrs`` record ``crop`` and ``split_seed``.

    Raises:
      DataError: missing files, a non-numeric or non-finite cell (naming file, row and
        column), a row without a matching image, or invalid content.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError("file not found", file=csv_path, field="table")
    with open(csv_path, newline="") as fh:
        rows = [(i + 1, r) for i, r in enumerate(csv.reader(fh)) if any(c.strip() for c in r)]
    if len(rows) < 2:
        raise DataError(
            "no data rows",
            file=csv_path,
            field="table",
            expected="a header row and one row per image",
        )
    header = [c.strip() for c in rows[0][1]]
    keep = [j for j in range(1, len(header)) if header[j] not in set(exclude_columns)]
    if not keep:
        raise DataError(
            "no neuron columns",
            file=csv_path,
            field="header",
            expected="image id column followed by one column per neuron",
        )
    keys, values = [], []
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise DataError(
                f"row {line} has {len(row)} cells but the header has {len(header)}",
                file=csv_path,
                field=f"row {line}",
            )
        key = row[0].strip()
        num = _number(key)
        if num is not None and num.is_integer() and int(num) in set(skip_ids):
            continue
        vals = np.empty(len(keep), dtype=np.float64)
        for k, j in enumerate(keep):
            x = _number(row[j].strip())
            if x is None or not np.isfinite(x):
                what = "non-numeric" if x is None else "non-finite"
                raise DataError(
                    f"{what} cell {row[j]!r} in row {line}, column '{header[j]}'",
                    file=csv_path,
                    field=f"row {line}, column '{header[j]}'",
                    expected="finite numbers",
                )
            vals[k] = x
        keys.append((line, key, num))
        values.append(vals)
    if not keys:
        raise DataError("no data rows left after skipping blank ids", file=csv_path, field="table")
    images, names = load_image_folder(image_dir, image_size, crop)
    by_name, by_int = _image_lookup(names)
    numeric = all(num is not None and num.is_integer() for _, _, num in keys)
    idx: list[int] = []
    image_id: list[int] = []
    for line, key, num in keys:
        if numeric:
            hits = by_int.get(int(num), [])
            if len(hits) > 1:
                raise DataError(
                    f"row {line} id {key!r} matches several images {[names[h] for h in hits]}",
                    file=image_dir,
                    field=f"row {line}",
                )
            i = hits[0] if hits else by_name.get(key)
        else:
            i = by_name.get(key)
        if i is None:
            raise DataError(
                f"no image for row {line} id {key!r}",
                file=image_dir,
                field=f"row {line}",
                expected="an image file named by the id or ending in its number",
            )
        idx.append(i)
        image_id.append(int(num) if numeric else i)
    neuron_names = [header[j] for j in keep]
    neuron_id = (
        np.array([int(float(h)) for h in neuron_names])
        if all(_number(h) is not None and float(h).is_integer() for h in neuron_names)
        else np.array(neuron_names)
    )
    image_ids = np.asarray(image_id, dtype=np.int64)
    ds = make_dataset(
        images[np.asarray(idx)],
        np.stack(values),
        image_id=image_ids,
        tier=split_tiers(image_ids, tiers, seed),
        neuron_id=neuron_id,
        name=name or csv_path.stem,
        source=str(csv_path),
        require_tiers=_required_tiers(tiers),
        require_repeats=False,
    )
    ds.attrs.update(crop=crop, split_seed=int(seed))
    return ds
