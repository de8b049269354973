"""``[train] ensemble`` end to end on the tiny twin run, the tail metrics (p10/p90, failure
counts) against NumPy on the saved per-neuron outputs, and bad config values."""

import json
import math

import numpy as np
import pytest
import xarray as xr

from jaxsel._errors import ConfigError
from jaxsel.insilico import mei_confidence, member_predictions, optimize_meis, recipes
from jaxsel.models import build_model, predict
from jaxsel.pipeline import demo_config
from jaxsel.train import Config, load_model, response_function

pytestmark = pytest.mark.slow  # the shared tiny run trains 4 tiny models and runs MEIs


def _open(path):
    return xr.open_dataset(path, engine="h5netcdf").load()


@pytest.fixture(scope="module")
def ens_run(tiny_run):
    """The shared tiny run of conftest.py (TINY with ``train.ensemble = 2``)."""
    _, out, res = tiny_run
    metrics = json.loads((out / "metrics.json").read_text())
    metrics.pop("provenance")
    return out, res, metrics


def test_ensemble_metrics_exist_beside_the_single_models_and_are_finite(ens_run):
    out, res, m = ens_run
    assert set(res["status"].values()) == {"done"}
    assert m["ensemble_members"] == 2
    for single, ens in (
        ("cnn_corr_to_truth_median", "ensemble_corr_to_truth_median"),
        ("cnn_corr_to_truth_p10", "ensemble_corr_to_truth_p10"),
        ("cnn_test_corr_median", "ensemble_test_corr_median"),
        ("mei_truth_r_simple_median", "ensemble_mei_truth_r_simple_median"),
        ("mei_true_drive_fraction_p10", "ensemble_mei_true_drive_fraction_p10"),
        ("gabor_orientation_error_deg_p90", "ensemble_gabor_orientation_error_deg_p90"),
    ):
        assert math.isfinite(m[single]) and math.isfinite(m[ens]), (single, ens)
    bad = [k for k, v in m.items() if not isinstance(v, (int, float)) or not math.isfinite(v)]
    assert not bad, bad
    # the report shows the ensemble column
    assert "ensemble mean" in (out / "report.html").read_text()


def test_ensemble_mean_is_the_mean_of_the_members(ens_run):
    out, _, _ = ens_run
    ens = load_model(out / "models" / "small_ensemble" / "model")
    assert ens.meta["kind"] == "ensemble_mean" and ens.meta["n_models"] == 2
    cfg = Config.from_dict({**ens.meta["config"], "name": ens.meta["config_name"]})
    one = response_function(
        build_model(cfg.model, image_shape=ens.image_shape, n_neurons=ens.n_neurons)
    )
    pred = xr.open_dataarray(out / "models" / "small_ensemble" / "test_predictions.nc")
    images = np.random.default_rng(0).uniform(0, 255, (5, *ens.image_shape)).astype(np.float32)
    members = [
        np.asarray(one({k: _take(v, i) for k, v in ens.params.items()}, images)) for i in range(2)
    ]
    reference = np.mean(members, axis=0)  # NumPy mean of each member alone
    np.testing.assert_allclose(predict(ens, images), reference, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(member_predictions(ens, images), members, rtol=1e-4, atol=1e-6)
    assert pred.shape[-1] == ens.n_neurons and np.isfinite(pred.values).all()


def _take(tree, i):
    import jax

    return jax.tree.map(lambda a: np.asarray(a)[i], tree)


def test_ensemble_meis_carry_their_confidence(ens_run):
    out, _, _ = ens_run
    mei = _open(out / "mei_ensemble.nc")
    assert mei.sizes["member"] == 2
    act = mei["member_activation"].values
    # the ensemble MEI's rate is the members' mean rate for it
    np.testing.assert_allclose(act.mean(1), mei["activation"].values, rtol=2e-3, atol=1e-5)
    np.testing.assert_allclose(mei["member_cv"].values, act.std(1) / np.abs(act.mean(1)), rtol=1e-5)
    assert np.all(np.abs(mei["seed_image_corr"].values) <= 1 + 1e-6)
    assert np.all(mei["seed_activation_ratio"].values <= 1 + 1e-6)
    assert mei["member_cv"].attrs["units"] == "1"
    single = _open(out / "mei_model.nc")
    assert "seed_image_corr" in single and "member_cv" not in single


def test_model_objects_go_straight_into_the_insilico_api(ens_run):
    out, _, _ = ens_run
    ens = load_model(out / "models" / "small_ensemble" / "model")
    cfg = recipes.norm(10.0, steps=3)
    a = optimize_meis(ens, neurons=[0, 1], config=cfg, image_shape=ens.image_shape, seeds=2)
    fn, params = ens
    b = optimize_meis(fn, params, [0, 1], config=cfg, image_shape=ens.image_shape, seeds=2)
    np.testing.assert_array_equal(a["mei"].values, b["mei"].values)
    conf = mei_confidence(a, ens)
    assert conf["member_activation"].dims == ("neuron", "member")
    assert set(conf) >= {"member_cv", "member_min_fraction", "seed_image_corr"}


def test_tail_metrics_match_numpy_on_the_saved_per_neuron_outputs(ens_run):
    out, _, m = ens_run
    ev = _open(out / "evaluation.nc").sel(model="small")
    for pre, r in (
        ("cnn", ev["truth_correlation"].values),
        ("ensemble", _open(out / "evaluation_ensemble.nc")["truth_correlation"].values),
    ):
        assert m[f"{pre}_corr_to_truth_p10"] == pytest.approx(np.percentile(r, 10))
        assert m[f"{pre}_corr_to_truth_n_below_0_5"] == int(np.sum(r < 0.5))
        assert m[f"{pre}_corr_to_truth_n_below_0_2"] == int(np.sum(r < 0.2))
        assert m[f"{pre}_corr_to_truth_n"] == len(r)
    for tag, pre in (("model", "mei"), ("ensemble", "ensemble_mei")):
        rec = _open(out / f"recovery_{tag}.nc")
        kinds = rec["kind"].values
        drive = rec["frac_true_max"].values[kinds != "unresponsive"]
        assert m[f"{pre}_true_drive_fraction_p10"] == pytest.approx(np.percentile(drive, 10))
        assert m[f"{pre}_true_drive_fraction_n_below_0_9"] == int(np.sum(drive < 0.9))
        r = rec["pearson_r"].values[kinds == "simple"]
        assert m[f"{pre}_truth_r_simple_p10"] == pytest.approx(np.percentile(r, 10))
    rec = _open(out / "gabor_recovery_model.nc")
    err = rec["theta_error_deg"].values[rec["kind"].values != "unresponsive"]
    assert m["gabor_orientation_error_deg_p90"] == pytest.approx(np.percentile(err, 90))
    assert m["gabor_orientation_error_deg_n_above_10"] == int(np.sum(err > 10))
    assert m["mei_n_neurons"] == len(_open(out / "mei_model.nc")["neuron_id"])


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("train.ensemble", 1, r"'train\.ensemble' must be 0 \(off\) or a number of members >= 2"),
        ("train.ensemble", -3, r"'train\.ensemble'.*got -3"),
        ("train.ensemble", True, r"'train\.ensemble'"),
        ("train.ensemble", "4", r"train\.ensemble"),
        ("mei.sample", "best", r"'mei\.sample' must be one of \['reliable', 'random'\]"),
    ],
)
def test_bad_ensemble_and_sample_values_name_the_key(key, value, match):
    with pytest.raises(ConfigError, match=match):
        demo_config(overrides={key: value})


def test_mei_neurons_are_the_most_reliable_or_a_recorded_random_sample():
    from types import SimpleNamespace
    from typing import Any, cast

    from jaxsel.pipeline._insilico_stages import _mei_neurons, mei_sample_text

    oracle = np.array([0.1, 0.9, 0.5, np.nan, 0.7, 0.3, 0.8, 0.2, 0.6, 0.4])
    selected = np.array([1, 1, 1, 1, 1, 1, 1, 0, 1, 1], bool)
    sel = xr.Dataset({"selected": ("neuron", selected), "oracle": ("neuron", oracle)})

    def ctx(n, sample):
        cfg = demo_config(overrides={"mei.n_neurons": n, "mei.sample": sample, "run.seed": 3})
        return cast(Any, SimpleNamespace(cfg=cfg, selection=lambda: sel))

    kept = oracle[selected]  # 9 selected neurons
    top = _mei_neurons(ctx(3, "reliable"))
    np.testing.assert_array_equal(top, np.sort(np.argsort(-np.nan_to_num(kept, nan=-1))[:3]))
    rnd = _mei_neurons(ctx(4, "random"))
    np.testing.assert_array_equal(
        rnd, np.sort(np.random.default_rng(3).choice(9, 4, replace=False))
    )
    assert "random sample of 4 of 9" in mei_sample_text(ctx(4, "random"), 4)
    np.testing.assert_array_equal(_mei_neurons(ctx(0, "random")), np.arange(9))
    assert mei_sample_text(ctx(0, "random"), 9) == "all 9 selected neurons"
