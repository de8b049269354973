"""Array files (.npz / .npy folder), the seed-002 table form, and image folders."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from PIL import Image

from jaxsel._errors import DataError
from jaxsel.data._arrays import load_arrays, load_table, save_arrays, split_tiers
from jaxsel.data._dataset import make_dataset
from jaxsel.data._image_folder import load_image_folder, load_images, read_image


def arrays(seed=0, n_neuron=4) -> dict:
    rng = np.random.default_rng(seed)
    image_id = np.concatenate([np.arange(14), np.repeat([50, 51], 3)])
    tier = np.array(["train"] * 10 + ["validation"] * 4 + ["test"] * 6)
    return {
        "images": rng.normal(size=(20, 8, 12)).astype(np.float32),
        "responses": rng.poisson(3.0, size=(20, n_neuron)).astype(np.float32),
        "image_id": image_id,
        "tier": tier,
        "neuron_id": np.arange(n_neuron) * 3,
        "area": np.array(["VISp", "VISam", "VISp", "VISl"])[:n_neuron],
    }


def same_content(a: xr.Dataset, b: xr.Dataset) -> None:
    xr.testing.assert_identical(a.drop_attrs(deep=False), b.drop_attrs(deep=False))


# ------------------------------------------------------------------ arrays


def test_npz_round_trip(tmp_path):
    a = arrays()
    ds = make_dataset(
        a["images"],
        a["responses"],
        image_id=a["image_id"],
        tier=a["tier"],
        neuron_id=a["neuron_id"],
        area=a["area"],
        cortex_xyz=np.arange(8.0).reshape(4, 2),
    )
    path = save_arrays(ds, tmp_path / "d")
    assert path.name == "d.npz"
    same_content(ds, load_arrays(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz"]


def test_npy_folder(tmp_path):
    a = arrays()
    for k, v in a.items():
        np.save(tmp_path / f"{k}.npy", v)
    ds = load_arrays(tmp_path)
    np.testing.assert_array_equal(ds["images"].values[:, 0], a["images"])
    np.testing.assert_array_equal(ds["responses"].values, a["responses"])
    np.testing.assert_array_equal(ds["image_id"].values, a["image_id"])
    np.testing.assert_array_equal(ds["tier"].values, a["tier"])
    np.testing.assert_array_equal(ds["area"].values, a["area"])


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"none\.npz.*field 'arrays'.*not found"):
        load_arrays(tmp_path / "none.npz")


def test_missing_key(tmp_path):
    a = arrays()
    del a["tier"]
    np.savez(tmp_path / "d.npz", **a)
    with pytest.raises(DataError, match=r"d\.npz.*field 'tier'.*missing"):
        load_arrays(tmp_path / "d.npz")
    for k, v in a.items():
        np.save(tmp_path / f"{k}.npy", v)
    with pytest.raises(DataError, match=r"tier\.npy.*field 'tier'"):
        load_arrays(tmp_path)


def test_image_count_differs_from_response_count(tmp_path):
    a = arrays()
    a["images"] = a["images"][:-1]
    np.savez(tmp_path / "d.npz", **a)
    with pytest.raises(DataError, match=r"d\.npz.*field 'images/responses'.*19 image trials"):
        load_arrays(tmp_path / "d.npz")


@pytest.mark.parametrize("bad", [np.nan, -np.inf])
def test_nonfinite_responses(tmp_path, bad):
    a = arrays()
    a["responses"][5, 2] = bad
    np.savez(tmp_path / "d.npz", **a)
    with pytest.raises(DataError, match=r"d\.npz.*field 'responses'.*trial 5.*neuron 2"):
        load_arrays(tmp_path / "d.npz")


def test_negative_counts(tmp_path):
    a = arrays()
    a["responses"][3, 1] = -1
    np.savez(tmp_path / "d.npz", **a)
    load_arrays(tmp_path / "d.npz")  # fine for non-count responses
    with pytest.raises(DataError, match=r"d\.npz.*field 'responses'.*negative spike count"):
        load_arrays(tmp_path / "d.npz", counts=True)


def test_missing_tier_and_repeats(tmp_path):
    a = arrays()
    a["tier"] = np.where(a["tier"] == "validation", "train", a["tier"])
    np.savez(tmp_path / "d.npz", **a)
    with pytest.raises(DataError, match=r"d\.npz.*field 'tier'.*'validation'"):
        load_arrays(tmp_path / "d.npz")
    a = arrays()
    a["image_id"] = np.arange(20)
    np.savez(tmp_path / "e.npz", **a)
    with pytest.raises(DataError, match=r"e\.npz.*field 'image_id \(tier 'test'\)'"):
        load_arrays(tmp_path / "e.npz")
    assert load_arrays(tmp_path / "e.npz", require_repeats=False).sizes["trial"] == 20


def test_save_refuses_existing_and_invalid(tmp_path):
    a = arrays()
    ds = make_dataset(a["images"], a["responses"], image_id=a["image_id"], tier=a["tier"])
    path = save_arrays(ds, tmp_path / "d.npz")
    stamp = path.stat().st_mtime_ns
    with pytest.raises(DataError, match=r"d\.npz.*field 'path'.*already exists"):
        save_arrays(ds, path)
    assert path.stat().st_mtime_ns == stamp
    r = ds["responses"].values.copy()
    r[0, 0] = np.inf
    with pytest.raises(DataError, match=r"x\.npz.*field 'responses'"):
        save_arrays(ds.assign(responses=(("trial", "neuron"), r)), tmp_path / "x.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz"]


def test_split_tiers_deterministic_and_grouped():
    ids = np.repeat(np.arange(30), 3)
    t1, t2 = split_tiers(ids, (0.6, 0.2, 0.2), seed=3), split_tiers(ids, (0.6, 0.2, 0.2), seed=3)
    np.testing.assert_array_equal(t1, t2)
    for i in range(30):
        assert len(set(t1[ids == i])) == 1
    counts = {t: len(set(ids[t1 == t])) for t in ("train", "validation", "test")}
    assert counts == {"train": 18, "validation": 6, "test": 6}
    assert set(split_tiers(np.arange(3), (0.98, 0.01, 0.01))) == {"train", "validation", "test"}
    with pytest.raises(DataError, match="field 'tiers'"):
        split_tiers(ids, (0.5, 0.2, 0.2))


# ------------------------------------------------------------------ image folders


def write_pngs(folder: Path, images: Iterable[np.ndarray], names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for im, name in zip(images, names, strict=True):
        Image.fromarray(im).save(folder / name)


def test_image_folder_natural_order_and_formats(tmp_path):
    rng = np.random.default_rng(0)
    ims = rng.integers(0, 256, size=(11, 8, 12), dtype=np.uint8)
    names = [f"img{i}.png" for i in range(11)]
    write_pngs(tmp_path, ims, names)
    (tmp_path / ".hidden.png").write_bytes(b"junk")
    (tmp_path / "notes.txt").write_text("not an image")
    out, got = load_image_folder(tmp_path, size=None)
    assert got == names  # img10 after img9
    assert out.shape == (11, 1, 8, 12) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, 0], ims.astype(np.float32))
    small, _ = load_image_folder(tmp_path, size=(4, 6))
    assert small.shape == (11, 1, 4, 6)


def test_image_formats_gray(tmp_path):
    rgb = np.zeros((8, 12, 3), np.uint8)
    rgb[..., 1] = 200
    Image.fromarray(rgb).save(tmp_path / "a.jpg", quality=100)
    Image.fromarray(np.full((8, 12), 1000, np.uint16)).save(tmp_path / "b.tif")
    a = read_image(tmp_path / "a.jpg")
    assert a.shape == (8, 12) and abs(a.mean() - 0.587 * 200) < 3
    np.testing.assert_array_equal(read_image(tmp_path / "b.tif"), 1000.0)


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match=r"nope.*field 'images'.*not found"):
        load_image_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty.*field 'images'.*no image files"):
        load_image_folder(tmp_path / "empty")
    write_pngs(
        tmp_path / "mixed",
        [np.zeros((8, 12), np.uint8), np.zeros((9, 12), np.uint8)],
        ["0.png", "1.png"],
    )
    with pytest.raises(DataError, match=r"1\.png.*field 'image'.*one size"):
        load_image_folder(tmp_path / "mixed", size=None)
    assert load_image_folder(tmp_path / "mixed")[0].shape == (2, 1, 36, 64)
    (tmp_path / "mixed" / "2.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"2\.png.*field 'image'.*not a readable image"):
        load_image_folder(tmp_path / "mixed")


def test_load_images_arrays_and_files(tmp_path):
    a = np.arange(2 * 8 * 12, dtype=np.float64).reshape(2, 8, 12)
    out = load_images(a)
    assert out.shape == (2, 1, 8, 12) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, 0], a)
    assert load_images(a[0]).shape == (1, 1, 8, 12)
    assert load_images(a, size=(4, 6)).shape == (2, 1, 4, 6)
    np.save(tmp_path / "m.npy", a)
    np.savez(tmp_path / "m.npz", images=a, other=a)
    np.testing.assert_array_equal(load_images(tmp_path / "m.npy"), out)
    np.testing.assert_array_equal(load_images(tmp_path / "m.npz"), out)
    # constant images stay constant under resizing
    np.testing.assert_allclose(load_images(np.full((1, 8, 12), 7.0), size=(5, 5)), 7.0)
    with pytest.raises(DataError, match=r"field 'images'.*shape"):
        load_images(np.zeros((1, 1, 1, 4, 4)))
    with pytest.raises(DataError, match=r"field 'images'.*non-finite"):
        load_images(np.full((2, 4, 4), np.nan))
    with pytest.raises(DataError, match=r"gone\.npy.*field 'images'"):
        load_images(tmp_path / "gone.npy")


# ------------------------------------------------------------------ table form


def write_table(tmp_path: Path, n_img=20, n_neuron=4, blank=True, presentation=True):
    rng = np.random.default_rng(1)
    ims = rng.integers(0, 256, size=(n_img, 8, 12), dtype=np.uint8)
    write_pngs(tmp_path / "scenes", ims, [f"scene_{i:03d}.png" for i in range(n_img)])
    resp = np.round(rng.uniform(0, 9, size=(n_img, n_neuron)), 2)
    ids = [951092050 + 25 * j for j in range(n_neuron)]
    header = (
        ["frame"] + (["stimulus_presentation_id"] if presentation else []) + [str(i) for i in ids]
    )
    lines = [",".join(header)]
    if blank:
        lines.append(
            ",".join(["-1.0"] + (["60469.3"] if presentation else []) + ["1.0"] * n_neuron)
        )
    order = rng.permutation(n_img)
    for i in order:
        lines.append(
            ",".join(
                [f"{i}.0"]
                + (["58409.4"] if presentation else [])
                + [repr(float(x)) for x in resp[i]]
            )
        )
    csv = tmp_path / "table.csv"
    csv.write_text("\n".join(lines) + "\n")
    return csv, ims, resp, np.array(ids), order


def test_table_round_trip(tmp_path):
    csv, ims, resp, ids, order = write_table(tmp_path)
    ds = load_table(csv, tmp_path / "scenes", image_size=None, tiers=(0.6, 0.2, 0.2), seed=4)
    assert ds.sizes["trial"] == 20  # blank row dropped
    np.testing.assert_array_equal(ds["image_id"].values, order)
    np.testing.assert_array_equal(ds["neuron_id"].values, ids)  # presentation id excluded
    np.testing.assert_array_equal(ds["responses"].values, resp[order].astype(np.float32))
    np.testing.assert_array_equal(ds["images"].values[:, 0], ims[order].astype(np.float32))
    np.testing.assert_array_equal(ds["tier"].values, split_tiers(order, (0.6, 0.2, 0.2), 4))
    assert {t: (ds["tier"].values == t).sum() for t in ("train", "validation", "test")} == {
        "train": 12,
        "validation": 4,
        "test": 4,
    }
    again = load_table(csv, tmp_path / "scenes", image_size=None, tiers=(0.6, 0.2, 0.2), seed=4)
    same_content(ds, again)
    assert load_table(csv, tmp_path / "scenes").sizes["y"] == 36


def test_table_file_name_keys(tmp_path):
    _, ims, _, _, _ = write_table(tmp_path)
    csv = tmp_path / "by_name.csv"
    csv.write_text("image,n1,n2\nscene_003.png,1,2\nscene_001,3,4\nscene_010.png,5,6\n")
    ds = load_table(csv, tmp_path / "scenes", image_size=None, tiers=(1, 0, 0))
    np.testing.assert_array_equal(ds["image_id"].values, [3, 1, 10])  # folder positions
    np.testing.assert_array_equal(ds["neuron_id"].values, ["n1", "n2"])
    np.testing.assert_array_equal(ds["images"].values[:, 0], ims[[3, 1, 10]].astype(np.float32))


def test_table_non_numeric_cell(tmp_path):
    csv, *_ = write_table(tmp_path)
    lines = csv.read_text().splitlines()
    cells = lines[4].split(",")
    cells[3] = "abc"
    lines[4] = ",".join(cells)
    csv.write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"table\.csv.*row 5, column '951092075'.*'abc'"):
        load_table(csv, tmp_path / "scenes")


def test_table_nan_cell(tmp_path):
    csv, *_ = write_table(tmp_path)
    text = csv.read_text().splitlines()
    cells = text[2].split(",")
    cells[-1] = "nan"
    text[2] = ",".join(cells)
    csv.write_text("\n".join(text))
    with pytest.raises(DataError, match=r"table\.csv.*row 3, column '951092125'.*non-finite"):
        load_table(csv, tmp_path / "scenes")


def test_table_missing_things(tmp_path):
    csv, *_ = write_table(tmp_path)
    with pytest.raises(DataError, match=r"nope\.csv.*field 'table'.*not found"):
        load_table(tmp_path / "nope.csv", tmp_path / "scenes")
    with pytest.raises(DataError, match=r"noimg.*field 'images'.*not found"):
        load_table(csv, tmp_path / "noimg")
    (tmp_path / "scenes" / "scene_007.png").unlink()
    with pytest.raises(DataError, match=re.escape("scenes") + r".*no image for row \d+ id '7\.0'"):
        load_table(csv, tmp_path / "scenes")


def test_table_missing_tier(tmp_path):
    csv, *_ = write_table(tmp_path, blank=False, presentation=False)
    lines = csv.read_text().splitlines()[:3]  # header + 2 images cannot fill three tiers
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"table\.csv.*field 'tier'.*no trials in tier 'test'"):
        load_table(csv, tmp_path / "scenes", tiers=(0.8, 0.1, 0.1))
    assert load_table(csv, tmp_path / "scenes", tiers=(0.5, 0.5, 0)).sizes["trial"] == 2


def test_table_short_row(tmp_path):
    csv, *_ = write_table(tmp_path, blank=False, presentation=False)
    csv.write_text(csv.read_text() + "3.0,1,2\n")
    with pytest.raises(DataError, match=r"table\.csv.*field 'row 22'.*3 cells"):
        load_table(csv, tmp_path / "scenes")


def test_table_crop_and_split_seed(tmp_path):
    csv, ims, _, _, order = write_table(tmp_path)
    # 8 x 12 images (aspect 0.67) to 6 x 12 (aspect 0.5): the crop keeps the centred 6 rows
    cropped = load_table(csv, tmp_path / "scenes", image_size=(6, 12))
    assert cropped.attrs["crop"] == "center"
    np.testing.assert_allclose(
        cropped["images"].values[:, 0], ims[order, 1:7].astype(np.float32), atol=1e-3
    )
    stretched = load_table(csv, tmp_path / "scenes", image_size=(6, 12), crop="none")
    assert stretched.attrs["crop"] == "none"
    assert not np.allclose(stretched["images"].values, cropped["images"].values)
    with pytest.raises(DataError, match=r"field 'crop'.*data\.crop"):
        load_table(csv, tmp_path / "scenes", crop="fit")
    # the pipeline splits with data.split_seed, whatever run.seed is
    from jaxsel.pipeline import config_from_dict
    from jaxsel.pipeline._context import load_dataset

    def cfg(run=None, data=None):
        base = {"source": "table", "path": str(csv), "images": str(tmp_path / "scenes")}
        return config_from_dict({"data": {**base, **(data or {})}, "run": run or {}})

    a = load_dataset(cfg(run={"seed": 0}), tmp_path)
    b = load_dataset(cfg(run={"seed": 9}), tmp_path)
    np.testing.assert_array_equal(a["tier"].values, b["tier"].values)
    c = load_dataset(cfg(data={"split_seed": 3}), tmp_path)
    np.testing.assert_array_equal(c["tier"].values, split_tiers(order, (0.7, 0.1, 0.2), 3))
    assert c.attrs["split_seed"] == 3 and a.attrs["split_seed"] == 0
