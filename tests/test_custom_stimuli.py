"""Ensemble responses to custom stimuli (cached in zarr) and clustering of members."""

import numpy as np
import pytest
import xarray as xr
from _many_helpers import tiny_config, tiny_twin

from jaxsel._errors import DataError
from jaxsel.insilico._custom_stimuli import ensemble_responses
from jaxsel.measures._clustering import cluster_members, kmeans, pca
from jaxsel.train._many import fit_many


def test_pca_matches_numpy():
    x = np.random.default_rng(0).normal(size=(20, 6)) @ np.diag([5, 3, 1, 0.5, 0.1, 0.1])
    scores, comps, evr = pca(x, 3)
    xc = x - x.mean(0)
    ev = np.linalg.eigvalsh(np.cov(xc.T))[::-1]
    np.testing.assert_allclose(evr, ev[:3] / ev.sum(), rtol=1e-4)
    np.testing.assert_allclose(np.abs(scores), np.abs(xc @ np.asarray(comps).T), atol=1e-4)


def test_kmeans_recovers_blobs():
    rng = np.random.default_rng(1)
    truth = np.repeat([0, 1, 2], 15)
    centres = np.array([[0, 0], [10, 0], [0, 10]])
    x = centres[truth] + rng.normal(size=(45, 2))
    lab, cen, inertia = kmeans(x, 3, seed=0)
    # same partition up to renaming (labels numbered by first appearance)
    np.testing.assert_array_equal(lab, truth)
    assert inertia < 45 * 2 * 2
    with pytest.raises(DataError):
        kmeans(x, 50)


@pytest.mark.slow
def test_ensemble_responses_cache_and_clusters(tmp_path):
    ds, twin = tiny_twin(n_neurons=5)
    ens = fit_many(tiny_config(max_epochs=1), ds, seeds=[0, 1, 2, 3], formulation="vmap")
    stim = np.random.default_rng(0).uniform(0, 255, size=(7, 1, 12, 16)).astype(np.float32)
    r = ensemble_responses(ens, stim, batch_size=4, cache_dir=tmp_path)
    assert r.dims == ("model", "stimulus", "neuron") and r.shape == (4, 7, 5)
    assert not r.attrs["cached"]
    # member 2 equals that model's own prediction
    np.testing.assert_allclose(r.values[2], ens.member(2).predict(stim), rtol=1e-5, atol=1e-6)
    again = ensemble_responses(ens, stim, batch_size=4, cache_dir=tmp_path)
    assert again.attrs["cached"]
    np.testing.assert_allclose(again.values, r.values)
    other = ensemble_responses(ens, stim + 1, cache_dir=tmp_path)
    assert not other.attrs["cached"] and other.attrs["cache_key"] != r.attrs["cache_key"]
    movie = ensemble_responses(ens, stim[:, 0][:, None].repeat(3, 1), movie=True)
    assert movie.dims == ("model", "stimulus", "time", "neuron")
    np.testing.assert_allclose(movie.values[:, :, 1], r.values, rtol=1e-5, atol=1e-6)
    # clusters: two copies of two distinct response patterns -> two clusters
    fake = xr.DataArray(
        np.concatenate([r.values[:1]] * 3 + [r.values[1:2] * 3] * 3),
        dims=("model", "stimulus", "neuron"),
    )
    c = cluster_members(fake, 2, n_components=2)
    assert list(c["label"].values) == [0, 0, 0, 1, 1, 1]
    with pytest.raises(DataError):
        ensemble_responses(ens, np.full((2, 12, 16), np.nan))
