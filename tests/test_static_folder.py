"""Static (Sensorium / Lurz 2020) folder and zip: round trips and bad inputs."""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import jaxsel.data._static_folder as sf
from jaxsel._errors import DataError
from jaxsel.data._dataset import make_dataset
from jaxsel.data._static_folder import load_static
from jaxsel.data._static_save import save_static


def small_dataset(n_neuron=5, seed=0) -> xr.Dataset:
    """16 train + 4 validation single trials, 3 test images x 4 repeats; 8x12 images."""
    rng = np.random.default_rng(seed)
    image_id = np.concatenate([np.arange(20), np.repeat([100, 101, 102], 4)])
    tier = np.array(["train"] * 16 + ["validation"] * 4 + ["test"] * 12)
    order = rng.permutation(len(image_id))
    image_id, tier = image_id[order], tier[order]
    uniq = rng.normal(size=(103, 1, 8, 12)).astype(np.float32)
    responses = rng.poisson(2.0, size=(len(image_id), n_neuron)).astype(np.float32)
    return make_dataset(
        uniq[image_id],
        responses,
        image_id=image_id,
        tier=tier,
        neuron_id=np.arange(n_neuron) + 700,
        area=np.array(["V1", "LM", "V1", "AL", "V1"])[:n_neuron],
        cortex_xyz=rng.uniform(0, 500, size=(n_neuron, 3)),
    )


def same_content(a: xr.Dataset, b: xr.Dataset) -> None:
    xr.testing.assert_identical(a.drop_attrs(deep=False), b.drop_attrs(deep=False))


def tree(path: Path) -> dict:
    return {str(p.relative_to(path)): p.stat().st_mtime_ns for p in path.rglob("*")}


@pytest.fixture
def saved(tmp_path):
    ds = small_dataset()
    path = save_static(ds, tmp_path / "static")
    return ds, path


def test_round_trip_folder(saved):
    ds, path = saved
    assert np.load(path / "data/images/0.npy").shape == (1, 8, 12)
    assert np.load(path / "data/responses/31.npy").shape == (5,)
    assert (path / "meta/statistics/responses/all/std.npy").exists()
    before = tree(path)
    back = load_static(path)
    same_content(ds, back)
    assert back["images"].dtype == np.float32 and back["responses"].dtype == np.float32
    assert tree(path) == before  # loading writes nothing


def test_numeric_not_lexicographic_order(saved):
    ds, path = saved
    back = load_static(path)
    # trial 10 must come from 10.npy, not from the 3rd file in lexicographic order
    np.testing.assert_array_equal(
        back["responses"].values[10], np.load(path / "data/responses/10.npy")
    )
    np.testing.assert_array_equal(back["images"].values[2], ds["images"].values[2])


@pytest.mark.parametrize("inner", ["", "static_dir/"])
def test_round_trip_zip(saved, tmp_path, inner):
    ds, path = saved
    zpath = tmp_path / "static.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for p in sorted(path.rglob("*")):
            if p.is_file():
                zf.write(p, inner + str(p.relative_to(path)))
    listing = sorted(tmp_path.iterdir())
    same_content(ds, load_static(zpath))
    assert sorted(tmp_path.iterdir()) == listing  # nothing extracted


def test_zip_without_layout(tmp_path):
    zpath = tmp_path / "x.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("readme.txt", "nothing")
    with pytest.raises(DataError, match=r"x\.zip.*meta/trials/tiers"):
        load_static(zpath)


def test_neuron_selection(saved):
    ds, path = saved
    back = load_static(path, neurons=[703, 700])
    np.testing.assert_array_equal(back["neuron_id"].values, [703, 700])
    np.testing.assert_array_equal(back["responses"].values, ds["responses"].values[:, [3, 0]])
    with pytest.raises(DataError, match=r"unit_ids\.npy.*unit_ids.*999"):
        load_static(path, neurons=[999])


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match=r"nowhere.*field 'path'"):
        load_static(tmp_path / "nowhere")


def test_missing_meta_file(saved):
    _, path = saved
    (path / "meta/trials/frame_image_id.npy").unlink()
    with pytest.raises(DataError, match=r"frame_image_id\.npy.*field 'frame_image_id'.*not found"):
        load_static(path)


def test_gap_names_missing_index(saved):
    _, path = saved
    (path / "data/images/5.npy").unlink()
    with pytest.raises(DataError, match=r"data/images/5\.npy.*field 'images'.*5\.npy is missing"):
        load_static(path)


def test_image_count_differs_from_response_count(saved):
    _, path = saved
    (path / "data/responses/31.npy").unlink()
    with pytest.raises(DataError, match=r"field 'images/responses'.*32 image files but 31"):
        load_static(path)


def test_tiers_length_mismatch(saved):
    _, path = saved
    np.save(path / "meta/trials/tiers.npy", np.array(["train"] * 5))
    with pytest.raises(DataError, match=r"tiers\.npy.*field 'tiers'.*\(32,\)"):
        load_static(path)


def test_wrong_image_shape(saved):
    _, path = saved
    np.save(path / "data/images/7.npy", np.zeros((1, 9, 12), np.float32))
    with pytest.raises(DataError, match=r"data/images/7\.npy.*field 'images'.*\(1, 9, 12\)"):
        load_static(path)


def test_wrong_response_length(saved):
    _, path = saved
    np.save(path / "data/responses/4.npy", np.zeros(6, np.float32))
    with pytest.raises(DataError, match=r"data/responses/4\.npy.*field 'responses'"):
        load_static(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_response(saved, bad):
    _, path = saved
    r = np.load(path / "data/responses/3.npy")
    r[2] = bad
    np.save(path / "data/responses/3.npy", r)
    with pytest.raises(DataError, match=r"data/responses/3\.npy.*field 'responses'.*\[2\]"):
        load_static(path)


def test_missing_tier(saved):
    _, path = saved
    tiers = np.load(path / "meta/trials/tiers.npy")
    np.save(path / "meta/trials/tiers.npy", np.where(tiers == "validation", "train", tiers))
    with pytest.raises(DataError, match=re.escape(str(path)) + r".*field 'tier'.*'validation'"):
        load_static(path)
    assert load_static(path, require_tiers=("train", "test")).sizes["trial"] == 32


def test_unknown_tier(saved):
    _, path = saved
    tiers = np.load(path / "meta/trials/tiers.npy")
    tiers[0] = "holdout"
    np.save(path / "meta/trials/tiers.npy", tiers)
    with pytest.raises(DataError, match=r"tiers\.npy.*field 'tiers'.*holdout"):
        load_static(path)


def test_test_images_without_repeats(saved):
    _, path = saved
    ids = np.load(path / "meta/trials/frame_image_id.npy")
    tiers = np.load(path / "meta/trials/tiers.npy")
    ids[tiers == "test"] = np.arange(1000, 1000 + (tiers == "test").sum())
    np.save(path / "meta/trials/frame_image_id.npy", ids)
    match = re.escape(str(path)) + r".*field 'image_id \(tier 'test'\)'"
    with pytest.raises(DataError, match=match):
        load_static(path)
    assert load_static(path, require_repeats=False).sizes["trial"] == 32


def _final_test(path: Path, zero: bool = False) -> np.ndarray:
    tiers = np.load(path / "meta/trials/tiers.npy")
    ids = np.load(path / "meta/trials/frame_image_id.npy")
    final = (tiers == "test") & (ids == 102)
    tiers = tiers.astype("<U10")
    tiers[final] = "final_test"
    np.save(path / "meta/trials/tiers.npy", tiers)
    if zero:
        for i in np.flatnonzero(final):
            np.save(path / f"data/responses/{i}.npy", np.zeros(5, np.float32))
    return final


def test_final_test_merged_dropped_or_rejected(saved):
    ds, path = saved
    final = _final_test(path)
    merged = load_static(path)
    same_content(ds, merged)
    dropped = load_static(path, final_test="drop")
    assert dropped.sizes["trial"] == 32 - final.sum()
    assert 102 not in dropped["image_id"].values
    with pytest.raises(DataError, match=r"tiers\.npy.*field 'tiers'.*final_test"):
        load_static(path, final_test="error")


def test_final_test_withheld_zeros(saved):
    _, path = saved
    _final_test(path, zero=True)
    with pytest.raises(DataError, match=r"tiers\.npy.*withheld.*final_test='drop'"):
        load_static(path)
    assert load_static(path, final_test="drop").sizes["trial"] == 28


def test_pickled_meta_needs_allow_pickle(saved):
    _, path = saved
    tiers = np.load(path / "meta/trials/tiers.npy").astype(object)
    np.save(path / "meta/trials/tiers.npy", tiers, allow_pickle=True)
    with pytest.raises(DataError, match=r"tiers\.npy.*allow_pickle=True"):
        load_static(path)
    assert load_static(path, allow_pickle=True).sizes["trial"] == 32


def _siblings(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir())


def test_save_refuses_nonempty_folder(saved):
    ds, path = saved
    before = tree(path)
    with pytest.raises(DataError, match=r"static.*field 'path'.*not empty"):
        save_static(ds, path)
    assert tree(path) == before
    other = small_dataset(seed=1)
    save_static(other, path, overwrite=True)
    same_content(other, load_static(path))
    assert _siblings(path.parent) == ["static"]


def test_save_into_empty_folder(tmp_path):
    ds = small_dataset()
    (tmp_path / "empty").mkdir()
    save_static(ds, tmp_path / "empty")
    same_content(ds, load_static(tmp_path / "empty"))


def test_save_invalid_writes_nothing(tmp_path):
    ds = small_dataset()
    r = ds["responses"].values.copy()
    r[3, 1] = np.nan
    bad = ds.assign(responses=(("trial", "neuron"), r))
    with pytest.raises(DataError, match=r"out.*field 'responses'"):
        save_static(bad, tmp_path / "out")
    assert _siblings(tmp_path) == []


def test_failure_mid_write_leaves_nothing(tmp_path, monkeypatch):
    ds = small_dataset()
    calls = {"n": 0}
    real_save = np.save

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 10:
            raise OSError("disk full")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(sf.np, "save", flaky)
    with pytest.raises(OSError, match="disk full"):
        save_static(ds, tmp_path / "out")
    assert _siblings(tmp_path) == []
    # an existing dataset survives a failed overwrite untouched
    monkeypatch.setattr(sf.np, "save", real_save)
    save_static(ds, tmp_path / "out")
    before = tree(tmp_path / "out")
    calls["n"] = 0
    monkeypatch.setattr(sf.np, "save", flaky)
    with pytest.raises(OSError, match="disk full"):
        save_static(small_dataset(seed=2), tmp_path / "out", overwrite=True)
    assert tree(tmp_path / "out") == before and _siblings(tmp_path) == ["out"]


def test_loaded_dataset_is_independent_of_files(saved):
    ds, path = saved
    back = load_static(path)
    shutil.rmtree(path)
    same_content(ds, back)


def test_final_test_modes_and_their_record(saved):
    ds, path = saved
    final = _final_test(path)
    merged = load_static(path, final_test="merge")
    assert merged.attrs["final_test"] == "merge" and merged.attrs["n_final_test"] == final.sum()
    same_content(merged, load_static(path, final_test="test"))  # the old name still works
    assert load_static(path, final_test="drop").attrs["final_test"] == "drop"
    with pytest.raises(DataError, match=r"data\.final_test = 'merge'.*data\.final_test = 'drop'"):
        load_static(path, final_test="error")
    with pytest.raises(DataError, match=r"field 'final_test'.*data\.final_test.*final_test="):
        load_static(path, final_test="keep")
    assert load_static(save_static(ds, path.parent / "plain")).attrs["n_final_test"] == 0


def test_require_repeats_hint_names_the_config_key(saved):
    _, path = saved
    ids = np.load(path / "meta/trials/frame_image_id.npy")
    tiers = np.load(path / "meta/trials/tiers.npy")
    ids[tiers == "test"] = 500 + np.arange((tiers == "test").sum())
    np.save(path / "meta/trials/frame_image_id.npy", ids)
    with pytest.raises(DataError, match=r"data\.require_repeats = false.*require_repeats=False"):
        load_static(path)


# ---------------------------------------------------- behaviour, pupil centre, trial index


def with_behavior(ds: xr.Dataset, seed=1) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    n = ds.sizes["trial"]
    return ds.assign(
        behavior=(("trial", "behavior_var"), rng.normal(size=(n, 3)).astype(np.float32)),
        pupil_center=(("trial", "xy"), rng.uniform(0, 100, (n, 2)).astype(np.float32)),
        trial_idx=("trial", rng.permutation(n).astype(np.int64) + 1000),
    )


def test_behavior_round_trip(tmp_path):
    ds = with_behavior(small_dataset())
    path = save_static(ds, tmp_path / "static")
    assert np.load(path / "data/behavior/3.npy").shape == (3,)
    assert np.load(path / "data/pupil_center/3.npy").shape == (2,)
    assert np.load(path / "meta/trials/trial_idx.npy").shape == (32,)
    back = load_static(path)
    assert back["behavior"].dims == ("trial", "behavior_var")
    assert list(back["behavior_var"].values) == ["pupil", "dpupil", "running"]
    assert back["pupil_center"].dims == ("trial", "xy")
    for k in ("behavior", "pupil_center", "trial_idx"):
        np.testing.assert_array_equal(back[k].values, ds[k].values)
    # the variables follow trial selections (final_test dropped, tiers subset)
    final = _final_test(path)
    dropped = load_static(path, final_test="drop")
    np.testing.assert_array_equal(dropped["trial_idx"].values, ds["trial_idx"].values[~final])
    np.testing.assert_array_equal(dropped["behavior"].values, ds["behavior"].values[~final])
    # a folder without them loads without them
    plain = load_static(save_static(small_dataset(), tmp_path / "plain"))
    assert not {"behavior", "pupil_center", "trial_idx"} & set(plain.variables)


def test_behavior_bad_files_are_named(tmp_path):
    path = save_static(with_behavior(small_dataset()), tmp_path / "static")
    np.save(path / "data/behavior/7.npy", np.zeros(4, np.float32))
    with pytest.raises(DataError, match=r"behavior/7\.npy.*field 'behavior'.*\(4,\).*\(3,\)"):
        load_static(path)
    np.save(path / "data/behavior/7.npy", np.zeros(3, np.float32))
    (path / "data/pupil_center/31.npy").unlink()
    with pytest.raises(DataError, match=r"pupil_center.*31 files for 32 trials"):
        load_static(path)
    np.save(path / "data/pupil_center/31.npy", np.array([np.nan, 1.0], np.float32))
    with pytest.raises(DataError, match=r"field 'pupil_center'.*non-finite.*trial 31"):
        load_static(path)
    np.save(path / "data/pupil_center/31.npy", np.ones(2, np.float32))
    np.save(path / "meta/trials/trial_idx.npy", np.arange(5))
    with pytest.raises(DataError, match=r"trial_idx\.npy.*field 'trial_idx'.*\(32,\)"):
        load_static(path)
    np.save(path / "meta/trials/trial_idx.npy", np.arange(32) + 0.5)
    with pytest.raises(DataError, match=r"trial_idx\.npy.*integers"):
        load_static(path)
    np.save(path / "meta/trials/trial_idx.npy", np.arange(32.0))  # integral floats are fine
    assert load_static(path)["trial_idx"].dtype == np.int64


def test_behavior_in_zip(tmp_path):
    ds = with_behavior(small_dataset())
    path = save_static(ds, tmp_path / "static")
    z = shutil.make_archive(str(tmp_path / "static"), "zip", path)
    back = load_static(z)
    np.testing.assert_array_equal(back["behavior"].values, ds["behavior"].values)


def test_static_options_from_the_config(tmp_path):
    from jaxsel.pipeline import config_from_dict
    from jaxsel.pipeline._context import load_dataset

    path = save_static(small_dataset(), tmp_path / "static")
    _final_test(path)

    def cfg(**data):
        return config_from_dict({"data": {"source": "static", "path": str(path), **data}})

    assert load_dataset(cfg(), tmp_path).attrs["final_test"] == "merge"
    assert load_dataset(cfg(final_test="drop"), tmp_path).sizes["trial"] == 28
    with pytest.raises(DataError, match=r"data\.final_test"):
        load_dataset(cfg(final_test="error"), tmp_path)
