"""Report figures as figures for a paper: one shared, symmetric colour scale per image
grid (with a colorbar), one set of example neurons named by neuron_id in every figure, a
selection plot that shows what the rule did, and an information figure that explains
itself."""

import json
import re

import numpy as np
import pytest
import xarray as xr

from jaxsel._errors import ConfigError
from jaxsel.measures import SelectionRule, apply_rule
from jaxsel.pipeline import demo_config, run_pipeline
from jaxsel.viz import (
    gradient_rf_grid,
    image_grid,
    mei_grid,
    oracle_variance_scatter,
    ranked_information_figure,
)

TINY = {
    "data.twin.n_neurons": 20,
    "data.twin.n_train": 200,
    "data.twin.n_validation": 40,
    "data.twin.n_test": 12,
    "data.twin.test_repeats": 4,
    "train.overrides": {"max_epochs": 2, "progress": False},
    "train.per_model": {"small": {"hidden_channels": 4, "layers": 2}},
    "mei.overrides": {"steps": 20},
    "mei.n_neurons": 0,
    "gabor.steps": 5,
    "gabor.bank": {"n_x": 3, "n_y": 2, "n_theta": 4, "n_phase": 2, "sigmas": [3.0], "sfs": [0.1]},
    "report.pdf": False,
    "report.n_examples": 4,
    "run.progress": False,
}
# figures that draw one panel (or row) per example neuron
PER_NEURON = {
    "mei_model",
    "mei_truth",
    "mei_vs_truth",
    "grad_rf_model",
    "grad_rf_truth",
    "gabor_vs_mei_model",
    "gabor_vs_mei_truth",
}


def image_axes(fig):
    return [ax for ax in fig.axes if ax.get_images() and ax.get_label() != "<colorbar>"]


def climits(fig):
    return {tuple(np.round(ax.get_images()[0].get_clim(), 9)) for ax in image_axes(fig)}


def legend_labels(ax) -> list[str]:
    legend = ax.get_legend()
    assert legend is not None
    return [t.get_text() for t in legend.get_texts()]


def named_ids(fig) -> set[int]:
    texts = [fig.get_suptitle()] + [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        texts += [ax.get_title(), ax.get_ylabel()]
    return {int(m) for t in texts for m in re.findall(r"\bid (\d+)\b", t)}


# ------------------------------------------------------------------ library figures, fast


def test_image_grid_shares_one_symmetric_scale_and_has_a_colorbar():
    rng = np.random.default_rng(0)
    imgs = 127.5 + rng.normal(0, 1, (5, 8, 12)) * np.array([1, 5, 20, 2, 3])[:, None, None]
    fig = image_grid(imgs, center=127.5, colorbar="pixel value")
    (lim,) = climits(fig)  # one scale for all five panels
    dev = np.abs(imgs - 127.5).max()
    assert lim == pytest.approx((127.5 - dev, 127.5 + dev))  # widest panel, not clipped
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)
    # without a centre: the min..max of all images, still one scale
    (lim,) = climits(image_grid(imgs))
    assert lim == pytest.approx((imgs.min(), imgs.max()))


def _mei_result(n=5):
    rng = np.random.default_rng(1)
    mei = 127.5 + rng.normal(0, 1, (n, 1, 6, 9)) * np.arange(1, n + 1)[:, None, None, None]
    return xr.Dataset(
        {
            "mei": (("neuron", "channel", "y", "x"), mei),
            "activation": ("neuron", np.arange(n, dtype=float)),
            "trace": (("neuron", "step"), rng.random((n, 7))),
        },
        coords={"neuron_id": ("neuron", np.arange(n) * 10 + 3)},
    )


def test_mei_grid_picks_neurons_by_id_on_a_scale_around_the_background():
    res = _mei_result()
    fig = mei_grid(res, neuron_id=[43, 13], titles=["id 43 (a)", "id 13 (b)"], background=127.5)
    assert named_ids(fig) == {43, 13}
    (lim,) = climits(fig)
    assert lim[0] + lim[1] == pytest.approx(2 * 127.5)  # symmetric around the grey
    dev = np.abs(res["mei"].values[[4, 1]] - 127.5).max()
    assert lim[1] - 127.5 == pytest.approx(dev)
    with pytest.raises(ConfigError, match="neuron_id"):
        mei_grid(res, neuron_id=[99])
    with pytest.raises(ConfigError, match="titles"):
        mei_grid(res, neuron_id=[3], titles=["a", "b"])


def test_gradient_rf_grid_shares_a_scale_symmetric_around_zero():
    rng = np.random.default_rng(2)
    rf = xr.DataArray(
        rng.normal(0, 1, (4, 1, 5, 7)) * np.array([1e-3, 1, 10, 0.1])[:, None, None, None],
        dims=("neuron", "channel", "y", "x"),
        coords={"neuron_id": ("neuron", [5, 6, 7, 8])},
    )
    fig = gradient_rf_grid(rf)
    (lim,) = climits(fig)
    assert lim[0] == pytest.approx(-lim[1]) and lim[1] == pytest.approx(np.abs(rf.values).max())
    assert named_ids(fig) == {5, 6, 7, 8}
    cbar = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert cbar and "rate per pixel" in cbar[0].get_ylabel()
    # per-panel scale: each panel divided by its own peak, one scale from -1 to 1
    fig = gradient_rf_grid(rf, scale="panel")
    (lim,) = climits(fig)
    assert lim == pytest.approx((-1.0, 1.0))
    for ax, a in zip([ax for ax in fig.axes if ax.get_images()][:4], rf.values, strict=False):
        shown = np.asarray(ax.get_images()[0].get_array())
        np.testing.assert_allclose(shown, a[0] / np.abs(a).max(), rtol=1e-5)
    with pytest.raises(ConfigError, match="scale"):
        gradient_rf_grid(rf, scale="own")


def _table(exclude_outliers: bool):
    rng = np.random.default_rng(3)
    n = 60
    t = xr.Dataset(
        {
            "oracle": ("neuron", rng.random(n)),
            "variance": ("neuron", rng.random(n) * 10 + 0.1),
            "outlier": ("neuron", np.arange(n) % 7 == 0),
        },
        coords={"neuron_id": ("neuron", np.arange(n))},
    )
    rule = SelectionRule(
        percentiles={"oracle": 50.0, "variance": 30.0}, exclude_outliers=exclude_outliers
    )
    return apply_rule(t, rule)


def test_selection_plot_shows_what_the_rule_did():
    t = _table(exclude_outliers=False)
    ax = oracle_variance_scatter(t).axes[0]
    labels = legend_labels(ax)
    n_sel = int(t["selected"].sum())
    assert f"selected ({n_sel})" in labels and f"not selected ({60 - n_sel})" in labels
    thr = t.attrs["threshold_oracle_p50"]
    assert any(lab.startswith(f"oracle > {thr:.3g}") for lab in labels)  # threshold line named
    assert "outliers not excluded (9 flagged)" in labels  # not circled as if excluded
    assert not any("excluded as outlier" in lab for lab in labels)
    t = _table(exclude_outliers=True)
    labels = legend_labels(oracle_variance_scatter(t).axes[0])
    assert "excluded as outlier (9)" in labels


def test_information_figure_says_why_no_neuron_is_informative():
    low = {"CNN": np.linspace(0.0, 0.1, 20), "truth": np.linspace(0.0, 0.2, 20)}
    fig = ranked_information_figure(low, note="because")
    text = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
    assert "CNN 0, truth 0" in text and "none reaches 0.667 bit" in text
    assert "the highest is 0.20 bit" in text and "because" in text
    assert "informative: I >= 0.667 bit" in legend_labels(fig.axes[0])
    some = {"CNN": np.array([0.9, 0.7, 0.1])}
    text = " ".join(t.get_text() for t in ranked_information_figure(some).axes[0].texts)
    assert "CNN 2" in text and "none reaches" not in text


# -------------------------------------------------------------- the figures of a tiny run


@pytest.fixture(scope="module")
def tiny_figures(tmp_path_factory):
    from jaxsel.pipeline._context import Context
    from jaxsel.pipeline._figures import FIGURES
    from jaxsel.pipeline._rundir import RunDir

    out = tmp_path_factory.mktemp("run") / "tiny"
    cfg = demo_config(overrides={**TINY, "run.out": str(out)})
    run_pipeline(cfg, echo=False)
    ctx = Context(cfg, RunDir(out, echo=False))
    figs = {}
    for name, *_, make in FIGURES:
        try:
            figs[name] = make(ctx)
        except FileNotFoundError:
            continue
    return out, figs


@pytest.mark.slow
def test_every_figure_of_a_run_names_the_same_example_neurons(tiny_figures):
    out, figs = tiny_figures
    ex = json.loads((out / "figures" / "examples.json").read_text())
    ids = set(ex["neuron_id"])
    assert len(ids) == 4 and all(
        lab.startswith(f"id {i} (") for i, lab in zip(ex["neuron_id"], ex["label"], strict=True)
    )
    assert set(figs) >= PER_NEURON  # the tiny run draws every per-neuron figure
    for name, fig in figs.items():
        named = named_ids(fig)
        if name in PER_NEURON:
            assert named == ids, name
        else:
            assert named <= ids, name  # e.g. the power spectra of one example neuron
    assert named_ids(figs["power_spectra"])  # ... which names it
    index = {e["file"]: e for e in json.loads((out / "figures" / "index.json").read_text())}
    assert set(index["mei_model.png"]["neuron_id"]) == ids


@pytest.mark.slow
def test_image_grid_figures_of_a_run_share_one_symmetric_scale(tiny_figures):
    _, figs = tiny_figures
    centres = {
        "mei_model": 127.5,
        "mei_truth": 127.5,
        "gabor_vs_mei_model": 127.5,
        "gabor_vs_mei_truth": 127.5,
        "mei_vs_truth": 0.0,
        "grad_rf_model": 0.0,
        "grad_rf_truth": 0.0,
    }
    for name, centre in centres.items():
        lims = climits(figs[name])
        assert len(lims) == 1, (name, lims)  # every image axis: the same clim
        ((lo, hi),) = lims
        assert (lo + hi) / 2 == pytest.approx(centre, abs=1e-6), name
        assert hi > centre, name
        assert any(ax.get_label() == "<colorbar>" for ax in figs[name].axes), name
    # the power spectra share one scale too
    assert len(climits(figs["power_spectra"])) == 1
