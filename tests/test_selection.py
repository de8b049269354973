"""Tuning statistics against references, the selection rule and its config, the table on the
twin, CSV and figure output."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.stats import entropy as scipy_entropy

from jaxsel._errors import ConfigError
from jaxsel.data import repeats
from jaxsel.measures._selection import (
    SelectionRule,
    apply_rule,
    save_table_csv,
    selected_ids,
    selection_table,
)
from jaxsel.measures._tuning import (
    correlation_partners,
    image_means,
    outlier_flags,
    response_entropy,
    response_variance,
    signal_correlations,
    sorted_raster,
)
from jaxsel.viz._measure_figures import oracle_variance_scatter, raster_figure


def png_ok(path):
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def twin_data(twin_factory):
    return twin_factory(seed=0, n_neurons=300, n_train=200, n_validation=20)


@pytest.fixture(scope="module")
def table(twin_data):
    ds, _ = twin_data
    return selection_table(ds, {"oracle_draws": 20})


# ----------------------------------------------------------------------------- config


def test_rule_from_dict_rejects_unknown_keys_naming_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'percentiles'"):
        SelectionRule.from_dict({"percentile": {"oracle": 60}})
    with pytest.raises(ConfigError, match="did you mean 'oracle'"):
        SelectionRule.from_dict({"percentiles": {"oracel": 60}})
    with pytest.raises(ConfigError, match=r"outside 0\.\.100"):
        SelectionRule.from_dict({"percentiles": {"oracle": 160}})
    with pytest.raises(ConfigError, match="outlier_method"):
        SelectionRule.from_dict({"outlier_method": "forest"})
    with pytest.raises(ConfigError, match="must be a number"):
        SelectionRule.from_dict({"minimums": {"fev": "high"}})
    rule = SelectionRule.from_dict(
        {"percentiles": {"oracle_random": 70}, "minimums": {"fev": 0.15}, "exclude_outliers": True}
    )
    assert SelectionRule.from_dict(rule.to_dict()) == rule
    assert SelectionRule.from_dict(None) == SelectionRule()


# ----------------------------------------------------------------------------- tuning stats


def test_image_means_variance_entropy_against_references():
    rng = np.random.default_rng(0)
    x = rng.poisson(3.0, (30, 4, 5)).astype(float)
    x[0, 3] = np.nan
    rep = xr.DataArray(x, dims=("image", "repeat", "neuron"))
    m = image_means(rep)
    np.testing.assert_allclose(m.values, np.nanmean(x, 1))
    np.testing.assert_allclose(response_variance(m).values, np.nanmean(x, 1).var(0, ddof=1))
    ref = [
        scipy_entropy(np.unique(m.values[:, n], return_counts=True)[1], base=2) for n in range(5)
    ]
    np.testing.assert_allclose(response_entropy(m).values, ref)
    assert response_entropy(np.array([[0.0], [0.0], [1.0], [1.0]])).item() == pytest.approx(1)
    assert response_entropy(np.array([[0.1], [0.2], [0.9], [1.0]]), bins=2).item() == pytest.approx(
        1
    )


def test_image_means_from_dataset_equals_repeats(twin_data):
    ds, _ = twin_data
    np.testing.assert_allclose(image_means(ds).values, image_means(repeats(ds)).values, rtol=1e-6)


def test_signal_correlations_and_partners_against_loops():
    rng = np.random.default_rng(1)
    m = rng.standard_normal((40, 6))
    m[:, 1] = m[:, 0] + 0.1 * rng.standard_normal(40)
    m[:, 2] = -m[:, 0]
    c = signal_correlations(m)
    np.testing.assert_allclose(c.values, np.corrcoef(m.T), atol=1e-12)
    p = correlation_partners(c)
    ref = np.asarray(np.corrcoef(m.T))  # corrcoef's stub also allows a scalar
    np.fill_diagonal(ref, np.nan)
    np.testing.assert_array_equal(p["max_corr_partner"].values, np.nanargmax(ref, 1))
    np.testing.assert_array_equal(p["min_corr_partner"].values, np.nanargmin(ref, 1))
    assert p["max_corr_partner"].values[0] == 1 and p["min_corr_partner"].values[0] == 2
    np.testing.assert_allclose(p["min_corr"].values[0], -1.0)


@pytest.mark.parametrize("method", ["robust_mahalanobis", "robust_z"])
def test_outliers_find_planted_points(method):
    rng = np.random.default_rng(2)
    cov = np.array([[1.0, 0.9, 0.0], [0.9, 1.0, 0.0], [0.0, 0.0, 1.0]])
    f = rng.multivariate_normal(np.zeros(3), cov, 500)
    f[:5] = [[8, 8, 0], [-7, -7, 0], [0, 0, 9], [6, 6, 6], [9, 9, -9]]
    if method == "robust_mahalanobis":
        f[5] = [2.5, -2.5, 0]  # only a correlation-aware distance flags this
    out = outlier_flags(f, method=method)
    assert out["outlier"].values[:5].all()
    if method == "robust_mahalanobis":
        assert out["outlier"].values[5]
    assert out["outlier"].values[6:].mean() < 0.05  # ~2.5% nominal false positives


def test_sorted_raster_groups_similar_neurons():
    rng = np.random.default_rng(3)
    a, b = rng.poisson(3, 200), rng.poisson(3, 200)
    r = np.stack([a if k % 2 else b for k in range(10)], 1) + rng.poisson(0.3, (200, 10))
    ds = xr.Dataset(
        {"responses": (("trial", "neuron"), r.astype(np.float32))},
        coords={"neuron_id": ("neuron", np.arange(10)), "tier": ("trial", np.full(200, "train"))},
    )
    ras = sorted_raster(ds, bin_size=5)
    assert ras.shape == (10, 40)
    parity = ras["neuron_id"].values % 2
    assert (np.diff(parity) != 0).sum() == 1  # two contiguous groups
    np.testing.assert_allclose(ras.values.mean(1), 0, atol=1e-9)


# ----------------------------------------------------------------------------- on the twin


def test_default_rule_on_twin_excludes_unresponsive(table, twin_data):
    _, twin = twin_data
    kind = twin.params["kind"]
    sel = table["selected"].values
    unresponsive = kind == 3
    excluded = 1 - sel[unresponsive].mean()
    assert excluded >= 0.95, excluded
    # the decision is exactly the rule applied to the table's own statistics
    o, v = table["oracle"].values, table["variance"].values
    ref = (o > np.nanpercentile(o, 60)) & (v > np.nanpercentile(v, 50))
    np.testing.assert_array_equal(sel, ref)
    assert table.attrs["threshold_oracle_p60"] == pytest.approx(np.nanpercentile(o, 60))
    # the selected neurons are much more reliable than the rest
    tf = twin.params["true_fev"]
    assert tf[sel].mean() > tf[~sel].mean() + 0.3
    np.testing.assert_array_equal(selected_ids(table), table["neuron_id"].values[sel])


def test_seed_statistic_rule_and_absolute_thresholds(twin_data, table):
    _, twin = twin_data
    rule = SelectionRule(
        percentiles={"oracle_random": 60, "variance": 50},
        minimums={"fev": 0.15},
        exclude_outliers=True,
    )
    t = apply_rule(table, rule)
    assert {
        "pass_oracle_random_p60",
        "pass_variance_p50",
        "pass_fev_min",
        "pass_not_outlier",
    } <= set(t.data_vars)
    assert not t["selected"].values[twin.params["kind"] == 3].any()
    assert not (t["selected"].values & t["outlier"].values).any()
    assert (t["fev"].values[t["selected"].values] > 0.15).all()


def test_table_csv_round_trip_and_figures(table, tmp_path):
    path = save_table_csv(table, tmp_path / "sel" / "neurons.csv")
    df = pd.read_csv(path, index_col="neuron_id")
    assert len(df) == table.sizes["neuron"]
    for col in (
        "oracle",
        "oracle_random",
        "oracle_random_rank",
        "fev",
        "snr",
        "variance",
        "entropy",
        "max_corr",
        "max_corr_partner",
        "min_corr",
        "min_corr_partner",
        "outlier",
        "selected",
    ):
        assert col in df.columns, col
    np.testing.assert_allclose(df["oracle"].to_numpy(), table["oracle"].values, rtol=1e-6)
    assert df["selected"].sum() == table["selected"].values.sum()
    fig = oracle_variance_scatter(table, path=tmp_path / "scatter.png")
    assert png_ok(tmp_path / "scatter.png") and fig.axes


def test_raster_figure_on_twin(twin_data, tmp_path):
    ds, _ = twin_data
    ras = sorted_raster(ds.isel(neuron=slice(0, 60)), bin_size=10, tier="train")
    raster_figure(ras, path=tmp_path / "raster.png")
    assert png_ok(tmp_path / "raster.png")
