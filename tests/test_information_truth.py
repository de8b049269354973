"""Single-neuron information against truth: exact information under Poisson and gamma-Poisson
noise vs closed forms and a SciPy reference, the oriented-patch set's informative subset on
a small twin, the twin as its own model vs shuffled labels, and the pipeline stage."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.stats

import jaxsel as js
from jaxsel import ConfigError, DataError
from jaxsel.data import oriented_patch_set, patch_alignment
from jaxsel.measures import (
    GammaPoissonNoise,
    PoissonNoise,
    information_table,
    poisson_information,
    rank_correlation,
    rate_information,
    twin_noise,
)


def _zero_vs_rate_bits(q: float) -> float:
    """Closed form: class 0 always gives 0, class 1 gives 0 with probability q (prior 1/2):
    I = -P0 ln P0 + q ln q / 2 + (1 - q) ln 2 / 2 nats, P0 = (1 + q) / 2."""
    p0 = (1 + q) / 2
    return (-p0 * math.log(p0) + q * math.log(q) / 2 + (1 - q) * math.log(2) / 2) / math.log(2)


@pytest.mark.parametrize("lam", [0.5, 3.0, 12.0])
@pytest.mark.parametrize("shape", [math.inf, 0.7, 3.0])
def test_information_of_a_silent_and_a_firing_class_matches_the_closed_form(lam, shape):
    rates = np.array([[0.0], [lam]])
    if math.isinf(shape):
        noise, q = PoissonNoise(), math.exp(-lam)
    else:
        noise, q = GammaPoissonNoise(np.array([shape])), (shape / (shape + lam)) ** shape
    got = float(rate_information(rates, [0, 1], noise)[0])
    assert got == pytest.approx(_zero_vs_rate_bits(q), abs=2e-5)


def _scipy_reference(rates, labels, shape) -> np.ndarray:
    """I(s; R) = sum_s P(s) KL(P(R|s) || P(R)) by direct summation of scipy's pmfs
    (float64), per neuron."""
    k = np.arange(6000)[:, None]
    classes = np.unique(labels)
    prior = np.array([np.mean(labels == c) for c in classes])
    out = []
    for j in range(rates.shape[1]):
        a, r = shape[j], rates[:, j][None]
        logp = (
            scipy.stats.poisson.logpmf(k, r)
            if np.isinf(a)
            else (scipy.stats.nbinom.logpmf(k, a, a / (a + r)))
        )
        p_ks = np.stack([np.exp(logp[:, labels == c]).mean(1) for c in classes], 1)
        p_k = (p_ks @ prior)[:, None]
        ok = (p_ks > 0) & (p_k > 1e-300)  # float64 denormals: P(k) may underflow
        ratio = np.where(ok, p_ks, 1.0) / np.where(ok, p_k, 1.0)
        out.append((np.where(ok, p_ks * np.log(ratio), 0.0).sum(0) @ prior) / math.log(2))
    return np.array(out)


def test_information_matches_a_scipy_reference_and_the_poisson_estimator():
    rng = np.random.default_rng(3)
    rates = rng.gamma(1.0, 4.0, (30, 5))
    labels = rng.integers(0, 3, 30)  # three classes, unequal sizes
    shape = np.array([np.inf, 0.8, 2.0, 10.0, np.inf])
    got = rate_information(rates, labels, GammaPoissonNoise(shape))
    np.testing.assert_allclose(got.values, _scipy_reference(rates, labels, shape), atol=5e-5)
    assert got.attrs["units"] == "bit" and got.attrs["min_mass"] > 1 - 1e-4
    # near-silent vs very high rates: probabilities underflow to denormals in float32
    extreme = np.concatenate([rng.uniform(0.01, 0.1, (20, 3)), rng.uniform(50, 400, (20, 3))])
    extreme[:, 2] = rng.uniform(0.01, 400, 40)  # and one uninformative neuron
    two = np.r_[np.zeros(20, int), np.ones(20, int)]
    shape = np.array([5.0, np.inf, 2.0])
    got = rate_information(extreme, two, GammaPoissonNoise(shape)).values
    np.testing.assert_allclose(got, _scipy_reference(extreme, two, shape), atol=5e-5)
    assert got[2] < 0.1
    # Poisson: the existing estimator and the default model agree
    np.testing.assert_allclose(
        rate_information(rates, labels).values,
        poisson_information(rates, labels).values,
        atol=2e-5,
    )
    np.testing.assert_allclose(
        rate_information(rates, labels, twin_noise(np.full(5, np.inf))).values,
        poisson_information(rates, labels).values,
        atol=2e-5,
    )


def test_bad_information_inputs_raise_naming_the_field():
    with pytest.raises(DataError, match=r"noise\.shape"):
        rate_information(np.ones((4, 3)), [0, 1, 0, 1], GammaPoissonNoise(np.ones(2)))
    with pytest.raises(DataError, match="rates"):
        rate_information(-np.ones((4, 3)), [0, 1, 0, 1])
    with pytest.raises(DataError, match="shape"):
        GammaPoissonNoise(np.array([1.0, 0.0]))
    with pytest.raises(DataError, match="reference"):
        information_table({"a": np.ones((4, 2))}, [0, 1, 0, 1])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n_per_class": 0}, "n_per_class"),
        ({"sf": (0.3, 0.1)}, "sf"),
        ({"contrast": (0.5, 2.0)}, "contrast"),
        ({"aperture": -1.0}, "aperture"),
        ({"center": (100.0, 5.0)}, "center"),
        ({"theta": float("nan")}, "theta"),
    ],
)
def test_bad_stimulus_set_arguments_raise(kwargs, field):
    args = {"n_per_class": 3, **kwargs}
    with pytest.raises(DataError, match=field):
        oriented_patch_set((36, 64), **args)


@pytest.fixture(scope="module")
def twin():
    _, tw = js.simulate(n_neurons=60, n_train=300, n_validation=10, n_test=4, seed=1)
    return tw


def _truth(twin, stim):
    noise = twin_noise(twin.params["dispersion"])
    return rate_information(twin.rates(stim["images"].values), stim["label"].values, noise).values


def test_oriented_patch_set_has_the_promised_informative_subset(twin):
    stim = oriented_patch_set(twin.shape, 40, seed=0)
    assert stim["images"].shape == (80, 1, 36, 64) and stim["label"].values.sum() == 40
    p = twin.params
    info = _truth(twin, stim)
    align = patch_alignment(stim, p["x0"], p["y0"], p["sigma"], p["theta"])
    silent = twin.kinds == "unresponsive"
    assert info[silent].max() < 1e-4  # a constant rate carries nothing
    informative = info >= 2 / 3
    assert informative.sum() >= 3
    assert align[informative].min() > 0.5  # only aligned neurons in the aperture inform
    far = (align < 0.2) & ~silent  # oblique or outside the aperture
    assert far.sum() >= 10 and info[far].max() < 0.25


def test_twin_as_model_recovers_the_truth_and_shuffled_labels_do_not(twin):
    truth = _truth(twin, oriented_patch_set(twin.shape, 40, seed=0))
    other = oriented_patch_set(twin.shape, 40, seed=1)  # an independent draw of the set
    est = _truth(twin, other)
    assert rank_correlation(est, truth) >= 0.9
    assert abs(int((est >= 2 / 3).sum()) - int((truth >= 2 / 3).sum())) <= 2
    noise = twin_noise(twin.params["dispersion"])
    shuffled = other["label"].values[np.random.default_rng(0).permutation(80)]
    bad = rate_information(twin.rates(other["images"].values), shuffled, noise).values
    assert rank_correlation(bad, truth) < 0.9
    assert (bad >= 2 / 3).sum() == 0


def test_information_config_errors_name_the_key():
    from jaxsel.pipeline import config_from_dict

    for section, key in (
        ({"threshold": 1.5}, "information.threshold"),
        ({"n_per_class": 1}, "information.n_per_class"),
        ({"input_noise": [0.0, -5.0]}, "information.input_noise"),
        ({"sf": [0.3, 0.1]}, "information.sf"),
        ({"aperture_fraction": 0.0}, "information.aperture_fraction"),
    ):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            config_from_dict({"information": section})


TINY = {
    "data.twin.n_neurons": 20,
    "data.twin.n_train": 200,
    "data.twin.n_validation": 40,
    "data.twin.n_test": 12,
    "data.twin.test_repeats": 4,
    "train.models": ["small"],
    "train.overrides": {"max_epochs": 2, "progress": False},
    "train.per_model": {"small": {"hidden_channels": 4, "layers": 2}},
    "information.n_per_class": 20,
    "information.input_noise": [40.0],
    "run.stages": ["data", "select", "train", "information"],
    "run.progress": False,
}


@pytest.mark.slow  # trains a tiny CNN (~15 s)
def test_information_stage_on_the_tiny_twin(tmp_path):
    from jaxsel.pipeline import demo_config, open_nc, run_pipeline

    cfg = demo_config(overrides={**TINY, "run.out": str(tmp_path / "run")})
    res = run_pipeline(cfg, echo=False)
    assert res["status"]["information"] == "done"
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for key in (
        "information_truth_spearman",
        "information_untrained_spearman",
        "information_shuffled_spearman",
    ):
        assert -1 <= m[key] <= 1, key
    n_sel = m["n_selected"]
    for key in ("informative_neurons_true", "informative_neurons_estimated"):
        assert 0 <= m[key] <= n_sel
    tab = open_nc(tmp_path / "run" / "information.nc")
    assert list(tab["source"].values) == ["true", "estimated", "untrained"]
    assert tab["information"].dims == ("neuron", "source") and tab.sizes["neuron"] == n_sel
    info = tab["information"].values
    assert np.isfinite(info).all() and (info >= 0).all() and (info <= 1).all()
    noisy = open_nc(tmp_path / "run" / "information_noise.nc")
    assert list(noisy["input_noise"].values) == [0.0, 40.0]
    np.testing.assert_allclose(noisy["information"].sel(input_noise=0.0).values, info)


def test_information_stage_is_not_applicable_without_a_twin(tmp_path):
    from jaxsel._errors import MissingInput
    from jaxsel.pipeline import demo_config
    from jaxsel.pipeline._context import Context
    from jaxsel.pipeline._information_stage import stage_information
    from jaxsel.pipeline._rundir import RunDir

    cfg = demo_config(overrides={"data.source": "arrays", "data.path": str(tmp_path)})
    rd = RunDir(tmp_path / "run", echo=False)
    try:
        with pytest.raises(MissingInput, match="no ground truth"):
            stage_information(Context(cfg, rd))
    finally:
        rd.close()


def test_information_stage_is_not_applicable_to_a_zig_twin(tmp_path):
    from jaxsel._errors import MissingInput
    from jaxsel.pipeline import demo_config
    from jaxsel.pipeline._context import Context
    from jaxsel.pipeline._information_stage import stage_information
    from jaxsel.pipeline._rundir import RunDir

    _, zig = js.simulate(
        n_neurons=4, n_train=20, n_validation=2, n_test=2, shape=(16, 16), observation="zig"
    )
    rd = RunDir(tmp_path / "run", echo=False)
    try:
        ctx = Context(demo_config(), rd)
        ctx.cache["twin"] = zig
        with pytest.raises(MissingInput, match="zero-inflated gamma"):
            stage_information(ctx)
    finally:
        rd.close()
