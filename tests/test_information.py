"""Mutual information: closed forms and float64 references for the Poisson sum, the
repeat-based estimator at 50 repeats, ranked curves, counts, the sweep table and figures."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from jaxsel._errors import DataError
from jaxsel.measures._information import poisson_information, repeat_information
from jaxsel.measures._information_summaries import (
    SWEEP_COLUMNS,
    informative_count,
    ranked_information,
    save_sweep_csv,
    sweep_table,
)
from jaxsel.viz._measure_figures import informative_counts_figure, ranked_information_figure


def png_ok(path):
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"


def h2(p):
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def closed_form_zero_vs(lam):
    """Rates 0 and lam, equal priors: any spike reveals s = 1, R = 0 leaves posterior
    P(s=1 | R=0) = e^-lam / (1 + e^-lam); I = 1 - P(R=0) h2(that)."""
    q = np.exp(-lam)
    return 1.0 - (1 + q) / 2 * h2(q / (1 + q))


def reference_sum(l0, l1, p1=0.5):
    k = np.arange(0, 4000)
    a, b = stats.poisson.pmf(k, l0), stats.poisson.pmf(k, l1)
    m = (1 - p1) * a + p1 * b

    def H(x):
        x = x[x > 0]
        return -np.sum(x * np.log2(x))

    return H(m) - (1 - p1) * H(a) - p1 * H(b)


def test_poisson_information_equals_closed_form_for_two_rates():
    lams = np.array([0.05, 0.5, 1.0, 2.0, 4.0, 10.0])
    rates = np.stack([np.zeros_like(lams), lams])  # image 0: rate 0, image 1: lam
    got = poisson_information(rates, np.array([0, 1])).values
    ref = np.array([closed_form_zero_vs(x) for x in lams])
    np.testing.assert_allclose(got, ref, atol=1e-4)
    assert np.abs(got - ref).max() < 1e-5


@pytest.mark.parametrize(
    ("l0", "l1", "p1"),
    [(1, 3, 0.5), (2, 8, 0.5), (5, 6, 0.5), (20, 40, 0.5), (3, 9, 0.25), (80, 120, 0.5)],
)
def test_poisson_information_equals_float64_reference(l0, l1, p1):
    n1 = int(p1 * 8)
    rates = np.r_[np.full(8 - n1, l0), np.full(n1, l1)][:, None]
    labels = np.r_[np.zeros(8 - n1, int), np.ones(n1, int)]
    got = poisson_information(rates, labels).item()
    assert abs(got - reference_sum(l0, l1, p1)) <= 1e-4


def test_poisson_information_limits_and_priors():
    same = poisson_information(np.array([[3.0], [3.0]]), [0, 1]).item()
    far = poisson_information(np.array([[0.1], [60.0]]), [0, 1]).item()
    assert same == pytest.approx(0.0, abs=1e-6)
    assert far == pytest.approx(1.0, abs=1e-4) and far <= 1.0
    # explicit uniform prior = empirical prior for balanced classes
    r = np.array([[1.0, 2.0], [4.0, 2.5], [2.0, 1.0], [5.0, 9.0]])
    lab = np.array([0, 1, 0, 1])
    np.testing.assert_allclose(
        poisson_information(r, lab).values,
        poisson_information(r, lab, prior=[0.5, 0.5]).values,
        atol=1e-6,
    )
    # three classes: bounded by log2(3)
    r3 = np.array([[0.0], [30.0], [90.0]])
    assert poisson_information(r3, [0, 1, 2]).item() == pytest.approx(np.log2(3), abs=1e-3)


def test_per_neuron_labels_and_chunking_match_single_neuron_calls():
    rng = np.random.default_rng(0)
    rates = rng.gamma(2.0, 2.0, (20, 9))
    labels = rng.integers(0, 2, (20, 9))
    labels[0], labels[1] = 0, 1
    got = poisson_information(rates, labels, max_chunk_elements=2000).values
    ref = [poisson_information(rates[:, [n]], labels[:, n]).item() for n in range(9)]
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_repeat_estimate_within_005_bit_at_50_repeats():
    rng = np.random.default_rng(0)
    lam0 = np.array([1.0, 2.0, 5.0, 0.5, 3.0, 10.0, 0.2, 4.0])
    lam1 = np.array([3.0, 8.0, 6.0, 4.0, 3.0, 20.0, 2.0, 12.0])
    n_img = 20  # per class
    rates = np.concatenate([np.tile(lam0, (n_img, 1)), np.tile(lam1, (n_img, 1))])
    labels = np.r_[np.zeros(n_img, int), np.ones(n_img, int)]
    counts = rng.poisson(rates[:, None, :], (2 * n_img, 50, len(lam0))).astype(float)
    est = repeat_information(counts, labels)
    true = poisson_information(rates, labels).values
    err = np.abs(est["information"].values - true)
    assert err.max() < 0.05, err
    assert (est["n_trials"].values == 2 * n_img * 50).all()


def test_bias_correction_reduces_bias_on_average():
    rng = np.random.default_rng(1)
    n_neu = 200  # same rates, many replicates
    rates = np.r_[np.full(10, 2.0), np.full(10, 3.5)][:, None] * np.ones((1, n_neu))
    labels = np.r_[np.zeros(10, int), np.ones(10, int)]
    counts = rng.poisson(rates[:, None, :], (20, 10, n_neu)).astype(float)
    est = repeat_information(counts, labels)
    true = poisson_information(rates[:, :1], labels).item()
    plug_bias = est["plugin"].mean().item() - true
    corr_bias = est["information"].mean().item() - true
    assert plug_bias > 0.01 and abs(corr_bias) < 0.3 * plug_bias, (plug_bias, corr_bias)


def test_repeat_information_ragged_binned_and_bad_inputs():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (10, 30, 3))
    x[:5] += 3.0  # class 1 responds more
    x[0, 20:] = np.nan
    labels = np.r_[np.ones(5, int), np.zeros(5, int)]
    est = repeat_information(x, labels, bins=4, clip=True)
    # a median split errs with p = Phi(-1.5): I of the binned response is ~ 1 - h2(p)
    expect = 1 - h2(stats.norm.cdf(-1.5))
    np.testing.assert_allclose(est["information"].values, expect, atol=0.08)
    assert (est["information"].values <= 1).all()
    assert est["n_trials"].values[0] == 290
    with pytest.raises(DataError, match="integer counts"):
        repeat_information(x, labels)
    with pytest.raises(DataError, match="labels"):
        repeat_information(np.abs(np.round(x[..., :1])), labels[:-1])
    with pytest.raises(DataError, match="non-negative"):
        poisson_information(np.array([[-1.0], [1.0]]), [0, 1])
    with pytest.raises(DataError, match="prior"):
        poisson_information(np.array([[1.0], [2.0]]), [0, 1], prior=[0.2, 0.2])


def test_ranked_counts_and_sweep_table(tmp_path):
    info = np.array([[0.9, 0.1, 0.7, 0.2], [0.5, 0.8, 0.95, 0.0], [0.1, 0.2, 0.3, 0.4]])
    rk = ranked_information(info)
    np.testing.assert_allclose(rk["mean"].values, np.sort(info, 1)[:, ::-1].mean(0))
    np.testing.assert_allclose(rk["sd"].values, np.sort(info, 1)[:, ::-1].std(0))
    cnt = informative_count(info)
    np.testing.assert_array_equal(cnt["counts"], [2, 2, 0])
    assert cnt["mean"] == pytest.approx(4 / 3)
    assert cnt["sem"] == pytest.approx(np.std([2, 2, 0], ddof=1) / np.sqrt(3))
    rng = np.random.default_rng(0)
    results = {
        "lrate": {0.01: info, 0.1: rng.uniform(0, 1, (3, 4))},
        "delay": {5: rng.uniform(0, 1, (2, 4)), 1: rng.uniform(0, 1, (4, 4))},
    }
    t = sweep_table(results, n_neurons=4)
    assert list(t.columns) == list(SWEEP_COLUMNS)
    assert list(t["value"]) == [0.01, 0.1, 1, 5]
    row = t.iloc[0]
    assert row["informative_count_mean"] == pytest.approx(4 / 3)
    assert row["informative_fraction_mean"] == pytest.approx(1 / 3)
    assert row["max_info_mean"] == pytest.approx(np.mean([0.9, 0.95, 0.4]))
    assert row["max_info_std"] == pytest.approx(np.std([0.9, 0.95, 0.4]))
    assert row["mean_info_top10"] == pytest.approx(rk["mean"].values.mean())
    assert row["n_trials"] == 3
    path = save_sweep_csv(t, tmp_path / "sweep.csv")
    back = pd.read_csv(path)
    np.testing.assert_allclose(back["informative_count_mean"], t["informative_count_mean"])

    ranked_information_figure(
        {str(v): results["lrate"][v] for v in results["lrate"]}, path=tmp_path / "ranked.png"
    )
    informative_counts_figure(t, path=tmp_path / "counts.png")
    assert png_ok(tmp_path / "ranked.png") and png_ok(tmp_path / "counts.png")
