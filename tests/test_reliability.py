"""Reliability: jackknife / randomized oracle against loop references, FEV/FEVE against known
variances, and recovery of the twin's true reliability."""

import numpy as np
import pytest
import xarray as xr
from scipy.stats import pearsonr, spearmanr

from jaxsel._errors import DataError
from jaxsel.data import repeats
from jaxsel.measures._reliability import (
    explainable_variance,
    fev,
    feve,
    oracle_correlation,
    oracle_correlation_random,
    reliability,
)


def ragged(seed=0, n_img=12, max_rep=6, n_neu=7):
    """Poisson repeats with ragged counts, one-repeat images and single missing entries."""
    rng = np.random.default_rng(seed)
    mu = rng.gamma(2.0, 2.0, (n_img, 1, n_neu))
    x = rng.poisson(mu, (n_img, max_rep, n_neu)).astype(np.float64)
    n_rep = rng.integers(1, max_rep + 1, n_img)
    n_rep[:2] = 1  # images with a single repeat
    x[np.arange(max_rep)[None, :] >= n_rep[:, None]] = np.nan
    x[3, 0, 2] = np.nan  # a missing single entry
    rep = xr.DataArray(
        x,
        dims=("image", "repeat", "neuron"),
        coords={
            "image_id": ("image", np.arange(n_img) + 100),
            "neuron_id": ("neuron", np.arange(n_neu) * 10),
        },
    )
    return rep, mu[:, 0]


def loop_oracle(x):
    """Plain double loop: neuron, image; pairs of (trial, leave-one-out mean)."""
    out, used, skipped = [], [], []
    for n in range(x.shape[2]):
        a, b, u, s = [], [], 0, 0
        for i in range(x.shape[0]):
            v = x[i, :, n][np.isfinite(x[i, :, n])]
            if len(v) == 1:
                s += 1
            if len(v) < 2:
                continue
            u += 1
            for j in range(len(v)):
                a.append(v[j])
                b.append((v.sum() - v[j]) / (len(v) - 1))
        out.append(pearsonr(a, b)[0])
        used.append(u)
        skipped.append(s)
    return np.array(out), np.array(used), np.array(skipped)


def test_jackknife_matches_loop_reference_with_ragged_repeats():
    for seed in range(3):
        rep, _ = ragged(seed)
        got = oracle_correlation(rep)
        ref, used, skipped = loop_oracle(rep.values)
        np.testing.assert_allclose(got.values, ref, rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(got["n_images_used"].values, used)
        np.testing.assert_array_equal(got["n_images_skipped"].values, skipped)
        np.testing.assert_array_equal(got["neuron_id"].values, rep["neuron_id"].values)
    assert skipped.min() >= 2


def test_randomized_oracle_matches_loop_reference():
    rep, _ = ragged(1)
    x = rep.values
    k_draws, seed = 5, 3
    got = oracle_correlation_random(rep, k_draws, seed=seed)
    u = np.random.default_rng(seed).random((k_draws, x.shape[0], x.shape[2]))
    corr = np.zeros((k_draws, x.shape[2]))
    for k in range(k_draws):
        for n in range(x.shape[2]):
            a, b = [], []
            for i in range(x.shape[0]):
                v = x[i, :, n][np.isfinite(x[i, :, n])]
                if len(v) < 2:
                    continue
                j = int(np.floor(u[k, i, n] * len(v)))
                a.append(v[j])
                b.append(np.delete(v, j).mean())
            # scipy types the result tuple's items as an unbound TypeVar
            r = pearsonr(a, b)[0]
            corr[k, n] = r * len(a) / x.shape[0]  # pyright: ignore[reportOperatorIssue]
    np.testing.assert_allclose(got["oracle_random"].values, corr.mean(0), rtol=1e-10)
    ranks = (-corr).argsort(1).argsort(1) + 1
    np.testing.assert_allclose(got["oracle_random_rank"].values, ranks.mean(0))
    # same seed, same result; chunking over draws does not change it
    again = oracle_correlation_random(rep, k_draws, seed=seed, max_chunk_elements=1)
    np.testing.assert_allclose(again["oracle_random"].values, got["oracle_random"].values)


def test_constant_neuron_gives_nan_not_error():
    x = np.ones((5, 3, 2))
    x[:, :, 1] = np.arange(15).reshape(5, 3)
    o = oracle_correlation(x)
    assert np.isnan(o.values[0]) and np.isfinite(o.values[1])
    assert np.isnan(oracle_correlation_random(x, 3)["oracle_random"].values[0])


def test_fev_and_feve_recover_known_variances_with_ragged_repeats():
    """Gaussian responses with known signal variance S and image-dependent noise."""
    rng = np.random.default_rng(0)
    n_img, max_rep, n_neu = 400, 8, 50
    S = 4.0
    mu = rng.normal(0, np.sqrt(S), (n_img, n_neu))
    noise_sd = rng.uniform(1.0, 3.0, (n_img, 1))  # image-dependent noise
    x = mu[:, None] + noise_sd[:, None] * rng.standard_normal((n_img, max_rep, n_neu))
    n_rep = rng.integers(2, max_rep + 1, n_img)
    x[np.arange(max_rep)[None, :] >= n_rep[:, None]] = np.nan
    N = float((noise_sd**2).mean())
    true_S = mu.var(0, ddof=1)
    ev = explainable_variance(x)
    np.testing.assert_allclose(ev["noise_variance"].mean(), N, rtol=0.02)
    np.testing.assert_allclose(ev["explainable_variance"].mean(), true_S.mean(), rtol=0.03)
    np.testing.assert_allclose(fev(x).mean(), (true_S / (true_S + N)).mean(), atol=0.01)
    np.testing.assert_allclose(
        ev["snr"].values, ev["explainable_variance"].values / ev["noise_variance"].values
    )
    # perfect predictions explain all explainable variance (unbiased: mean FEVE ~ 1)
    assert abs(float(feve(x, mu).mean()) - 1.0) < 0.02
    # a constant offset c leaves 1 - c^2 / S unexplained
    c = 1.0
    np.testing.assert_allclose(feve(x, mu + c).mean(), 1 - c**2 / true_S.mean(), atol=0.03)
    # predicting the grand mean explains nothing
    assert abs(float(feve(x, np.zeros_like(mu)).mean())) < 0.05


def test_feve_aligns_predictions_by_image_id_and_masks_low_fev():
    rep, mu = ragged(0)
    order = np.random.default_rng(0).permutation(rep.sizes["image"])
    pred = xr.DataArray(
        mu[order],
        dims=("img", "neuron"),
        coords={"image_id": ("img", rep["image_id"].values[order])},
    )
    np.testing.assert_allclose(feve(rep, pred).values, feve(rep, mu).values)
    f = feve(rep, mu, min_fev=0.5)
    assert np.all(np.isnan(f.values[f["fev"].values < 0.5]))
    assert np.all(np.isfinite(f.values[f["fev"].values >= 0.5]))


def test_bad_inputs():
    rep, mu = ragged(0)
    with pytest.raises(DataError, match="image, repeat, neuron"):
        oracle_correlation(np.zeros((3, 4)))
    with pytest.raises(DataError, match="dims"):
        fev(rep.rename(repeat="trial"))
    with pytest.raises(DataError, match="predictions"):
        feve(rep, mu[:-1])
    bad = mu.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DataError, match="non-finite"):
        feve(rep, bad)
    with pytest.raises(DataError, match="image ids"):
        feve(
            rep,
            xr.DataArray(
                mu, dims=("image", "neuron"), coords={"image_id": ("image", np.arange(len(mu)))}
            ),
        )
    with pytest.raises(DataError, match="n_draws"):
        oracle_correlation_random(rep, 0)


@pytest.fixture(scope="module")
def twin_data(twin_factory):
    return twin_factory(seed=0, n_neurons=300, n_train=200, n_validation=20)


def test_twin_oracle_and_fev_rank_neurons_like_the_truth(twin_data):
    ds, twin = twin_data
    rep = repeats(ds)
    table = reliability(rep, n_draws=20)
    rho_oracle = spearmanr(table["oracle"], twin.params["true_oracle"])[0]
    rho_random = spearmanr(table["oracle_random"], twin.params["true_oracle"])[0]
    rho_fev = spearmanr(table["fev"], twin.params["true_fev"])[0]
    # scipy types spearmanr's result items as an unbound TypeVar, so no >= for pyright
    assert rho_oracle >= 0.9 and rho_fev >= 0.9 and rho_random >= 0.9, (  # pyright: ignore[reportOperatorIssue]
        rho_oracle,
        rho_random,
        rho_fev,
    )
    # the jackknife targets exactly the twin's expected oracle (m = repeats - 1 others)
    assert np.nanmean(np.abs(table["oracle"].values - twin.params["true_oracle"])) < 0.05
    # FEVE of the true rates is ~1 for reliable neurons
    from jaxsel.data import unique_images

    truth = twin.rates(unique_images(ds).values)
    f = feve(rep, truth, min_fev=0.15)
    assert abs(float(f.median()) - 1.0) < 0.05
