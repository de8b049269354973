"""Twin presets (clean / sensorium / allen), the ZIG observation model and loss, and the
truth's own single-trial correlation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxsel import ConfigError, DataError
from jaxsel.data import TWIN_PRESETS, TwinConfig, simulate, twin_config
from jaxsel.data._observation import noise_variance, sample_zig, zig_probability
from jaxsel.measures import evaluate, pearson, truth_correlation
from jaxsel.train import (
    TrainConfig,
    fit_zig_parameters,
    make_hparams,
    named_config,
    zig_loglik,
    zig_loss,
    zig_parameters,
)

RNG = np.random.default_rng
TINY = {"n_neurons": 8, "shape": (16, 16), "n_train": 40, "n_validation": 6, "n_test": 5}


def _arrays(ds):
    return {k: ds[k].values for k in ("images", "responses", "image_id", "tier")}


def test_clean_is_the_default_bit_for_bit():
    a, ta = simulate(0, **TINY)
    b, tb = simulate(seed=0, preset="clean", **TINY)
    c, _ = simulate(cfg=TwinConfig(**TINY))
    assert twin_config() == TwinConfig() and TWIN_PRESETS["clean"] == {}
    for other in (b, c):
        for k, v in _arrays(a).items():
            np.testing.assert_array_equal(v, _arrays(other)[k])
    assert set(ta.params) == set(tb.params) and "zig_gate" not in ta.params


def test_overrides_apply_on_top_of_a_preset():
    cfg = twin_config("sensorium", n_test=3, zig_shape=2.0)
    assert (cfg.preset, cfg.observation, cfg.n_test, cfg.zig_shape) == ("sensorium", "zig", 3, 2.0)
    assert cfg.n_train == TWIN_PRESETS["sensorium"]["n_train"]


@pytest.mark.parametrize(
    "call",
    [
        lambda: simulate(0, preset="sensorum"),
        lambda: twin_config("Allen"),
        lambda: TwinConfig(preset="nope"),
    ],
)
def test_unknown_preset_names_the_valid_ones(call):
    with pytest.raises(ConfigError, match="valid presets: clean, sensorium, allen"):
        call()


def test_bad_preset_arguments():
    with pytest.raises(ConfigError, match="did you mean 'n_neurons'"):
        twin_config("clean", n_neuron=3)
    with pytest.raises(ConfigError, match="preset or cfg"):
        simulate(0, preset="clean", cfg=TwinConfig())
    with pytest.raises(ConfigError, match="observation"):
        TwinConfig(observation="calcium")
    with pytest.raises(ConfigError, match="saturation_range"):
        TwinConfig(saturation_range=(2.0, 1.0))


def test_zig_samples_have_the_rate_as_mean_and_the_closed_form_zeros():
    rng = np.random.default_rng(0)
    rates = np.tile(np.array([0.05, 0.5, 2.0, 8.0]), (40000, 1))
    gate, shape = np.array([1.0, 2.0, 1.0, 4.0]), np.array([0.7, 1.0, 2.0, 1.5])
    y = sample_zig(rates, gate, shape, rng)
    se = np.sqrt(noise_variance(rates, {"zig_gate": gate, "zig_shape": shape}).mean(0) / 40000)
    assert np.all(np.abs(y.mean(0) - rates[0]) < 4 * se)
    np.testing.assert_allclose((y == 0).mean(0), 1 - zig_probability(rates[0], gate), atol=0.01)
    np.testing.assert_allclose(
        y.var(0), noise_variance(rates[:1], {"zig_gate": gate, "zig_shape": shape})[0], rtol=0.1
    )


def test_sensorium_tiny_population_is_calcium_like_with_the_truth_as_mean():
    ds, twin = simulate(
        1, preset="sensorium", n_train=300, **{k: v for k, v in TINY.items() if k != "n_train"}
    )
    r = ds["responses"].values
    assert 0.4 < (r == 0).mean() < 0.9 and r.min() == 0  # many exact zeros
    pos = r[r > 0]
    assert stats.skew(pos) > 1 and not np.allclose(pos, np.round(pos))  # skewed, continuous
    rates = twin.rates(ds["images"].values)
    se = np.sqrt(noise_variance(rates, twin.params).sum(0)) / len(r)
    assert np.all(np.abs(r.mean(0) - rates.mean(0)) < 5 * se + 1e-6)


def test_allen_trial_structure_and_bounded_tail():
    ds, twin = simulate(0, preset="allen", n_neurons=6, shape=(16, 16))
    ids, n = np.unique(ds["image_id"].values, return_counts=True)
    assert len(ids) == 118 and np.all(n == 50)
    tiers = {
        t: len(np.unique(ds["image_id"].values[ds["tier"].values == t]))
        for t in ("train", "validation", "test")
    }
    assert tiers == {"train": 83, "validation": 12, "test": 23}
    r = ds["responses"].values
    assert np.array_equal(r, np.round(r)) and np.percentile(r, 99) <= 10 and r.mean() < 3


def test_truth_correlation_is_the_pearson_of_rates_and_test_trials():
    ds, twin = simulate(2, preset="sensorium", **TINY)
    tc = truth_correlation(ds, twin)
    test = ds["tier"].values == "test"
    ref = pearson(twin.rates(ds["images"].values[test]), ds["responses"].values[test])
    np.testing.assert_allclose(tc.values, ref, rtol=1e-5)
    assert list(tc["neuron_id"].values) == list(range(8)) and "kind" in tc.coords
    sub = ds.isel(neuron=[5, 2])
    np.testing.assert_allclose(truth_correlation(sub, twin).values, ref[[5, 2]], rtol=1e-5)
    with pytest.raises(DataError, match="twin"):
        truth_correlation(ds, "twin")


def test_zig_loglik_matches_scipy_and_integrates_to_one():
    r = np.array([0.0, 0.05, 0.3, 1.0, 4.0])
    theta, k, loc, q = 0.8, 1.7, 0.1, 0.6
    got = np.asarray(zig_loglik(jnp.asarray(r), theta, k, loc, q))
    ref = np.where(
        r <= loc,
        np.log(1 - q) - np.log(loc),
        np.log(q) + stats.gamma.logpdf(r - loc, k, scale=theta),
    )
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    grid = np.linspace(0, 60, 600001)
    dens = np.exp(np.asarray(zig_loglik(jnp.asarray(grid), theta, k, loc, q)))
    assert np.trapezoid(dens, grid) == pytest.approx(1.0, abs=2e-3)


def test_zig_loss_is_minimal_at_the_true_mean_with_finite_gradients():
    gate, shape, loc = 1.5, 1.2, 1e-4
    y = sample_zig(np.full((20000, 1), 2.0), np.array([gate]), np.array([shape]), RNG(3))[:, 0]

    def loss(f, r):
        return zig_loss(f, r, zig_gate=gate, zig_shape=shape, zig_loc=loc)

    @jax.jit  # one compilation (eager ops compile one by one)
    def check(f_grid, y, f, r):
        theta, q = zig_parameters(jnp.float32(2.0), gate, shape, loc)
        return (
            loss(f_grid[:, None], y[None]).mean(1),
            jax.grad(lambda f: jnp.sum(loss(f, r)))(f),
            (1 - q) * loc / 2 + q * (loc + shape * theta),  # the mean of the ZIG at f = 2
        )

    f_grid = np.linspace(1.0, 3.0, 41)
    f = jnp.repeat(jnp.array([1e-6, 1.0, 1e3]), 3)  # tiny, moderate, huge rates
    r = jnp.tile(jnp.array([0.0, 0.5, 3.0]), 3)  # a zero and two positive responses
    losses, grads, mean = check(jnp.asarray(f_grid), jnp.asarray(y), f, r)
    assert abs(f_grid[int(np.argmin(np.asarray(losses)))] - 2.0) < 0.15
    assert float(mean) == pytest.approx(2.0, rel=1e-5)
    assert np.all(np.isfinite(np.asarray(grads)))


def test_fit_zig_parameters_recovers_a_constant_rate_neuron():
    rng = np.random.default_rng(4)
    y = sample_zig(np.full((50000, 2), [1.0, 3.0]), np.array([2.0, 1.0]), np.array([1.5, 3.0]), rng)
    p = fit_zig_parameters(y)
    np.testing.assert_allclose(p["zig_gate"], [2.0, 1.0], rtol=0.05)
    np.testing.assert_allclose(p["zig_shape"], [1.5, 3.0], rtol=0.1)
    scaled = fit_zig_parameters(10 * y)
    np.testing.assert_allclose(scaled["zig_gate"], 10 * p["zig_gate"], rtol=1e-5)
    np.testing.assert_allclose(scaled["zig_shape"], p["zig_shape"], rtol=1e-5)


def test_zig_loss_config_and_its_limits():
    assert TrainConfig(loss="zig").loss == "zig"
    with pytest.raises(ConfigError, match="did you mean 'zig'"):
        TrainConfig(loss="zgi")
    cfg = named_config("ln").replace(loss="zig")
    with pytest.raises(ConfigError, match="fit_many"):
        make_hparams(cfg, 100)
    hp = make_hparams(cfg, 100, np.abs(np.random.default_rng(0).normal(size=(50, 3))))
    assert hp["zig_gate"].shape == (3,)


def test_evaluate_reports_the_zig_loglik_of_the_truth():
    ds, twin = simulate(0, preset="sensorium", **TINY)
    truth = (
        jax.jit(lambda p, x: js_rates(p, x)),
        {k: jnp.asarray(v) for k, v in twin.params.items()},
    )
    ev = evaluate(truth, ds, loss="zig")
    assert ev.attrs["loss"] == "zig"
    np.testing.assert_array_equal(ev["loglik"].values, ev["zig_loglik"].values)
    test = ds["tier"].values == "test"
    r = ds["responses"].values[test]
    f = twin.rates(ds["images"].values[test])
    par = fit_zig_parameters(ds["responses"].values[ds["tier"].values == "train"])
    th, q = zig_parameters(f, par["zig_gate"], par["zig_shape"], par["zig_loc"])
    ref = np.asarray(zig_loglik(r, th, par["zig_shape"], par["zig_loc"], q)).mean(0)
    np.testing.assert_allclose(ev["zig_loglik"].values, ref, rtol=1e-4)
    assert evaluate(truth, ds).attrs["loss"] == "poisson"
    with pytest.raises(ConfigError, match="loss"):
        evaluate(truth, ds, loss="gamma")


def js_rates(params, images):
    from jaxsel.data import twin_rates

    return twin_rates(params, images)


def test_cli_simulate_preset_round_trip(tmp_path):
    from jaxsel.cli._main import main
    from jaxsel.data import load_static, load_twin

    out = tmp_path / "twin"
    args = ["--neurons", "5", "--train", "30", "--validation", "4", "--test", "3", "--repeats", "2"]
    assert main(["simulate", "--out", str(out), "--preset", "sensorium", "--seed", "2", *args]) == 0
    ds = load_static(out / "static")
    ref, twin = simulate(
        2, preset="sensorium", n_neurons=5, n_train=30, n_validation=4, n_test=3, test_repeats=2
    )
    for k, v in _arrays(ref).items():
        np.testing.assert_array_equal(ds[k].values, v)
    gt = load_twin(out / "ground_truth")
    assert gt.meta["config"]["preset"] == "sensorium"
    np.testing.assert_array_equal(gt.params["zig_gate"], twin.params["zig_gate"])


def test_cli_simulate_unknown_preset(tmp_path, capsys):
    from jaxsel.cli._main import main

    assert main(["simulate", "--out", str(tmp_path / "x"), "--preset", "sensorum"]) != 0
    err = capsys.readouterr().err
    assert "did you mean 'sensorium'" in err and "valid presets: clean, sensorium, allen" in err
    assert not (tmp_path / "x").exists()


def test_run_config_twin_preset():
    import tomllib
    from dataclasses import asdict, fields

    from jaxsel.pipeline import config_from_dict, to_toml

    cfg = config_from_dict({"data": {"twin": {"preset": "allen", "n_neurons": 7}}})
    assert (cfg.data.twin.preset, cfg.data.twin.train_repeats, cfg.data.twin.n_neurons) == (
        "allen",
        50,
        7,
    )
    assert config_from_dict(tomllib.loads(to_toml(cfg))) == cfg
    default = config_from_dict({}).data.twin  # TwinConfig's fields (+ the run's n_sessions)
    assert {f.name: getattr(default, f.name) for f in fields(TwinConfig)} == asdict(TwinConfig())
    assert default.n_sessions == 1
    with pytest.raises(ConfigError, match=r"data\.twin\.preset.*valid presets: clean, sensorium"):
        config_from_dict({"data": {"twin": {"preset": "sensorum"}}})
    with pytest.raises(ConfigError, match="did you mean 'zig_gate'"):
        config_from_dict({"data": {"twin": {"preset": "sensorium", "zig_gat": 1.0}}})


@pytest.mark.slow  # a fit: 20-60 s on the shared 2-core machine
def test_fit_with_the_zig_loss_and_evaluate_under_it():
    from jaxsel import fit

    ds, twin = simulate(0, preset="sensorium", **TINY)
    res = fit(named_config("ln").replace(loss="zig", max_epochs=1, progress=False), ds, seed=0)
    loss = res.history["loss"].values
    assert loss.size == 1 and np.all(np.isfinite(loss))
    ev = evaluate(res, ds, truth=twin)
    assert ev.attrs["loss"] == "zig" and np.all(np.isfinite(ev["zig_loglik"].values))
