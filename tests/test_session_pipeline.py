"""Multi-session truth metrics (against the twin's own per-trial truth) and the pipeline
with ``[data] source = "sessions"`` on a tiny twin."""

from __future__ import annotations

import numpy as np
import pytest

import jaxsel as js
from jaxsel.measures import modulator_truth_r, rates_truth_r, shifter_truth_r


@pytest.fixture(scope="module")
def tiny_sessions():
    return js.simulate(
        seed=3,
        n_sessions=2,
        n_neurons=12,
        shape=(16, 24),
        n_train=64,
        n_validation=16,
        n_test=6,
        test_repeats=2,
    )


def _as_prediction(truth, tier_idx):
    """The truth itself on some trials, in the layout of session_predictions."""
    return {
        sid: t.trials.isel(trial=tier_idx[sid]).assign_coords(trial=tier_idx[sid])
        for sid, t in truth.items()
    }


def _test_idx(sessions):
    return {sid: np.flatnonzero(ds["tier"].values == "test") for sid, ds in sessions.items()}


def test_truth_scores_one_on_the_truth(tiny_sessions):
    sessions, truth = tiny_sessions
    pred = _as_prediction(truth, _test_idx(sessions))
    r = rates_truth_r(pred, truth)
    assert list(r["session"].values) == list(sessions)
    assert r.sizes["neuron"] == 24 and set(r["neuron_session"].values) == set(sessions)
    np.testing.assert_allclose(r["median"].values, 1.0, atol=1e-6)
    np.testing.assert_allclose(shifter_truth_r(pred, truth).values, 1.0, atol=1e-6)
    m = modulator_truth_r(pred, truth)
    np.testing.assert_allclose(m["r"].values, 1.0, atol=1e-6)
    np.testing.assert_allclose(m["r_neuron_median"].values, 1.0, atol=1e-6)


def test_truth_scores_known_values(tiny_sessions):
    """Affine rates and per-neuron gain factors keep r = 1; a mirrored shift gives -1; a
    shift with orthogonal noise of equal size gives 1/sqrt(2); constant gains give NaN."""
    sessions, truth = tiny_sessions
    idx = _test_idx(sessions)
    pred = _as_prediction(truth, idx)
    rng = np.random.default_rng(0)
    for sid, p in pred.items():
        t = p["rf_shift"].values.astype(np.float64)
        tc = t - t.mean(0)
        noise = rng.normal(size=tc.shape)
        noise -= noise.mean(0)
        noise -= tc * (noise * tc).sum(0) / (tc * tc).sum(0)  # orthogonal to the truth
        noise *= np.linalg.norm(tc, axis=0) / np.linalg.norm(noise, axis=0)
        shift = t + noise
        shift[:, 0] = -t[:, 0]  # x mirrored
        scale = rng.uniform(0.5, 2.0, size=p.sizes["neuron"])
        pred[sid] = p.assign(
            rates=3.0 * p["rates"] + 1.0,
            gain=p["gain"] * scale,
            rf_shift=(("trial", "xy"), shift),
        )
    np.testing.assert_allclose(rates_truth_r(pred, truth)["median"].values, 1.0, atol=1e-6)
    s = shifter_truth_r(pred, truth)
    np.testing.assert_allclose(s.sel(xy="x").values, -1.0, atol=1e-6)
    np.testing.assert_allclose(s.sel(xy="y").values, 1 / np.sqrt(2), atol=1e-6)
    np.testing.assert_allclose(modulator_truth_r(pred, truth)["r"].values, 1.0, atol=1e-6)
    flat = {sid: p.assign(gain=p["gain"] * 0 + 2.0) for sid, p in pred.items()}
    assert np.isnan(modulator_truth_r(flat, truth)["r"].values).all()


def test_truth_scores_bad_inputs(tiny_sessions):
    sessions, truth = tiny_sessions
    pred = _as_prediction(truth, _test_idx(sessions))
    with pytest.raises(js.DataError, match="no ground truth for session"):
        rates_truth_r(pred, {})
    wrong = {sid: p.isel(neuron=slice(0, 3)) for sid, p in pred.items()}
    with pytest.raises(js.DataError, match="predicted rates has shape"):
        rates_truth_r(wrong, truth)


@pytest.mark.slow
def test_session_truth_metrics_of_a_fit(tiny_sessions):
    """A model with shifter and modulator, one epoch: every score is finite and in [-1, 1];
    the predictions are the model's (its rates equal MultiFitResult.predict)."""
    from jaxsel.measures import session_predictions, session_truth_metrics
    from jaxsel.models import ModelConfig, SessionModelConfig
    from jaxsel.train import Config, TrainConfig, fit_sessions

    sessions, truth = tiny_sessions
    model = ModelConfig(
        layers=2,
        hidden_channels=4,
        input_kern=5,
        hidden_kern=3,
        sessions=SessionModelConfig(behavior="modulator", shifter=True),
    )
    cfg = Config("tiny", model, TrainConfig(batch_size=32, max_epochs=1, progress=False))
    res = fit_sessions(cfg, sessions, seed=0)
    m = session_truth_metrics(res, sessions, truth)
    assert list(m["session"].values) == list(sessions)
    for v in ("rates_truth_r_median", "shifter_truth_r", "modulator_truth_r"):
        assert np.isfinite(m[v].values).all() and (np.abs(m[v].values) <= 1).all(), v
    sid = next(iter(sessions))
    pred = session_predictions(res, {sid: sessions[sid]})[sid]
    ds = sessions[sid].isel(trial=pred["trial"].values)
    direct = res.predict(
        sid,
        ds["images"].values,
        behavior=ds["behavior"].values,
        pupil_center=ds["pupil_center"].values,
    )
    np.testing.assert_allclose(pred["rates"].values, direct, rtol=1e-5)


# ------------------------------------------------------------------ the pipeline

TINY_TWIN = {
    "n_sessions": 2,
    "n_neurons": 12,
    "shape": [16, 24],
    "n_train": 64,
    "n_validation": 16,
    "n_test": 6,
    "test_repeats": 2,
}
TINY_TRAIN = {
    "models": ["ln", "small"],  # ln has no shared core: skipped with a note
    "overrides": {
        "max_epochs": 1,
        "batch_size": 32,
        "layers": 2,
        "hidden_channels": 4,
        "sessions": {"behavior": "modulator", "shifter": True},
    },
}


def test_pipeline_on_a_tiny_session_twin(tmp_path):
    """data/train/evaluate over 2 simulated sessions: finite truth metrics per session, the
    single-session stages report why they do not apply, and a rerun skips every stage."""
    from jaxsel.pipeline import config_from_dict, run_pipeline

    cfg = config_from_dict(
        {
            "run": {"name": "s", "out": str(tmp_path / "run"), "progress": False},
            "data": {"twin": TINY_TWIN},
            "train": TINY_TRAIN,
        }
    )
    out = run_pipeline(cfg, echo=False)
    st = out["status"]
    assert st["data"] == st["select"] == st["train"] == st["evaluate"] == st["report"] == "done"
    for s in ("information", "mei", "gabor", "figures"):
        assert st[s].startswith("not applicable: multi-session run"), st[s]
    m = out["metrics"]
    sids = [f"twin_seed0_session{i}" for i in range(2)]
    assert m["n_sessions"] == 2 and m["n_neurons"] == 24
    keys = [f"session_corr_to_truth_median_{s}" for s in sids]
    keys += ["session_corr_to_truth_median_min", "shifter_truth_r", "modulator_truth_r"]
    keys += [f"small_test_corr_median_{s}" for s in sids]
    for k in keys:
        assert np.isfinite(m[k]) and -1 <= m[k] <= 1, k
    assert m["session_corr_to_truth_median_min"] == min(m[k] for k in keys[:2])
    assert "ln_best_val_corr" not in m
    assert (tmp_path / "run" / "session_truth.nc").is_file()
    assert (tmp_path / "run" / "report.html").is_file()
    again = run_pipeline(cfg, echo=False)["status"]
    assert again["data"] == again["select"] == again["train"] == again["evaluate"] == "skipped"


def test_pipeline_reads_a_folder_of_static_sessions(tmp_path, tiny_sessions):
    """source = "sessions": the folder written by save_sessions, one model over both; no
    ground truth, so no truth metrics."""
    from jaxsel.data import save_sessions
    from jaxsel.pipeline import config_from_dict, run_pipeline

    sessions, _ = tiny_sessions
    save_sessions(sessions, tmp_path / "sessions")
    train = {**TINY_TRAIN, "overrides": {**TINY_TRAIN["overrides"], "sessions": {}}}
    cfg = config_from_dict(
        {
            "run": {
                "name": "r",
                "out": str(tmp_path / "run"),
                "progress": False,
                "stages": ["data", "train", "evaluate"],
            },
            "data": {"source": "sessions", "path": str(tmp_path / "sessions")},
            "train": train,
        }
    )
    out = run_pipeline(cfg, echo=False)
    assert out["status"]["evaluate"] == "done"
    m = out["metrics"]
    assert m["n_sessions"] == 2
    for sid in sessions:
        assert np.isfinite(m[f"small_test_corr_median_{sid}"])
    assert "shifter_truth_r" not in m


@pytest.mark.parametrize(
    ("data", "train", "match"),
    [
        ({"source": "sessions"}, {}, r"^key 'data\.path' is empty but data\.source = 'sessions'"),
        (
            {"source": "sessions", "path": "/nonexistent/sessions"},
            {},
            r"^key 'data\.path': /nonexistent/sessions does not exist",
        ),
        (
            {"source": "sessions", "sessions": ["/nonexistent/a"]},
            {},
            r"^key 'data\.sessions\[0\]'",
        ),
        (
            {"twin": {"n_sessions": 2}},
            {"overrides": {"sessions": {"shifterr": True}}},
            r"unknown key 'train\.overrides\.sessions\.shifterr'.*did you mean 'shifter'",
        ),
        (
            {"twin": {"n_sessions": 2}},
            {"overrides": {"sessions": {"behavior": "gain"}}},
            r"train\.overrides\.sessions.*behavior.*'gain'",
        ),
    ],
)
def test_bad_session_configs_name_the_key(tmp_path, data, train, match):
    from jaxsel.pipeline import config_from_dict, run_pipeline

    def load_and_run():  # the error comes at load time or before the run
        cfg = config_from_dict(
            {"run": {"out": str(tmp_path / "run")}, "data": data, "train": train or {}}
        )
        run_pipeline(cfg, echo=False)

    with pytest.raises(js.ConfigError, match=match) as e:
        load_and_run()
    assert "\n" not in str(e.value)
    assert not (tmp_path / "run").exists()  # checked before anything runs


@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_n_sessions_below_one_names_the_key(value):
    from jaxsel.pipeline import config_from_dict

    with pytest.raises(js.ConfigError, match=r"data\.twin\.n_sessions") as e:
        config_from_dict({"data": {"twin": {"n_sessions": value}}})
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["multisession_twin", "sensorium2022"])
def test_session_experiment_configs_validate(name):
    from pathlib import Path

    from jaxsel.pipeline import load_config

    root = Path(__file__).resolve().parents[1] / "experiments"
    cfg = load_config(root / f"{name}.toml")
    assert cfg.train.overrides["sessions"]["shifter"] is True
    assert (cfg.data.source == "sessions") == (name == "sensorium2022")
