"""Allen Neuropixels NWB (h5py): counts against a double-loop reference, and bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from jaxsel._errors import DataError
from jaxsel.data._allen_nwb import count_spikes, load_allen_nwb
from jaxsel.data._arrays import split_tiers

N_SCENES, N_REPEATS, N_UNITS = 10, 4, 7
UNIT_IDS = np.arange(N_UNITS) + 950_000
AREAS = np.array(["VISam", "VISp", "VISam", "VISam", "CA1", "VISam", "VISam"])
QC = {  # unit 2 fails isi, unit 3 fails amplitude_cutoff, unit 5 has NaN presence
    "isi_violations": np.array([0.1, 0.0, 0.9, 0.2, 0.1, 0.0, 0.5]),
    "amplitude_cutoff": np.array([0.05, 0.0, 0.01, 0.3, 0.0, 0.01, 0.1]),
    "presence_ratio": np.array([0.95, 0.99, 0.99, 0.99, 0.99, np.nan, 0.9]),
    "snr": np.array([3.0, 2.0, 1.0, 4.0, 5.0, 6.0, 1.5]),
}
QUALITY = np.array(["good", "good", "noise", "good", "good", "good", "good"])
SCENES = np.random.default_rng(7).uniform(0, 255, size=(N_SCENES, 8, 12)).astype(np.float32)


def make_session(seed=0, frames=None):
    """Presentations (start, stop, frame incl. blanks) and per-unit sorted spike times."""
    rng = np.random.default_rng(seed)
    if frames is None:
        frames = np.concatenate([np.repeat(np.arange(N_SCENES), N_REPEATS), [-1] * 6])
    frames = rng.permutation(frames)
    start = 10.0 + 0.3 * np.arange(len(frames))
    stop = start + 0.25
    spikes = []
    for _u in range(N_UNITS):
        s = rng.uniform(9.0, start[-1] + 1.0, size=rng.integers(40, 120))
        s = np.concatenate([s, start[:3] + 0.05, start[3:5] + 0.25])  # on window edges
        spikes.append(np.sort(s))
    spikes[4] = np.array([])  # a silent unit
    return start, stop, frames, spikes


def write_nwb(
    path: Path, session, *, area_mode="column", qc_columns=QC, presentations=True, shuffle_unit=None
):
    start, stop, frames, spikes = session
    with h5py.File(path, "w") as f:
        f.attrs["neurodata_type"] = "NWBFile"
        u = f.create_group("units")
        u["id"] = UNIT_IDS
        flat = [s.copy() for s in spikes]
        if shuffle_unit is not None:
            np.random.default_rng(1).shuffle(flat[shuffle_unit])
        u["spike_times"] = np.concatenate(flat)
        u["spike_times_index"] = np.cumsum([len(s) for s in spikes]).astype(np.uint64)
        for k, v in qc_columns.items():
            u[k] = v
        u.create_dataset("quality", data=QUALITY.astype(object), dtype=h5py.string_dtype())
        el_loc = np.array(["VISp", "CA1", "VISam", "LP"])
        if area_mode == "column":
            u.create_dataset(
                "ecephys_structure_acronym", data=AREAS.astype(object), dtype=h5py.string_dtype()
            )
        elif area_mode != "none":
            e = f.create_group("general/extracellular_ephys/electrodes")
            e["id"] = np.array([850, 851, 852, 853])
            e.create_dataset("location", data=el_loc.astype(object), dtype=h5py.string_dtype())
            rows = np.array([int(np.flatnonzero(el_loc == a)[0]) for a in AREAS])
            if area_mode == "electrodes":
                u["electrodes"] = rows
            elif area_mode == "ragged":  # two electrodes per unit, the first one counts
                u["electrodes"] = np.stack([rows, (rows + 1) % 4], 1).ravel()
                u["electrodes_index"] = np.arange(1, N_UNITS + 1) * 2
            elif area_mode == "peak":
                u["peak_channel_id"] = 850 + rows
        if presentations:
            g = f.create_group("intervals/natural_scenes_presentations")
            g["start_time"], g["stop_time"] = start, stop
            g["frame"] = frames.astype(np.float64)
        f.create_group("intervals/static_gratings_presentations")["start_time"] = [1.0]
    return path


def reference_counts(start, spikes, t0, t1, units):
    out = np.zeros((len(start), len(units)), dtype=np.int64)
    for p in range(len(start)):
        for j, u in enumerate(units):
            for s in spikes[u]:
                if start[p] + t0 <= s <= start[p] + t1:
                    out[p, j] += 1
    return out


@pytest.mark.parametrize("area_mode", ["column", "electrodes", "ragged", "peak"])
def test_counts_match_double_loop(tmp_path, area_mode):
    session = make_session()
    start, _, frames, spikes = session
    path = write_nwb(tmp_path / "s.nwb", session, area_mode=area_mode)
    ds = load_allen_nwb(path, SCENES, image_size=None)
    units = [0, 6]  # VISam and passing the Allen QC defaults (inclusive bounds)
    keep = frames >= 0
    ref = reference_counts(start[keep], spikes, 0.05, 0.25, units)
    assert ref.sum() > 0
    np.testing.assert_array_equal(ds["responses"].values, ref.astype(np.float32))
    np.testing.assert_array_equal(ds["neuron_id"].values, UNIT_IDS[units])
    np.testing.assert_array_equal(ds["area"].values, ["VISam", "VISam"])
    np.testing.assert_array_equal(ds["image_id"].values, frames[keep])
    np.testing.assert_array_equal(ds["images"].values[:, 0], SCENES[frames[keep]])
    tiers = ds["tier"].values
    np.testing.assert_array_equal(tiers, split_tiers(frames[keep], (0.7, 0.1, 0.2), 0))
    for f in range(N_SCENES):  # all repeats of a scene share one tier
        assert len(set(tiers[frames[keep] == f])) == 1
    assert [len(set(frames[keep][tiers == t])) for t in ("train", "validation", "test")] == [
        7,
        1,
        2,
    ]


def test_all_units_custom_qc_and_window(tmp_path):
    session = make_session(seed=1)
    start, stop, frames, spikes = session
    path = write_nwb(tmp_path / "s.nwb", session)
    ds = load_allen_nwb(path, SCENES, area=None, qc={}, image_size=None)
    keep = frames >= 0
    np.testing.assert_array_equal(
        ds["responses"].values, reference_counts(start[keep], spikes, 0.05, 0.25, range(N_UNITS))
    )
    ds = load_allen_nwb(
        path,
        SCENES,
        area=["VISam", "VISp"],
        window=None,
        image_size=(4, 6),
        qc={"snr": (">", 1.2), "quality": ("==", "good")},
    )
    assert ds["images"].shape[2:] == (4, 6)
    units = [0, 1, 3, 5, 6]
    ref = reference_counts(start[keep], spikes, 0.0, 0.25, units)  # stop = start + 0.25
    np.testing.assert_array_equal(ds["responses"].values, ref)
    np.testing.assert_array_equal(ds["neuron_id"].values, UNIT_IDS[units])


def test_unsorted_spike_times(tmp_path):
    session = make_session()
    start, _, frames, spikes = session
    path = write_nwb(tmp_path / "s.nwb", session, shuffle_unit=0)
    ds = load_allen_nwb(path, SCENES, image_size=None)
    ref = reference_counts(start[frames >= 0], spikes, 0.05, 0.25, [0, 6])
    np.testing.assert_array_equal(ds["responses"].values, ref)


def test_count_spikes_closed_windows():
    got = count_spikes([np.array([1.0, 2.0, 3.0]), np.array([])], [1.0, 2.5], [2.0, 2.9])
    np.testing.assert_array_equal(got, [[2, 0], [0, 0]])


def test_missing_file_and_not_hdf5(tmp_path):
    with pytest.raises(DataError, match=r"none\.nwb.*field 'nwb'.*not found"):
        load_allen_nwb(tmp_path / "none.nwb", SCENES)
    (tmp_path / "text.nwb").write_text("hello")
    with pytest.raises(DataError, match=r"text\.nwb.*field 'nwb'.*HDF5"):
        load_allen_nwb(tmp_path / "text.nwb", SCENES)


def test_no_natural_scenes_presentations(tmp_path):
    path = write_nwb(tmp_path / "s.nwb", make_session(), presentations=False)
    with pytest.raises(DataError, match=r"s\.nwb.*field 'intervals/natural_scenes_presentations'"):
        load_allen_nwb(path, SCENES)


def test_qc_column_missing(tmp_path):
    qc = {k: v for k, v in QC.items() if k != "presence_ratio"}
    path = write_nwb(tmp_path / "s.nwb", make_session(), qc_columns=qc)
    with pytest.raises(DataError, match=r"s\.nwb.*field 'units/presence_ratio'.*missing"):
        load_allen_nwb(path, SCENES)
    ds = load_allen_nwb(
        path,
        SCENES,
        image_size=None,
        qc={"isi_violations": ("<=", 0.5), "amplitude_cutoff": ("<=", 0.1)},
    )
    np.testing.assert_array_equal(ds["neuron_id"].values, UNIT_IDS[[0, 5, 6]])
    with pytest.raises(DataError, match=r"field 'qc\.snr'.*data\.qc"):
        load_allen_nwb(path, SCENES, qc={"snr": ("~", 1)})
    with pytest.raises(DataError, match=r"s\.nwb.*field 'units/quality'.*compare"):
        load_allen_nwb(path, SCENES, qc={"quality": (">", 0.5)})


def test_no_area_information(tmp_path):
    path = write_nwb(tmp_path / "s.nwb", make_session(), area_mode="none")
    with pytest.raises(DataError, match=r"s\.nwb.*field 'units/ecephys_structure_acronym'"):
        load_allen_nwb(path, SCENES)
    assert "area" not in load_allen_nwb(path, SCENES, area=None).coords


def test_no_units_left(tmp_path):
    path = write_nwb(tmp_path / "s.nwb", make_session())
    with pytest.raises(DataError, match=r"s\.nwb.*field 'units'.*no unit left"):
        load_allen_nwb(path, SCENES, area="VISrl")


def test_too_few_images(tmp_path):
    path = write_nwb(tmp_path / "s.nwb", make_session())
    with pytest.raises(DataError, match=r"s\.nwb.*field 'images'.*9 images but frames up to 9"):
        load_allen_nwb(path, SCENES[:9])


def test_reversed_window_rejected(tmp_path):
    path = write_nwb(tmp_path / "s.nwb", make_session())
    with pytest.raises(DataError, match=r"s\.nwb.*field 'window'.*negative counts"):
        load_allen_nwb(path, SCENES, window=(0.25, 0.05))


def test_test_scenes_without_repeats(tmp_path):
    frames = np.concatenate([np.arange(N_SCENES), [-1, -1]])  # every scene shown once
    path = write_nwb(tmp_path / "s.nwb", make_session(frames=frames))
    with pytest.raises(DataError, match=r"s\.nwb.*field 'image_id \(tier 'test'\)'"):
        load_allen_nwb(path, SCENES)
    assert load_allen_nwb(path, SCENES, require_repeats=False).sizes["trial"] == N_SCENES


def test_tier_missing(tmp_path):
    frames = np.repeat([0, 1], 5)  # two scenes cannot fill three tiers
    path = write_nwb(tmp_path / "s.nwb", make_session(frames=frames))
    with pytest.raises(DataError, match=r"s\.nwb.*field 'tier'.*no trials in tier"):
        load_allen_nwb(path, SCENES)
    ds = load_allen_nwb(path, SCENES, tiers=(0.5, 0, 0.5))
    assert set(ds["tier"].values) == {"train", "test"}


def test_images_from_folder(tmp_path):
    from PIL import Image

    scenes = np.round(SCENES).astype(np.uint8)
    (tmp_path / "scenes").mkdir()
    for i, im in enumerate(scenes):
        Image.fromarray(im).save(tmp_path / "scenes" / f"{i}.png")
    path = write_nwb(tmp_path / "s.nwb", make_session())
    ds = load_allen_nwb(path, tmp_path / "scenes", image_size=None)
    np.testing.assert_array_equal(
        ds["images"].values[:, 0], scenes[ds["image_id"].values].astype(np.float32)
    )


# ------------------------------------------------ data options (crop, qc, stimulus, split seed)


def test_crop_box_keeps_the_target_aspect():
    from jaxsel.data._image_folder import crop_box

    top, bottom, left, right = crop_box((918, 1174), (36, 64))
    assert (left, right) == (0, 1174)  # every column kept, rows cut top and bottom
    assert bottom - top == 660 and top == 129 and 918 - bottom == 129
    assert abs((bottom - top) / 1174 - 36 / 64) < 1e-3
    assert crop_box((10, 40), (10, 10)) == (0, 10, 15, 25)  # too wide: columns cut
    assert crop_box((9, 16), (36, 64)) == (0, 9, 0, 16)  # same aspect: nothing cut
    assert crop_box((9, 16), None) == (0, 9, 0, 16)


def _banded_scenes():
    """Scenes 18 x 24 (aspect 0.75), zero inside the centred 14 rows that a crop to 9 x 16
    (aspect 0.5625) keeps, 1000 in the 2 rows above and below it."""
    scenes = np.zeros((N_SCENES, 18, 24), np.float32)
    scenes[:, :2] = scenes[:, 16:] = 1000.0
    return scenes


def test_center_crop_versus_stretch(tmp_path):
    path = write_nwb(tmp_path / "s.nwb", make_session())
    cropped = load_allen_nwb(path, _banded_scenes(), image_size=(9, 16))
    assert cropped.attrs["crop"] == "center"  # the default, recorded
    assert cropped.sizes["y"] == 9 and cropped.sizes["x"] == 16
    np.testing.assert_allclose(cropped["images"].values, 0.0)  # the bands were cut off
    stretched = load_allen_nwb(path, _banded_scenes(), image_size=(9, 16), crop="none")
    assert stretched.attrs["crop"] == "none"
    assert stretched["images"].values[:, 0, 0].max() > 100  # the bands squeezed in
    with pytest.raises(DataError, match=r"field 'crop'.*data\.crop.*crop='center'"):
        load_allen_nwb(path, SCENES, crop="middle")


def test_qc_short_forms(tmp_path):
    from jaxsel.data import qc_rules

    path = write_nwb(tmp_path / "s.nwb", make_session())
    want = UNIT_IDS[[0, 3, 5]]  # VISam units with snr >= 2 (no other filter)
    for qc in ({"snr": 2.0}, {"snr": [">=", 2]}, {"snr": ">= 2"}, {"snr": ">=2.0"}):
        ds = load_allen_nwb(path, SCENES, image_size=None, qc=qc)
        np.testing.assert_array_equal(ds["neuron_id"].values, want)
        assert json.loads(ds.attrs["qc"]) == {"snr": [">=", 2.0]}
    assert qc_rules(None) == {
        "isi_violations": ("<=", 0.5),
        "amplitude_cutoff": ("<=", 0.1),
        "presence_ratio": (">=", 0.9),
    }
    assert qc_rules({"quality": "== good"}) == {"quality": ("==", "good")}
    assert qc_rules({}) == {}
    with pytest.raises(DataError, match=r"field 'qc\.my_metric'.*direction is unknown.*data\.qc"):
        qc_rules({"my_metric": 0.3})
    with pytest.raises(DataError, match=r"field 'qc\.snr'.*data\.qc.*qc="):
        qc_rules({"snr": "about 2"})
    with pytest.raises(DataError, match=r"field 'qc\.snr'"):
        qc_rules({"snr": [">=", 1, 2]})
    with pytest.raises(DataError, match=r"field 'qc'.*data\.qc"):
        qc_rules([("snr", 1.0)])  # pyright: ignore[reportArgumentType]


def test_stimulus_table_name(tmp_path):
    path = write_nwb(tmp_path / "s.nwb", make_session())
    with h5py.File(path, "a") as f:
        f.move("intervals/natural_scenes_presentations", "intervals/scenes_b_presentations")
    ds = load_allen_nwb(path, SCENES, image_size=None, stimulus="scenes_b")
    assert ds.attrs["stimulus"] == "scenes_b" and ds.sizes["trial"] == N_SCENES * N_REPEATS
    with pytest.raises(DataError, match=r"natural_scenes_presentations.*data\.stimulus.*scenes_b"):
        load_allen_nwb(path, SCENES, image_size=None)
    with pytest.raises(DataError, match=r"field 'stimulus'.*data\.stimulus"):
        load_allen_nwb(path, SCENES, stimulus="")


def _allen_config(tmp_path, **data):
    from jaxsel.pipeline import config_from_dict

    nwb = tmp_path / "s.nwb"
    if not nwb.exists():
        write_nwb(nwb, make_session())
        np.save(tmp_path / "scenes.npy", SCENES)
    base = {"source": "allen", "path": str(nwb), "images": str(tmp_path / "scenes.npy")}
    return config_from_dict({"data": {**base, "image_size": [8, 12], **data}, "run": {}})


def test_split_seed_is_independent_of_run_seed(tmp_path):
    from dataclasses import replace

    from jaxsel.pipeline._context import load_dataset

    cfg = _allen_config(tmp_path)
    a = load_dataset(cfg, tmp_path)
    b = load_dataset(replace(cfg, run=replace(cfg.run, seed=123)), tmp_path)
    np.testing.assert_array_equal(a["tier"].values, b["tier"].values)  # same test scenes
    assert a.attrs["split_seed"] == 0
    c = load_dataset(_allen_config(tmp_path, split_seed=5), tmp_path)
    assert c.attrs["split_seed"] == 5
    np.testing.assert_array_equal(
        c["tier"].values, split_tiers(c["image_id"].values, (0.7, 0.1, 0.2), 5)
    )
    assert not np.array_equal(a["tier"].values, c["tier"].values)
    # the config's qc, crop and stimulus reach the loader
    d = load_dataset(_allen_config(tmp_path, qc={"snr": 2.0}, crop="none"), tmp_path)
    np.testing.assert_array_equal(d["neuron_id"].values, UNIT_IDS[[0, 3, 5]])
    assert d.attrs["crop"] == "none"
    with pytest.raises(DataError, match=r"data\.stimulus"):
        load_dataset(_allen_config(tmp_path, stimulus="flashes"), tmp_path)
