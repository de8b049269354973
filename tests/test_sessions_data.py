"""Many sessions: load/save/validate, the multi-animal twin's behaviour and eye modulation."""

from __future__ import annotations

import shutil
import zipfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

import jaxsel as js
from jaxsel._errors import ConfigError, DataError
from jaxsel.cli import main
from jaxsel.data import (
    BACKGROUND,
    BehaviorConfig,
    load_session_truth,
    load_sessions,
    load_twin_sessions,
    optimal_stimuli,
    save_session_truth,
    save_sessions,
    session_rates,
    shift_images,
    simulate_behavior,
    simulate_sessions,
    validate_sessions,
)

TINY: dict[str, Any] = dict(
    n_neurons=8, shape=(12, 16), n_train=40, n_validation=8, n_test=4, test_repeats=3
)


@pytest.fixture(scope="module")
def sim():
    return simulate_sessions(seed=3, n_sessions=3, **TINY)


def same(a: xr.Dataset, b: xr.Dataset) -> None:
    xr.testing.assert_identical(a.drop_attrs(deep=False), b.drop_attrs(deep=False))


def same_sessions(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for sid in a:
        same(a[sid], b[sid])


# ------------------------------------------------------------------------------ round trips


def test_write_then_load_gives_the_simulated_sessions(sim, tmp_path):
    sessions, _ = sim
    save_sessions(sessions, tmp_path / "mice")
    back = load_sessions(tmp_path / "mice")
    same_sessions(sessions, back)
    for ds in back.values():
        assert ds["behavior"].dims == ("trial", "behavior_var")
        assert list(ds["behavior_var"].values) == ["pupil", "dpupil", "running"]
        assert {"cortex_x", "cortex_y", "cortex_z"} <= set(ds.coords)
    # a list of folders (own order) and a dict (own ids) read the same files
    paths = [tmp_path / "mice" / sid for sid in reversed(list(sessions))]
    assert list(load_sessions(paths)) == list(reversed(list(sessions)))
    renamed = load_sessions({"a": paths[0], "b": paths[1]})
    same(renamed["a"], sessions[paths[0].name])
    sid, ds = next(iter(sessions.items()))  # statistics that other tools' normalizers read
    train = ds["behavior"].values[ds["tier"].values == "train"]
    stats = tmp_path / "mice" / sid / "meta" / "statistics" / "behavior" / "all"
    np.testing.assert_allclose(np.load(stats / "mean.npy"), train.mean(0), rtol=1e-5)
    np.testing.assert_allclose(np.load(stats / "median.npy"), np.median(train, 0), rtol=1e-5)
    (tmp_path / "mice" / "notes").mkdir()  # a folder that is no session is skipped
    assert list(load_sessions(tmp_path / "mice")) == list(sessions)
    one = load_sessions(paths[0])  # one static folder: one session
    assert list(one) == [paths[0].name]


def test_zips_load_like_folders(sim, tmp_path):
    sessions, _ = sim
    save_sessions(sessions, tmp_path / "mice")
    (tmp_path / "zips").mkdir()
    for sid in sessions:  # Sensorium zips hold the folder one level down
        with zipfile.ZipFile(tmp_path / "zips" / f"{sid}.zip", "w") as zf:
            for f in sorted((tmp_path / "mice" / sid).rglob("*.npy")):
                zf.write(f, f"{sid}/{f.relative_to(tmp_path / 'mice' / sid)}")
    same_sessions(load_sessions(tmp_path / "mice"), load_sessions(tmp_path / "zips"))
    # a folder next to its own zip: the folder is read, once
    sid = next(iter(sessions))
    shutil.copy(tmp_path / "zips" / f"{sid}.zip", tmp_path / "mice" / f"{sid}.zip")
    assert list(load_sessions(tmp_path / "mice")) == list(sessions)


def test_cli_writes_sessions_and_truth(tmp_path, capsys):
    opts = ["--neurons", "6", "--train", "20", "--validation", "4", "--test", "3"]
    rc = main(["simulate", "--out", str(tmp_path / "o"), "--sessions", "2", "--seed", "5", *opts])
    assert rc == 0
    back, back_truth = load_twin_sessions(tmp_path / "o")
    sessions, truth = js.simulate(
        seed=5, n_sessions=2, n_neurons=6, n_train=20, n_validation=4, n_test=3
    )
    same_sessions(sessions, back)
    for sid, t in truth.items():
        loaded = back_truth[sid]
        for k, v in t.modulation.items():
            np.testing.assert_array_equal(loaded.modulation[k], v)
        xr.testing.assert_identical(loaded.trials, t.trials)
    shutil.rmtree(tmp_path / "o" / "ground_truth" / sid)
    with pytest.raises(DataError, match="one ground-truth folder per session"):
        load_twin_sessions(tmp_path / "o")
    assert main(["simulate", "--out", str(tmp_path / "p"), "--sessions", "0", *opts]) == 2
    assert "--sessions 0: expected an integer >= 1" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


# ------------------------------------------------------------------------ twin: modulation


def test_simulate_dispatch_and_determinism(sim):
    sessions, truth = sim
    again, _ = js.simulate(seed=3, n_sessions=3, **TINY)
    same_sessions(sessions, again)
    a, b = (sessions[k] for k in list(sessions)[:2])
    assert not np.array_equal(a["images"].values, b["images"].values)  # own images
    assert not np.allclose(a["cortex_x"].values, b["cortex_x"].values)  # own neurons
    assert not set(a["image_id"].values) & set(b["image_id"].values)  # an id is one image
    shared, _ = simulate_sessions(seed=3, n_sessions=2, shared_images=True, **TINY)
    first, second = shared.values()
    ids = first["image_id"].values
    pos = {i: t for t, i in enumerate(second["image_id"].values)}
    np.testing.assert_array_equal(
        first["images"].values, second["images"].values[[pos[i] for i in ids]]
    )
    ds, twin = js.simulate(seed=3, **TINY)  # n_sessions=None: one dataset and its Twin
    assert isinstance(ds, xr.Dataset) and isinstance(twin, js.data.Twin)
    with pytest.raises(ConfigError, match="n_sessions"):
        js.simulate(seed=0, n_sessions=0, **TINY)


def test_mean_state_rates_are_the_single_population_rates(sim):
    sessions, truth = sim
    sid = next(iter(sessions))
    t, images = truth[sid], sessions[sid]["images"].values
    b0, e0 = t.mean_state()
    n = len(images)
    got = t.rates(images, np.tile(b0, (n, 1)), np.tile(e0, (n, 1)))
    want = t.twin.rates(images)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * want.max())
    # no coupling and no eye mapping: any behaviour gives exactly the twin's rates
    p = {**t.params, "coupling": np.zeros_like(t.modulation["coupling"])}
    p.update(shift_matrix=np.zeros((2, 2), np.float32), shift_offset=np.zeros(2, np.float32))
    beh = sessions[sid]["behavior"].values
    eye = sessions[sid]["pupil_center"].values
    flat = jax.jit(session_rates)(p, images, beh, eye)
    np.testing.assert_allclose(np.asarray(flat), want, rtol=1e-6, atol=1e-6)
    # the dataset's noise-free rates are the truth's function of its own trial variables
    np.testing.assert_allclose(t.rates(images, beh, eye), t.trials["rates"].values, rtol=1e-6)
    assert np.isfinite(optimal_stimuli(t.twin)).all() and "true_oracle" in t.twin.params


@pytest.mark.parametrize("axis", [0, 1])
def test_moving_the_eye_one_pixel_moves_the_image(sim, axis):
    sessions, truth = sim
    sid = list(sessions)[1]
    t, images = truth[sid], sessions[sid]["images"].values[:20]
    b0, e0 = t.mean_state()
    step = np.zeros(2)
    step[axis] = 1.0  # RF shift (dx, dy) of one pixel ...
    e1 = e0 + np.linalg.solve(t.modulation["shift_matrix"].astype(np.float64), step)
    n = len(images)
    got = t.rates(images, np.tile(b0, (n, 1)), np.tile(e1, (n, 1)).astype(np.float32))
    # ... is the image moved one pixel the other way: out[k] = image[k + 1], grey enters
    moved = np.full_like(images, BACKGROUND)
    if axis == 0:
        moved[..., :, :-1] = images[..., :, 1:]
    else:
        moved[..., :-1, :] = images[..., 1:, :]
    want = t.twin.rates(moved)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * want.max())
    assert not np.allclose(got, t.twin.rates(images), rtol=1e-3)  # the shift matters


def test_shift_images_is_bilinear_and_differentiable():
    rng = np.random.default_rng(0)
    im = rng.normal(size=(2, 1, 6, 7)).astype(np.float32)
    one = np.zeros_like(im)
    one[..., 1:] = im[..., :-1]  # moved right by one pixel, zero fill
    half = np.asarray(shift_images(im, np.array([[0.5, 0.0]] * 2), fill=0.0))
    np.testing.assert_allclose(half, 0.5 * (im + one), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(shift_images(im, np.zeros((2, 2)), 0.0)), im)
    w = rng.normal(size=im.shape[1:]).astype(np.float32)

    @jax.jit
    def f(d):
        return jnp.sum(shift_images(im[:1], d[None], 0.0)[0] * w)

    d = jnp.array([0.3, -0.6])
    g = np.asarray(jax.jit(jax.grad(f))(d))
    eps = 1e-2
    fd = [(f(d + eps * e) - f(d - eps * e)) / (2 * eps) for e in np.eye(2, dtype=np.float32)]
    np.testing.assert_allclose(g, np.asarray(fd), rtol=1e-3, atol=1e-4)


def test_couplings_recovered_by_regression_on_noise_free_rates():
    # no eye movements: log(rate - baseline) = coupling . z + log(drive of the image)
    sessions, truth = simulate_sessions(
        seed=1,
        n_sessions=1,
        behavior=BehaviorConfig(shift_per_eye=0.0, run_fraction=0.4, bout_trials=4.0),
        n_neurons=6,
        shape=(8, 8),
        n_train=4,
        n_validation=1,
        n_test=3,
        test_repeats=10,
        kind_fractions=(0.5, 0.5, 0.0, 0.0),
    )
    ds, t = next(iter(sessions.values())), next(iter(truth.values()))
    test = np.flatnonzero(ds["tier"].values == "test")
    z = (ds["behavior"].values[test] - t.modulation["behavior_mean"]) / t.modulation["behavior_std"]
    ids = ds["image_id"].values[test]
    onehot = (ids[:, None] == np.unique(ids)[None]).astype(np.float64)
    x = np.concatenate([z, onehot], axis=1)
    r = t.trials["rates"].values[test].astype(np.float64)
    driven = r - t.twin.params["baseline"][None]
    checked = 0
    for k in range(r.shape[1]):
        rows = driven[:, k] > 1e-2 * r[:, k]  # float32 rates: log(r - b) needs r - b >> eps r
        if rows.sum() < 2 * x.shape[1]:
            continue
        coef, *_ = np.linalg.lstsq(x[rows], np.log(driven[rows, k]), rcond=None)
        np.testing.assert_allclose(coef[:3], t.modulation["coupling"][k], atol=2e-3)
        checked += 1
    assert checked >= 4


def test_behavior_has_running_bouts_and_a_dilating_pupil():
    sim = simulate_behavior(np.random.default_rng(0), 4000, BehaviorConfig(run_fraction=0.3))
    run, b = sim["running"], sim["behavior"]
    assert 0.2 < run.mean() < 0.4
    assert np.corrcoef(run[1:], run[:-1])[0, 1] > 0.8  # bouts last many trials
    assert b[run, 2].mean() > 5 * b[~run, 2].mean()  # running speed
    assert b[run, 0].mean() > b[~run, 0].mean()  # pupil dilates while running
    np.testing.assert_allclose(b[1:, 1], np.diff(b[:, 0]), rtol=1e-5, atol=1e-4)
    assert sim["pupil_center"].std(0).min() > 1.0


# -------------------------------------------------------------------------------- bad input


def test_validate_sessions_rejects_bad_dicts(sim):
    sessions, _ = sim
    a, b, c = sessions
    with pytest.raises(DataError, match=rf"session '{c}'.*field 'behavior'.*\['{c}'\]"):
        validate_sessions({**sessions, c: sessions[c].drop_vars("behavior")})
    with pytest.raises(DataError, match=r"field 'sessions'.*no sessions"):
        validate_sessions({})
    with pytest.raises(DataError, match="differ only in case"):
        validate_sessions({"m1": sessions[a], "M1": sessions[b]})
    with pytest.raises(DataError, match="session id 3"):
        validate_sessions({3: sessions[a]})  # type: ignore[dict-item]
    with pytest.raises(DataError, match=rf"session '{b}'.*field 'images'.*\(1, 12, 16\)"):
        validate_sessions({a: sessions[a], b: sessions[b].isel(x=slice(0, 10))})
    with pytest.raises(DataError, match=rf"session '{a}'.*field 'statistics'.*with_statistics"):
        validate_sessions({a: sessions[a].drop_vars("image_std")})
    with pytest.raises(DataError, match=rf"session '{a}'.*field 'dataset'"):
        validate_sessions({a: sessions[a]["responses"]})  # type: ignore[dict-item]
    with pytest.raises(DataError, match="field 'sessions'"):
        validate_sessions([sessions[a]])  # type: ignore[arg-type]


def test_load_sessions_names_the_session_and_file(sim, tmp_path):
    sessions, _ = sim
    root = save_sessions(sessions, tmp_path / "mice")
    a, b, c = (root / sid for sid in sessions)
    shutil.rmtree(c / "data" / "behavior")  # one session without behaviour files
    with pytest.raises(DataError, match=rf"session '{c.name}'.*'behavior'.*data/behavior"):
        load_sessions(root)
    shutil.rmtree(c)
    n = len(list((b / "data" / "images").iterdir()))
    (b / "data" / "pupil_center" / f"{n - 1}.npy").unlink()  # trial counts differ
    with pytest.raises(DataError, match=rf"{b.name}.*pupil_center.*{n - 1} files for {n} trials"):
        load_sessions(root)
    shutil.rmtree(b)
    n = len(list((a / "data" / "images").iterdir()))
    np.save(a / "data" / "responses" / f"{n}.npy", np.zeros(8, np.float32))
    with pytest.raises(DataError, match=rf"{a.name}.*{n} image files but {n + 1} response"):
        load_sessions(root)
    other = tmp_path / "other" / a.name
    shutil.copytree(a, other)
    with pytest.raises(DataError, match=f"both give session id '{a.name}'"):
        load_sessions([a, other])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no static folders"):
        load_sessions(tmp_path / "empty")
    with pytest.raises(DataError, match="not found"):
        load_sessions(tmp_path / "nowhere")
    with pytest.raises(DataError, match="not a plain folder name"):
        save_sessions({"a/b": sessions[next(iter(sessions))]}, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_session_truth_round_trip(sim, tmp_path):
    _, truth = sim
    t = next(iter(truth.values()))
    back = load_session_truth(save_session_truth(t, tmp_path / "gt"))
    xr.testing.assert_identical(back.trials, t.trials)
    np.testing.assert_array_equal(back.twin.params["w_even"], t.twin.params["w_even"])
    (tmp_path / "gt" / "trials.npz").unlink()
    with pytest.raises(DataError, match=r"trials\.npz"):
        load_session_truth(tmp_path / "gt")
