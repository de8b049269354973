"""Movie data: the video dataset, the dynamic twin's truth, movie stimuli, the Sensorium 2023
folder layout, the arrays form and streaming from a zarr store."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

import jaxsel as js
from jaxsel.data import (
    BACKGROUND,
    MOVIE_KINDS,
    block_walks,
    drifting_gratings,
    frame_mask,
    load_movie_twin,
    load_video_arrays,
    load_videos,
    make_video_dataset,
    moving_bars,
    moving_digits,
    natural_movies,
    open_video_store,
    optimal_movies,
    save_movie_twin,
    save_video_arrays,
    save_video_store,
    save_videos,
    subsequences,
    to_contrast,
)

KIND = {k: i for i, k in enumerate(MOVIE_KINDS)}


@pytest.fixture(scope="module")
def sim():
    return js.simulate_movies(
        seed=3,
        n_neurons=15,
        shape=(16, 24),
        n_frames=36,
        n_train=5,
        n_validation=2,
        n_test=2,
        test_repeats=2,
        kernel_frames=8,
        kind_fractions=(0.2, 0.2, 0.2, 0.2, 0.2),
    )


def _ragged(seed=0, lengths=(30, 22, 40, 30, 30, 35)) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return dict(
        videos=[rng.uniform(0, 255, (t, 6, 8)) for t in lengths],
        responses=[rng.poisson(1.0, (t, 4)).astype(float) for t in lengths],
        behavior=[rng.normal(size=(t, 2)) for t in lengths],
        video_id=[0, 1, 2, 3, 4, 4],
        tier=["train", "train", "train", "validation", "test", "test"],
    )


# --------------------------------------------------------------------------- dataset


def test_ragged_trials_are_padded_with_fill_values_and_masked():
    a = _ragged()
    ds = make_video_dataset(**a)
    lengths = [len(r) for r in a["responses"]]
    assert ds["videos"].dims == ("trial", "channel", "time", "y", "x")
    assert ds["n_frames"].values.tolist() == lengths
    assert ds.sizes["time"] == max(lengths)
    m = frame_mask(ds).values
    assert m.sum(1).tolist() == lengths
    np.testing.assert_array_equal(ds["videos"].values[1, 0, :22], a["videos"][1].astype(np.float32))
    assert (ds["videos"].values[1, :, 22:] == BACKGROUND).all()
    assert (ds["responses"].values[1, 22:] == 0).all() and (
        ds["behavior"].values[1, 22:] == 0
    ).all()
    assert ds.attrs["frame_rate_hz"] == 30.0 and ds["time_s"].values[3] == pytest.approx(0.1)
    # train statistics over real frames only: NumPy reference
    frames = np.concatenate([a["videos"][i] for i in range(3)])
    np.testing.assert_allclose(ds["video_mean"].values[0], frames.mean(0), rtol=1e-5)
    np.testing.assert_allclose(ds["video_std"].values[0], frames.std(0), rtol=1e-4)
    resp = np.concatenate([a["responses"][i] for i in range(3)])
    np.testing.assert_allclose(ds["response_mean"].values, resp.mean(0), rtol=1e-5)
    np.testing.assert_allclose(ds["response_std"].values, resp.std(0), rtol=1e-4)


def test_trailing_nan_padding_sets_n_frames():
    a = _ragged()
    v = np.full((6, 40, 6, 8), np.nan)
    r = np.full((6, 40, 4), np.nan)
    for i, (vi, ri) in enumerate(zip(a["videos"], a["responses"], strict=True)):
        v[i, : len(vi)], r[i, : len(ri)] = vi, ri
    ds = make_video_dataset(v, r, video_id=a["video_id"], tier=a["tier"])
    assert ds["n_frames"].values.tolist() == [len(x) for x in a["responses"]]
    assert np.isfinite(ds["videos"].values).all() and np.isfinite(ds["responses"].values).all()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            lambda a: a["responses"].__setitem__(0, a["responses"][0][:-1]),
            ["videos/responses", "trial 0"],
        ),
        (
            lambda a: a["responses"].__setitem__(0, a["responses"][0].T),
            ["(neuron, time)", "responses.T"],
        ),
        (
            lambda a: a["videos"].__setitem__(0, np.moveaxis(a["videos"][0], 0, -1)),
            ["(y, x, time)", "moveaxis"],
        ),
        (
            lambda a: a["videos"][2].__setitem__((5, 0, 0), np.nan),
            ["non-finite", "frame 5", "'videos'"],
        ),
        (lambda a: a.__setitem__("tier", ["train"] * 5 + ["exam"]), ["unknown tier", "exam"]),
        (lambda a: a.__setitem__("video_id", [0, 1, 2, 3, 4, 5]), ["no test movie is shown more"]),
        (lambda a: a["videos"].__setitem__(1, a["videos"][1][:, :5]), ["trial 1", "frame size"]),
    ],
)
def test_bad_inputs_give_one_line_errors(change, words):
    a = _ragged()
    change(a)
    with pytest.raises(js.DataError) as info:
        make_video_dataset(**a)
    msg = str(info.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


# --------------------------------------------------------------------------- clips


def test_subsequences_read_the_right_frames_and_mask_the_burn_in():
    ds = make_video_dataset(**_ragged())
    clips = list(subsequences(ds, 25, 7, batch_size=2, burn_in=5))
    assert sorted(np.concatenate([c.trial for c in clips]).tolist()) == [0, 1, 2]  # one epoch
    for c in clips:
        for b, (t, s) in enumerate(zip(c.trial, c.start, strict=True)):
            n = int(ds["n_frames"][t])
            real = min(25, n - s)
            assert 0 <= s <= max(n - 25, 0)
            np.testing.assert_array_equal(
                c.videos[b, :, :real], ds["videos"].values[t, :, s : s + real]
            )
            np.testing.assert_array_equal(
                c.responses[b, :real], ds["responses"].values[t, s : s + real]
            )
            want = (np.arange(25) >= 5) & (np.arange(25) < real)
            np.testing.assert_array_equal(c.mask[b], want)
        assert c.behavior is not None and c.behavior.shape[:2] == c.responses.shape[:2]
    again = list(subsequences(ds, 25, 7, batch_size=2, burn_in=5, prefetch=0))
    assert all(np.array_equal(x.start, y.start) for x, y in zip(clips, again, strict=True))
    with pytest.raises(js.ConfigError, match="burn_in"):
        next(subsequences(ds, 5, burn_in=5))


# --------------------------------------------------------------------------- dynamic twin


def test_separable_cell_rate_equals_numpy_space_time_convolution(sim):
    _, twin = sim
    p = {k: np.asarray(v, np.float64) for k, v in twin.params.items()}
    movie = natural_movies(1, 20, twin.shape, seed=5)
    rates = twin.rates(movie)[0]
    c = to_contrast(movie[0].astype(np.float64)).reshape(20, -1)
    for i in np.flatnonzero(p["kind"] == KIND["simple"]):
        proj = c @ p["w_even"][i].ravel()
        k = p["k_even"][i]
        e = np.array(
            [sum(k[tau] * proj[t - tau] for tau in range(len(k)) if t >= tau) for t in range(20)]
        )
        u = e / p["drive_scale"][i] - p["threshold"][i]
        d = (np.logaddexp(0, 4 * u) / 4) ** 1.5
        d = d / (1 + d / p["c50"][i])
        np.testing.assert_allclose(
            rates[:, i], p["baseline"][i] + p["gain"][i] * d, rtol=2e-4, atol=1e-6
        )


def test_rates_are_causal(sim):
    _, twin = sim
    movie = natural_movies(1, 24, twin.shape, seed=1)
    later = movie.copy()
    later[0, 15:] = 255.0 - later[0, 15:]
    r0, r1 = twin.rates(movie), twin.rates(later)
    np.testing.assert_allclose(r0[:, :15], r1[:, :15], rtol=1e-6, atol=1e-7)
    responsive = twin.params["kind"] != KIND["unresponsive"]
    assert np.abs(r0[:, 15:, responsive] - r1[:, 15:, responsive]).max() > 1e-3


def test_direction_selective_cells_prefer_their_direction(sim):
    _, twin = sim
    p = twin.params
    ds_cells = np.flatnonzero(np.isin(p["kind"], [KIND["direction"], KIND["motion_energy"]]))
    assert len(ds_cells) >= 2
    K = twin.meta["kernel_frames"]
    for i in ds_cells:
        th = float(p["pref_direction"][i])
        movies = drifting_gratings(
            [th, th + np.pi],
            K + 30,
            twin.shape,
            sf=float(p["sf"][i]),
            tf=float(p["tf"][i]),
            contrast=0.5,
        )
        r = twin.rates(movies)[:, K:, i].mean(1)
        assert r[0] > 1.1 * r[1], (i, r)
    dsi = p["true_dsi"]
    separable = dsi[p["kind"] == KIND["simple"]]
    assert (separable < 0.25).all()  # a separable filter has no direction preference
    assert dsi[ds_cells].min() > separable.max()
    np.testing.assert_allclose(p["pref_speed"], p["tf"] / p["sf"], rtol=1e-6)


def test_optimal_movies_are_optimal_at_the_budget(sim):
    _, twin = sim
    K = twin.meta["kernel_frames"]
    opt = optimal_movies(twin, n_frames=K + 4, steps=60)
    norm = twin.meta["norm_budget"]
    kinds = twin.params["kind"]
    live = np.flatnonzero(kinds != KIND["unresponsive"])
    np.testing.assert_allclose(np.sqrt((opt[live] ** 2).sum((1, 2, 3))), norm, rtol=1e-4)
    assert (opt[live, :4] == 0).all()  # frames older than the kernel are grey
    last = twin.rates(js.data.from_contrast(opt))[:, -1]  # (movie, neuron)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((20,) + opt.shape[1:])
    noise *= norm / np.sqrt((noise**2).sum((1, 2, 3), keepdims=True))
    rand = twin.rates(js.data.from_contrast(noise))[:, -1].max(0)
    for i in live:
        own = last[i, i]
        assert own >= rand[i] - 1e-6
        others = np.delete(last[:, i], i)
        slack = 1e-3 * own if kinds[i] != KIND["suppressed"] else 0.02 * own  # ascent: approx.
        assert own >= others.max() - slack, (i, MOVIE_KINDS[kinds[i]])


def test_behaviour_multiplies_the_gain(sim):
    _, twin = sim
    movie = natural_movies(1, 12, twin.shape, seed=2)
    beh = np.random.default_rng(1).standard_normal((1, 12, 2)).astype(np.float32)
    r0, r1 = twin.rates(movie), twin.rates(movie, beh)
    b = twin.params["baseline"]
    np.testing.assert_allclose(
        r1 - b, (r0 - b) * np.exp(beh @ twin.params["beta"].T), rtol=1e-4, atol=1e-6
    )


def test_simulated_dataset_layout_and_twin_round_trip(sim, tmp_path):
    ds, twin = sim
    assert set(ds["tier"].values) == {"train", "validation", "test"}
    assert {"behavior", "pupil_center", "video_mean", "response_std"} <= set(ds.data_vars)
    assert (ds["responses"].values >= 0).all()
    back = load_movie_twin(save_movie_twin(twin, tmp_path / "gt"))
    movie = natural_movies(1, 10, twin.shape, seed=4)
    np.testing.assert_array_equal(back.rates(movie), twin.rates(movie))
    assert back.meta["norm_budget"] == twin.meta["norm_budget"]


# --------------------------------------------------------------------------- stimuli


def test_stimuli_shapes_ranges_and_determinism():
    shape = (12, 20)
    for make in (
        lambda s: natural_movies(2, 9, shape, seed=s),
        lambda s: natural_movies(2, 9, shape, seed=s, kind="pink"),
        lambda s: block_walks(2, 9, shape, seed=s, block=3),
        lambda s: moving_digits(2, 9, shape, seed=s, digit_size=10)[0],
    ):
        a, b, c = make(0), make(0), make(1)
        assert a.shape == (2, 9, *shape) and a.dtype == np.float32
        assert a.min() >= 0 and a.max() <= 255
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
    _, labels = moving_digits(3, 4, shape, seed=0, n_digits=2, digit_size=10)
    assert labels.shape == (3, 2) and set(labels.ravel()) <= set(range(10))


def test_gratings_and_bars_move_along_their_direction():
    g = drifting_gratings([0.0, np.pi / 2], 5, (10, 12), sf=0.25, tf=0.25)  # 1 pixel per frame
    np.testing.assert_allclose(g[0, 1][:, 1:], g[0, 0][:, :-1], atol=1e-3)  # +x
    np.testing.assert_allclose(g[1, 1][1:], g[1, 0][:-1], atol=1e-3)  # +y (downwards)
    bars = moving_bars([0.0, np.pi / 2], 40, (20, 20), speed=1.0, width=3.0) - BACKGROUND
    x = np.arange(20)
    cx = [(bars[0, t].sum(0) * x).sum() / bars[0, t].sum() for t in (15, 20)]
    cy = [(bars[1, t].sum(1) * x).sum() / bars[1, t].sum() for t in (15, 20)]
    assert cx[1] == pytest.approx(cx[0] + 5, abs=0.5) and cy[1] == pytest.approx(cy[0] + 5, abs=0.5)


# --------------------------------------------------------------------------- files


def _same(a, b):
    for k in a.variables:
        np.testing.assert_array_equal(a[k].values, b[k].values, err_msg=k)


def test_sensorium_folder_round_trip(sim, tmp_path):
    ds, _ = sim
    path = save_videos(ds, tmp_path / "f")
    v0 = np.load(path / "data/videos/0.npy")
    n0 = int(ds["n_frames"][0])
    assert v0.shape == (16, 24, ds.sizes["time"])  # (y, x, time): time last
    assert np.load(path / "data/responses/0.npy").shape == (15, ds.sizes["time"])
    assert np.isnan(v0[..., n0:]).all() and np.isfinite(v0[..., :n0]).all()
    back = load_videos(path, require_tiers=("train", "validation", "test"))
    _same(ds, back)
    # Sensorium tier names: 'oracle' -> test, withheld test sets dropped
    tiers = np.load(path / "meta/trials/tiers.npy").astype("<U20")
    tiers = np.where(tiers == "test", "oracle", tiers)
    tiers[np.flatnonzero(tiers == "validation")[0]] = "live_test_main"
    np.save(path / "meta/trials/tiers.npy", tiers)
    renamed = load_videos(path)
    assert json.loads(renamed.attrs["dropped_tiers"]) == {"live_test_main": 1}
    assert (renamed["tier"].values == "test").sum() == (ds["tier"].values == "test").sum()


def _nan_at(f, idx):
    a = np.load(f)
    a[idx] = np.nan
    np.save(f, a)


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda p: (p / "data/responses/1.npy").unlink(), ["data/responses", "file missing"]),
        (
            lambda p: np.save(
                p / "data/responses/2.npy", np.load(p / "data/responses/2.npy")[:, :-1]
            ),
            ["data/responses/2.npy", "frames"],
        ),
        (
            lambda p: np.save(p / "data/responses/2.npy", np.load(p / "data/responses/2.npy").T),
            ["data/responses/2.npy", "(time, neuron)"],
        ),
        (
            lambda p: np.save(
                p / "data/videos/3.npy", np.moveaxis(np.load(p / "data/videos/3.npy"), -1, 0)
            ),
            ["data/videos/3.npy", "(time, y, x)"],
        ),
        (lambda p: (p / "meta/trials/tiers.npy").unlink(), ["meta/trials/tiers.npy", "not found"]),
        (lambda p: _nan_at(p / "data/videos/1.npy", (2, 3, 5)), ["data/videos/1.npy", "frame 5"]),
    ],
)
def test_bad_folders_give_one_line_errors_naming_the_file(sim, tmp_path, damage, words):
    ds, _ = sim
    path = save_videos(ds, tmp_path / "f")
    damage(path)
    with pytest.raises(js.DataError) as info:
        load_videos(path)
    msg = str(info.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


def test_arrays_form_round_trip(sim, tmp_path):
    ds, _ = sim
    back = load_video_arrays(save_video_arrays(ds, tmp_path / "a.npz"))
    _same(ds.drop_attrs(), back.drop_attrs())
    np.savez(tmp_path / "b.npz", videos=ds["videos"].values)
    with pytest.raises(js.DataError, match="'responses'"):
        load_video_arrays(tmp_path / "b.npz")


def test_streaming_above_the_memory_budget_gives_the_same_clips(sim, tmp_path):
    ds, _ = sim
    path = save_videos(ds, tmp_path / "f")
    gb = 4 * ds["videos"].size / 1e9
    streamed = load_videos(
        path,
        memory_budget_gb=gb / 10,
        zarr_path=tmp_path / "z.zarr",
        require_tiers=("train", "validation", "test"),
    )
    assert streamed.attrs["streamed"] is True
    assert not isinstance(streamed["videos"].variable._data, np.ndarray)  # still on disk
    for k in ("video_mean", "video_std", "response_mean", "n_frames", "video_id"):
        np.testing.assert_array_equal(streamed[k].values, ds[k].values)
    a = list(subsequences(ds, 20, 11, batch_size=3, n_batches=4))
    b = list(subsequences(streamed, 20, 11, batch_size=3, n_batches=4, prefetch=2))
    for x, y in zip(a, b, strict=True):
        for k in ("videos", "responses", "mask", "behavior", "pupil_center"):
            np.testing.assert_array_equal(getattr(x, k), getattr(y, k))
    with pytest.raises(js.DataError, match="made from other data"):  # a stale store
        load_videos(
            path, tiers={"train": "train"}, memory_budget_gb=0.0, zarr_path=tmp_path / "z.zarr"
        )
    store = save_video_store(ds, tmp_path / "s.zarr")
    _same(ds.drop_attrs(), open_video_store(store, memory_budget_gb=None).drop_attrs())
