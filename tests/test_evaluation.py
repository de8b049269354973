"""Evaluation against closed forms (the twin's own truth as a model, NumPy/SciPy references)
and the model figures."""

import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy import stats

from jaxsel._errors import DataError
from jaxsel.data import repeats, subset, unique_images
from jaxsel.data._twin import twin_rates
from jaxsel.measures._evaluation import evaluate, pearson, summarize
from jaxsel.models._config import ModelConfig
from jaxsel.train import Config, TrainConfig, fit
from jaxsel.viz._model_figures import correlation_histogram, ln_vs_cnn_scatter, training_curves


@pytest.fixture(scope="module")
def twin(twin_factory):
    return twin_factory(
        seed=2, n_neurons=24, n_train=150, n_validation=40, n_test=30, test_repeats=6
    )


def truth_pair(tw):
    return (lambda p, x: twin_rates(p, x)), tw.params


def test_pearson_matches_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 3)), rng.normal(size=(40, 3))
    b[:, 2] = 1.0
    got = pearson(a, b)
    np.testing.assert_allclose(got[:2], [np.corrcoef(a[:, i], b[:, i])[0, 1] for i in (0, 1)])
    assert np.isnan(got[2])


def test_truth_as_model_gives_closed_form_scores(twin):
    ds, tw = twin
    ev = evaluate(truth_pair(tw), ds, truth=tw)
    assert set(ev.data_vars) >= {
        "test_correlation",
        "average_correlation",
        "poisson_loglik",
        "oracle",
        "fraction_oracle",
        "fev",
        "feve",
        "truth_correlation",
    }
    assert ev.sizes["neuron"] == 24 and "kind" in ev.coords and "neuron_id" in ev.coords
    resp = ev["kind"].values != "unresponsive"
    np.testing.assert_allclose(ev["truth_correlation"].values[resp], 1.0, atol=1e-5)
    # single-trial correlation and Poisson log-likelihood, recomputed by hand
    test = subset(ds, tiers="test")
    true = tw.rates(test["images"].values)
    r = test["responses"].values
    want = [np.corrcoef(true[:, i], r[:, i])[0, 1] for i in np.flatnonzero(resp)]
    np.testing.assert_allclose(ev["test_correlation"].values[resp], want, rtol=1e-4)
    ll = stats.poisson.logpmf(r, true).mean(0)
    np.testing.assert_allclose(ev["poisson_loglik"].values, ll, rtol=1e-4, atol=1e-5)
    # correlation with the average over repeats
    rep = repeats(ds)
    true_img = tw.rates(unique_images(ds).values)
    avg = np.nanmean(rep.values, 1)
    want = [np.corrcoef(true_img[:, i], avg[:, i])[0, 1] for i in np.flatnonzero(resp)]
    np.testing.assert_allclose(ev["average_correlation"].values[resp], want, rtol=1e-4)
    # the truth explains the explainable variance: FEVE ~ 1 where FEV is large enough
    feve = ev["feve"].values
    assert np.all(np.isnan(feve[ev["fev"].values < 0.15]))
    assert np.nanmedian(feve) > 0.8
    np.testing.assert_allclose(
        ev["fraction_oracle"].values, ev["test_correlation"].values / ev["oracle"].values
    )
    assert 0.7 < ev.attrs["fraction_oracle"] < 1.3
    s = summarize(ev)
    assert s["all"]["n"] == 24 and s["simple"]["truth_correlation"] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
def test_evaluate_fitted_model_and_figures(twin, tmp_path):
    ds, tw = twin
    cfg = Config(
        "tiny",
        ModelConfig(layers=1, hidden_channels=4, input_kern=7, pooling=2),
        TrainConfig(batch_size=50, max_epochs=2, progress=False),
    )
    res = fit(cfg, ds, seed=0)
    ev = evaluate(res, ds, truth=tw)
    assert np.isfinite(ev["test_correlation"].values).sum() >= 20
    ev_pair = evaluate(res.response_fn(), ds)
    np.testing.assert_allclose(ev_pair["test_correlation"].values, ev["test_correlation"].values)
    with pytest.raises(DataError, match="predicts 24 neurons for a dataset with 5"):
        evaluate(res, subset(ds, neurons=np.arange(5)))
    ln = evaluate(truth_pair(tw), ds, truth=tw)
    for fig in (
        correlation_histogram(ev, path=tmp_path / "h.png"),
        correlation_histogram(ev, measure="truth_correlation", groups=ev["kind"]),
        ln_vs_cnn_scatter(ev, ln, groups=ev["kind"].values, path=tmp_path / "s.png"),
        training_curves(res, path=tmp_path / "c.png"),
    ):
        assert isinstance(fig, Figure)
    assert all((tmp_path / f).stat().st_size > 1000 for f in ("h.png", "s.png", "c.png"))
