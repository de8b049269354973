"""Multi-session models: one shared core, per-session readouts, shifter, behaviour modulator,
LongCycler training, resume and transfer (tiny twins, a few epochs each)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import xarray as xr

import jaxsel as js
from jaxsel import ConfigError, DataError
from jaxsel.models import ModelConfig, SessionModelConfig, build_model, build_multi_model
from jaxsel.train import (
    Config,
    TrainConfig,
    evaluate_sessions,
    fit_readout,
    fit_sessions,
    load_sessions_fit,
)

BEHAVIOR_VARS = ["pupil", "dpupil", "running"]


def _cfg(epochs: int = 2, **sessions) -> Config:
    model = ModelConfig(
        layers=2,
        hidden_channels=4,
        input_kern=5,
        hidden_kern=3,
        pooling=2,
        sessions=SessionModelConfig(**sessions) if sessions else None,
    )
    return Config("tiny", model, TrainConfig(batch_size=32, max_epochs=epochs, progress=False))


STATS = ["image_mean", "image_std", "response_mean", "response_std"]


@pytest.fixture(scope="module")
def twin():
    """One tiny simulated experiment; sessions are subsets of its neurons and trials."""
    return js.simulate(
        n_neurons=14, shape=(12, 16), n_train=256, n_validation=48, n_test=8, test_repeats=2, seed=0
    )


def _session(ds: xr.Dataset, neurons, part: int, parts: int, crop=None) -> xr.Dataset:
    """Neurons ``neurons`` on the ``part``-th of ``parts`` disjoint trial sets (other images);
    ``crop`` = (y, x) keeps the top-left corner of the images (another image size)."""
    tier = ds["tier"].values
    trials = np.concatenate(
        [np.flatnonzero(tier == t)[part::parts] for t in ("train", "validation", "test")]
    )
    out = ds.isel(neuron=np.asarray(neurons), trial=trials)
    if crop is not None:
        out = out.isel(y=slice(0, crop[0]), x=slice(0, crop[1]))
    return out.drop_vars(STATS)


def _with_trial_vars(ds: xr.Dataset, seed: int) -> xr.Dataset:
    """Random behaviour (trial, 3) and pupil centre (trial, 2) added to a session."""
    rng = np.random.default_rng(seed)
    n = ds.sizes["trial"]
    ds = ds.assign(
        behavior=(("trial", "behavior_var"), rng.normal(size=(n, 3)).astype(np.float32)),
        pupil_center=(("trial", "xy"), rng.normal(size=(n, 2)).astype(np.float32)),
    )
    return ds.assign_coords(behavior_var=BEHAVIOR_VARS)


@pytest.fixture(scope="module")
def two_sessions(twin):
    ds, _ = twin
    return {
        "a": _session(ds, range(12), 0, 2),
        "b": _session(ds, range(7, 14), 1, 4, crop=(10, 14)),  # other neurons, images, size
    }


def test_one_session_init_is_the_single_session_init():
    import jax

    cfg = _cfg().model
    single = build_model(cfg, image_shape=(1, 12, 16), n_neurons=5)
    multi = build_multi_model(cfg, {"s": ((1, 12, 16), 5), "t": ((1, 10, 14), 3)})
    key = jax.random.key(4)
    p, s = single.init(key, mean_response=np.ones(5))
    mp, ms = multi.init(key, mean_response={"s": np.ones(5)})
    view, vstate = multi.view(mp, ms, "s")
    for a, b in zip(
        jax.tree.leaves({"core": view["core"], "readout": view["session"]["readout"]}),
        jax.tree.leaves({"core": p["core"], "readout": p["readout"]}),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    x = np.random.default_rng(0).normal(size=(3, 1, 12, 16)).astype(np.float32)
    np.testing.assert_array_equal(
        np.asarray(single.apply(p, s, x)[0]), np.asarray(multi.apply(view, vstate, x)[0])
    )


def test_one_session_fit_equals_fit(two_sessions):
    ds = two_sessions["a"]
    cfg = _cfg(epochs=2)
    single = js.fit(cfg, ds, seed=1)
    multi = fit_sessions(cfg, {"a": ds}, seed=1)
    x = ds["images"].values[:16]
    p1, p2 = single.predict(x), multi.predict("a", x)
    # same init, batches and samples; the step is split in two jitted functions (gradients,
    # update), so float32 rounding may differ slightly
    np.testing.assert_allclose(p2, p1, rtol=1e-4, atol=1e-4 * np.abs(p1).max())
    np.testing.assert_allclose(
        multi.history["val_correlation"].sel(session="a").values,
        single.history["val_correlation"].values,
        atol=1e-4,
    )


def test_sessions_with_different_neurons_and_images_train_and_predict(two_sessions):
    res = fit_sessions(_cfg(epochs=2), two_sessions, seed=0)
    h = res.history
    assert h["val_correlation"].dims == ("epoch", "session")
    assert list(h["session"].values) == ["a", "b"]
    np.testing.assert_allclose(
        h["val_correlation_mean"].values, h["val_correlation"].mean("session").values
    )
    assert res.predict("b", two_sessions["b"]["images"].values[:5]).shape == (5, 7)
    ev = evaluate_sessions(res, two_sessions)
    assert ev["correlation"].sizes["neuron"] == 19
    assert (ev["session"].values == "b").sum() == 7
    per = ev["correlation"].groupby("session").mean()
    assert set(per["session"].values) == {"a", "b"}
    # one session as a ResponseModel for the in-silico tools (at the training-mean state)
    rm = res.response_model("b")
    imgs = two_sessions["b"]["images"].values[:4]
    np.testing.assert_allclose(js.predict(rm, imgs), res.predict("b", imgs), rtol=1e-5)
    assert list(rm.coords["session"]) == ["b"] * 7
    rf = js.gradient_rf(rm.fn, rm.params, imgs.mean(0))
    assert rf.shape[0] == 7 and np.isfinite(rf.values).all()
    with pytest.raises(DataError, match="unknown session 'c'"):
        res.response_model("c")


def test_one_compiled_gradient_per_session_shape(two_sessions, twin):
    from jaxsel.train._multi_step import compiled_multi

    # a third session with the shapes of "a": no new compilation
    sessions = {**two_sessions, "a2": _session(twin[0], range(2, 14), 1, 2)}
    res = fit_sessions(_cfg(epochs=1), sessions, seed=0)
    grads = compiled_multi(res.config.model, res.config.train, frozen_core=False)[0]
    # every test of this module trains _cfg()'s model on the shapes of "a" and "b" only
    assert grads._cache_size() == 2


def _modulated(ds: xr.Dataset, twin, seed: int, coupling: float = 0.5):
    """Responses ~ Poisson(true rate * exp(behaviour @ coupling)); returns (ds, true gain)."""
    rng = np.random.default_rng(seed)
    n, n_neurons = ds.sizes["trial"], ds.sizes["neuron"]
    b = rng.normal(size=(n, 3))
    gain = np.exp(b @ (coupling * rng.normal(size=(n_neurons, 3))).T)
    r = rng.poisson(twin.rates(ds["images"].values) * gain).astype(np.float32)
    out = ds.drop_vars(STATS).assign(responses=(("trial", "neuron"), r))
    out = out.assign(behavior=(("trial", "behavior_var"), b.astype(np.float32)))
    return out.assign_coords(behavior_var=BEHAVIOR_VARS), gain


@pytest.mark.slow
def test_modulator_recovers_a_known_gain(twin):
    ds, gain = _modulated(twin[0], twin[1], 1)
    cfg = _cfg(epochs=10, behavior="modulator", modulator_hidden_layers=0)
    cfg = cfg.replace(batch_size=64, lr=0.01)
    res = fit_sessions(cfg, {"a": ds}, seed=0)
    view, _ = res.model.view(res.params, res.state, "a")
    st = res.standardizer["a"]
    z = (ds["behavior"].values - st["behavior_mean"]) / st["behavior_std"]
    fitted = np.log(np.asarray(res.model.gain(view, z)))
    true = np.log(gain)
    # a gain is identifiable up to a per-neuron factor (absorbed by the readout bias)
    fitted, true = fitted - fitted.mean(0), true - true.mean(0)
    assert np.corrcoef(fitted.ravel(), true.ravel())[0, 1] >= 0.8


@pytest.mark.slow
def test_shifter_recovers_a_known_eye_shift(twin):
    ds, truth = twin
    rng = np.random.default_rng(3)
    pupil = rng.normal(size=(ds.sizes["trial"], 2))
    dx = np.clip(np.round(1.5 * pupil[:, 0]), -3, 3).astype(int)  # pixels, from the x centre
    # the eye moves: each neuron sees the image rolled by dx pixels along x
    seen = np.stack(
        [np.roll(im, d, axis=-1) for im, d in zip(ds["images"].values, dx, strict=True)]
    )
    r = rng.poisson(truth.rates(seen)).astype(np.float32)
    ds = ds.drop_vars(STATS).assign(
        responses=(("trial", "neuron"), r),
        pupil_center=(("trial", "xy"), pupil.astype(np.float32)),
    )
    cfg = _cfg(epochs=12, shifter=True, shifter_hidden_layers=0).replace(
        batch_size=64, lr=0.01, pooling=1, hidden_channels=8
    )
    res = fit_sessions(cfg, {"a": ds}, seed=0)
    view, _ = res.model.view(res.params, res.state, "a")
    st = res.standardizer["a"]
    shift = np.asarray(res.model.shift(view, ((pupil - st["pupil_mean"]) / st["pupil_std"])))
    # content rolled right by dx is read at a position dx further left: a negative relation
    assert np.corrcoef(shift[:, 0], dx)[0, 1] <= -0.8


def test_transfer_keeps_the_core_bit_identical(two_sessions):
    base = fit_sessions(_cfg(epochs=1), {"a": two_sessions["a"]}, seed=0)
    new = fit_readout(base, {"b": two_sessions["b"]}, seed=0, max_epochs=2)
    assert new.frozen_core and new.sessions == ["b"]
    import jax

    for x, y in zip(
        jax.tree.leaves((new.params["core"], new.state["batch_stats"])),
        jax.tree.leaves((base.params["core"], base.state["batch_stats"])),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert new.history.sizes["epoch"] == 2
    assert np.isfinite(new.predict("b", two_sessions["b"]["images"].values[:3])).all()


def test_resume_equals_uninterrupted(tmp_path, two_sessions):
    cfg = _cfg(epochs=3)
    full = fit_sessions(cfg, two_sessions, seed=2)
    fit_sessions(cfg, two_sessions, seed=2, out_dir=tmp_path, max_epochs=2)
    resumed = fit_sessions(cfg, two_sessions, seed=2, out_dir=tmp_path, resume=True)
    import jax

    for x, y in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(full.params), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        resumed.history["val_correlation"].values, full.history["val_correlation"].values
    )
    loaded = load_sessions_fit(tmp_path)
    assert loaded.sessions == ["a", "b"] and loaded.best_epoch == resumed.best_epoch
    imgs = two_sessions["b"]["images"].values[:4]
    np.testing.assert_array_equal(loaded.predict("b", imgs), resumed.predict("b", imgs))
    with pytest.raises(DataError, match="other sessions"):
        fit_sessions(cfg, {"b": two_sessions["b"]}, seed=2, out_dir=tmp_path, resume=True)


def test_behavior_input_shifter_and_shared_features_train(twin):
    # two sessions of one shape (one compilation): other neurons and images each
    ds = twin[0]
    sessions = {
        "a": _with_trial_vars(_session(ds, range(8), 0, 2), 0),
        "b": _with_trial_vars(_session(ds, range(6, 14), 1, 2), 1),
    }
    opts = {"behavior": "input", "shifter": True, "feature_sharing": "lowrank", "feature_rank": 2}
    res = fit_sessions(_cfg(epochs=1, **opts), sessions, seed=0)
    assert res.params["shared"]["feature_basis"].shape == (2, 4)
    assert np.isfinite(res.history["val_correlation"].values).all()
    ev = evaluate_sessions(res, sessions, tier="validation")
    assert np.isfinite(ev["correlation"].values).all()
    # the response model at a given behavioural state differs from the training-mean state
    rm_hi = res.response_model("a", behavior=[3.0, 0.0, 3.0], pupil_center=[1.0, 1.0])
    imgs = sessions["a"]["images"].values[:4]
    assert not np.allclose(js.predict(rm_hi, imgs), js.predict(res.response_model("a"), imgs))
    with pytest.raises(DataError, match=r"session .a..*behavior"):
        res.response_model("a", behavior=[1.0, 2.0])


def _one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_bad_inputs_name_the_session_and_field(two_sessions):
    a = _with_trial_vars(two_sessions["a"], 0)
    b = two_sessions["b"]  # no behaviour, no pupil centre
    with pytest.raises(DataError, match=r"session .b..*behavio") as err:
        fit_sessions(_cfg(behavior="modulator"), {"a": a, "b": b})
    assert "field 'behavior'" in _one_line(err)
    with pytest.raises(DataError, match="duplicate session id 'a'") as err:
        fit_sessions(_cfg(), [("a", a), ("a", b)])
    _one_line(err)
    bad = a.drop_vars("pupil_center").assign(
        pupil_center=(("trial", "xy"), np.zeros((a.sizes["trial"], 3), np.float32))
    )
    with pytest.raises(DataError, match=r"session .a..*pupil_center") as err:
        fit_sessions(_cfg(shifter=True), {"a": bad})
    assert "field 'pupil_center'" in _one_line(err)
    with pytest.raises(DataError, match="got one dataset"):
        fit_sessions(_cfg(), a)
    with pytest.raises(ConfigError, match=re.escape("did you mean 'model.sessions.behavior'")):
        Config.from_dict({"model": {"sessions": {"behaviour": "modulator"}}})
    with pytest.raises(ConfigError, match=re.escape("sessions.behavior = 'gain'")):
        SessionModelConfig(behavior="gain")
    with pytest.raises(ConfigError, match="Gaussian readouts"):
        build_multi_model(ModelConfig(kind="ln"), {"a": ((1, 8, 8), 3)})


def test_config_round_trips_and_old_checkpoints_still_match():
    cfg = _cfg(behavior="modulator", shifter=True, behavior_vars=["running", "pupil"])
    again = Config.from_dict(cfg.to_dict())
    assert again == cfg
    assert again.model.sessions is not None
    assert again.model.sessions.behavior_vars == ("running", "pupil")
    from jaxsel.train._fit_parts import config_diff

    saved = _cfg().to_dict()
    del saved["model"]["sessions"]  # a checkpoint written before model.sessions existed
    assert config_diff(saved, _cfg()) == []
