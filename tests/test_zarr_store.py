"""zarr v3 via tensorstore: DataArray round trips with dims/coords, laziness, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from jaxsel._errors import DataError
from jaxsel.data._zarr_store import load_zarr, save_zarr


def labelled() -> xr.DataArray:
    rng = np.random.default_rng(0)
    return xr.DataArray(
        rng.normal(size=(2, 3, 5)).astype(np.float32),
        dims=("model", "stimulus", "neuron"),
        coords={
            "neuron": np.arange(5) * 10 + 3,
            "area": ("neuron", np.array(["V1", "LM", "V1", "AL", "V1"])),
            "contrast": ("stimulus", np.array([0.5, np.nan, np.inf])),
            "seed": ("model", np.array([0, 1], dtype=np.int32)),
            "when": ("model", np.array(["2024-01-01", "2025-06-30"], dtype="datetime64[ns]")),
        },
        name="responses",
        attrs={"units": "spikes", "gain": np.arange(3.0), "n": 4},
    )


def siblings(parent):
    return sorted(p.name for p in parent.iterdir())


def test_dataarray_round_trip(tmp_path):
    da = labelled()
    save_zarr(da, tmp_path / "r.zarr")
    back = load_zarr(tmp_path / "r.zarr")
    assert isinstance(back, xr.DataArray)
    xr.testing.assert_identical(back, da)
    np.testing.assert_array_equal(back.attrs["gain"], da.attrs["gain"])
    assert back.dtype == np.float32 and back["seed"].dtype == np.int32
    meta = json.loads((tmp_path / "r.zarr" / "zarr.json").read_text())
    assert meta["dimension_names"] == ["model", "stimulus", "neuron"]
    assert siblings(tmp_path) == ["r.zarr"]


@pytest.mark.parametrize("dtype", [np.float64, np.int16, np.uint8, bool, np.complex64])
def test_plain_array_round_trip(tmp_path, dtype):
    a = (np.arange(24).reshape(4, 6) % 3).astype(dtype)
    save_zarr(a, tmp_path / "a")
    back = load_zarr(tmp_path / "a")
    assert isinstance(back, np.ndarray) and back.dtype == a.dtype
    np.testing.assert_array_equal(back, a)


def test_empty_and_scalar(tmp_path):
    save_zarr(np.zeros((0, 3), np.float32), tmp_path / "e")
    assert load_zarr(tmp_path / "e").shape == (0, 3)
    scalar = xr.DataArray(np.float32(2.5), name="x", attrs={"unit": "Hz"})
    save_zarr(scalar, tmp_path / "s")
    xr.testing.assert_identical(load_zarr(tmp_path / "s"), scalar)
    lazy_scalar = load_zarr(tmp_path / "s", lazy=True)
    assert isinstance(lazy_scalar, xr.DataArray)
    xr.testing.assert_identical(lazy_scalar.load(), scalar)


def test_chunks(tmp_path):
    da = labelled()
    save_zarr(da, tmp_path / "c", chunks={"neuron": 2})
    meta = json.loads((tmp_path / "c" / "zarr.json").read_text())
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [2, 3, 2]
    save_zarr(da.values, tmp_path / "d", chunks=(1, 1, 5))
    meta = json.loads((tmp_path / "d" / "zarr.json").read_text())
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [1, 1, 5]
    np.testing.assert_array_equal(load_zarr(tmp_path / "d"), da.values)
    with pytest.raises(DataError, match=r"bad.*field 'chunks'"):
        save_zarr(da, tmp_path / "bad", chunks=(1, 2))
    assert "bad" not in siblings(tmp_path)


def test_lazy(tmp_path):
    import tensorstore as ts

    da = labelled()
    save_zarr(da, tmp_path / "r")
    lazy = load_zarr(tmp_path / "r", lazy=True)
    assert isinstance(lazy, xr.DataArray)
    assert not isinstance(lazy.variable._data, np.ndarray)  # nothing read yet
    sel = lazy.isel(neuron=[4, 1], stimulus=slice(0, 3, 2))
    xr.testing.assert_identical(sel.load(), da.isel(neuron=[4, 1], stimulus=slice(0, 3, 2)))
    xr.testing.assert_identical(lazy.sel(neuron=13).load(), da.sel(neuron=13))
    store = load_zarr(save_zarr(np.arange(6.0), tmp_path / "p"), lazy=True)
    assert isinstance(store, ts.TensorStore)  # no dimension names: the store itself
    np.testing.assert_array_equal(store[2:4].read().result(), [2.0, 3.0])


def test_jax_array(tmp_path):
    import jax.numpy as jnp

    save_zarr(jnp.arange(4.0), tmp_path / "j")
    np.testing.assert_array_equal(load_zarr(tmp_path / "j"), np.arange(4.0, dtype=np.float32))


def test_refuses_existing_unless_overwrite(tmp_path):
    save_zarr(np.ones(3), tmp_path / "a")
    with pytest.raises(DataError, match=r"a.*field 'path'.*not empty"):
        save_zarr(np.zeros(3), tmp_path / "a")
    np.testing.assert_array_equal(load_zarr(tmp_path / "a"), np.ones(3))
    save_zarr(np.zeros(4), tmp_path / "a", overwrite=True)
    np.testing.assert_array_equal(load_zarr(tmp_path / "a"), np.zeros(4))
    assert siblings(tmp_path) == ["a"]


def test_unsupported_content_writes_nothing(tmp_path):
    with pytest.raises(DataError, match=r"s.*field 'data'.*dtype"):
        save_zarr(np.array(["a", "b"]), tmp_path / "s")
    da = labelled().assign_attrs(bad=object())
    with pytest.raises(DataError, match=r"o.*field 'attrs\['bad'\]'"):
        save_zarr(da, tmp_path / "o")
    da = labelled().assign_coords(obj=("neuron", np.array([1, "x", 2.0, None, 3], object)))
    with pytest.raises(DataError, match=r"q.*field 'coords\['obj'\]'"):
        save_zarr(da, tmp_path / "q")
    assert siblings(tmp_path) == []


def test_missing_store(tmp_path):
    with pytest.raises(DataError, match=r"nothing.*field 'store'.*zarr\.json"):
        load_zarr(tmp_path / "nothing")
