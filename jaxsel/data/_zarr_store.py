"""Large arrays on disk as zarr v3 via tensorstore, with xarray names and coords.

A ``DataArray`` is stored with its dimension names in zarr's own ``dimension_names`` and its
name, coordinates and attributes as JSON in the array's attributes under ``"jaxsel"``
(numbers, strings, booleans and datetimes; non-finite floats as ``"NaN"``/``"Infinity"``
strings as in zarr's fill values). A plain array is stored without names and loads back as
a NumPy array. Stores are written to a temporary sibling folder and renamed at the end.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from jaxsel._atomic import atomic_directory
from jaxsel._errors import DataError

_KEY = "jaxsel"
_NONFINITE = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}


def _spec(path: Path, metadata: dict | None = None) -> dict:
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}}
    if metadata:
        spec["metadata"] = metadata
    return spec


def _encode_values(a: np.ndarray, where, field) -> tuple[str, list]:
    """(dtype string, JSON-safe nested list) for a coordinate or attribute array."""
    a = np.asarray(a)
    if a.dtype.kind in "Mm":
        return a.dtype.str, a.view(np.int64).tolist()
    if a.dtype.kind == "O":
        if all(isinstance(x, str) for x in a.ravel()):
            a = a.astype(str)
        else:
            types = sorted({type(x).__name__ for x in a.ravel()})
            raise DataError(
                f"object values of types {types}",
                file=where,
                field=field,
                expected="numbers, strings or datetimes",
            )
    if a.dtype.kind == "f":
        flat = [
            x
            if np.isfinite(x)
            else ("NaN" if np.isnan(x) else ("Infinity" if x > 0 else "-Infinity"))
            for x in a.ravel().tolist()
        ]
        return a.dtype.str, np.array(flat, dtype=object).reshape(a.shape).tolist()
    if a.dtype.kind in "biuUS":
        return a.dtype.str, (a.astype(str) if a.dtype.kind == "S" else a).tolist()
    raise DataError(
        f"values of dtype {a.dtype}",
        file=where,
        field=field,
        expected="numbers, strings or datetimes",
    )


def _decode_values(dtype: str, values) -> np.ndarray:
    dt = np.dtype(dtype)
    if dt.kind in "Mm":
        return np.asarray(values, dtype=np.int64).view(dt)
    if dt.kind == "f":

        def fix(x):
            return [fix(v) for v in x] if isinstance(x, list) else _NONFINITE.get(x, x)

        return np.asarray(fix(values), dtype=dt)
    return np.asarray(values, dtype=dt)


def _encode_attr(value, where, key):
    if isinstance(value, (np.ndarray, np.generic)):
        dtype, data = _encode_values(np.asarray(value), where, f"attrs['{key}']")
        return {"__ndarray__": data, "dtype": dtype, "shape": list(np.shape(value))}
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise DataError(
            f"attribute of type {type(value).__name__} is not JSON-serializable",
            file=where,
            field=f"attrs['{key}']",
            expected="JSON values or NumPy arrays",
        ) from None
    return value


def _decode_attr(value):
    if isinstance(value, dict) and "__ndarray__" in value:
        return _decode_values(value["dtype"], value["__ndarray__"]).reshape(value["shape"])
    return value


def save_zarr(
    array_or_dataarray,
    path: str | Path,
    *,
    chunks: Sequence[int] | Mapping[str, int] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write an array or ``xarray.DataArray`` as a zarr v3 store with tensorstore.

    Args:
      array_or_dataarray: NumPy/JAX array or DataArray (numeric or boolean dtype).
      path: the store folder to create.
      chunks: chunk shape, per axis or (DataArray) per dimension name (missing dims: whole
        axis); None lets tensorstore choose.
      overwrite: replace an existing store.

    Returns:
      The store path.

    Raises:
      DataError: unsupported dtype, coordinate or attribute; existing path; bad chunks.
    """
    import tensorstore as ts

    path = Path(path)
    da = array_or_dataarray if isinstance(array_or_dataarray, xr.DataArray) else None
    data = np.asarray(da.values if da is not None else array_or_dataarray)
    if data.dtype.kind not in "biufc":
        raise DataError(
            f"array of dtype {data.dtype}",
            file=path,
            field="data",
            expected="a numeric or boolean array",
        )
    metadata = {}
    if da is not None:
        coords = {}
        for k, c in da.coords.items():
            dtype, values = _encode_values(c.values, path, f"coords['{k}']")
            coords[str(k)] = {"dims": list(c.dims), "dtype": dtype, "values": values}
        metadata["dimension_names"] = [str(d) for d in da.dims]
        metadata["attributes"] = {
            _KEY: {
                "version": 1,
                "name": None if da.name is None else str(da.name),
                "coords": coords,
                "attrs": {str(k): _encode_attr(v, path, k) for k, v in da.attrs.items()},
            }
        }
    layout = None
    if chunks is not None:
        if isinstance(chunks, Mapping):
            if da is None:
                raise DataError(
                    "chunks by dimension name need a DataArray", file=path, field="chunks"
                )
            chunks = [int(chunks.get(str(d), n)) for d, n in zip(da.dims, data.shape, strict=True)]
        chunks = [int(c) for c in chunks]
        if len(chunks) != data.ndim or any(c < 1 for c in chunks):
            raise DataError(
                f"chunks {chunks} for shape {data.shape}",
                file=path,
                field="chunks",
                expected=f"{data.ndim} positive sizes",
            )
        layout = ts.ChunkLayout(
            chunk_shape=[min(c, max(n, 1)) for c, n in zip(chunks, data.shape, strict=True)]
        )
    with atomic_directory(path, overwrite=overwrite) as tmp:
        store = ts.open(
            _spec(tmp, metadata),
            create=True,
            dtype=ts.dtype(data.dtype.name),
            shape=list(data.shape),
            chunk_layout=layout,
        ).result()
        if data.size:
            store.write(data).result()
    return path


def _lazy(store, dims, coords, name, attrs) -> xr.DataArray:
    """A DataArray that reads from the store only when indexed or loaded."""
    from xarray.backends import BackendArray
    from xarray.core import indexing

    class TensorStoreArray(BackendArray):
        """xarray's backend-array protocol over a TensorStore (outer indexing)."""

        def __init__(self, store):
            self.store = store
            self.shape = tuple(int(n) for n in store.shape)
            self.dtype = np.dtype(store.dtype.numpy_dtype)

        def __getitem__(self, key):
            return indexing.explicit_indexing_adapter(
                key, self.shape, indexing.IndexingSupport.OUTER, self._outer
            )

        def _outer(self, key: tuple):
            return np.asarray(self.store.oindex[key].read().result())

    var = xr.Variable(tuple(dims), indexing.LazilyIndexedArray(TensorStoreArray(store)))
    return xr.DataArray(var, coords=coords, name=name, attrs=attrs)


def load_zarr(path: str | Path, *, lazy: bool = False):
    """Read a zarr v3 store written by :func:`save_zarr` (or any zarr v3 array).

    Args:
      path: the store folder.
      lazy: don't read the data now: a DataArray whose values are read on indexing (or the
        ``tensorstore.TensorStore`` for stores without dimension names).

    Returns:
      A DataArray with dims, coords, name and attrs when the store was written from a
      DataArray (or has dimension names), else a NumPy array.

    Raises:
      DataError: missing or unreadable store.
    """
    import tensorstore as ts

    path = Path(path)
    if not (path / "zarr.json").is_file():
        raise DataError("no zarr v3 array here (zarr.json missing)", file=path, field="store")
    try:
        store = ts.open(_spec(path), open=True).result()
    except ValueError as err:
        raise DataError(f"cannot open ({err})", file=path, field="store") from None
    meta = store.spec().to_json().get("metadata", {})
    dims = meta.get("dimension_names")
    info = meta.get("attributes", {}).get(_KEY)
    if info is None and (not dims or any(d is None for d in dims)):
        return store if lazy else np.asarray(store.read().result())
    info = info or {}
    dims = dims or [f"dim_{i}" for i in range(store.rank)]
    coords = {
        k: (tuple(c["dims"]), _decode_values(c["dtype"], c["values"]))
        for k, c in info.get("coords", {}).items()
    }
    attrs = {k: _decode_attr(v) for k, v in info.get("attrs", {}).items()}
    if lazy:
        return _lazy(store, dims, coords, info.get("name"), attrs)
    return xr.DataArray(
        np.asarray(store.read().result()),
        dims=tuple(dims),
        coords=coords,
        name=info.get("name"),
        attrs=attrs,
    )
