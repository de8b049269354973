"""The run's figures: each one drawn from files in the run folder, saved as PNG (+ PDF).

This module only picks the data of a run folder and hands it to :mod:`jaxsel.viz`, which
draws every figure. :func:`draw_all` writes ``figures/<name>.png`` and the manifest
``figures/index.json`` the report reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from jaxsel.data import BACKGROUND, load_zarr, optimal_stimuli
from jaxsel.pipeline._context import open_nc
from jaxsel.pipeline._insilico_stages import load_mei
from jaxsel.viz import (
    comparison_figure,
    cross_activation_figure,
    dataset_examples_figure,
    gradient_rf_grid,
    mei_grid,
    model_quality_figure,
    oracle_truth_figure,
    oracle_variance_scatter,
    paired_grid,
    power_spectra_figure,
    ranked_information_figure,
    recovery_figure,
    save_figure,
    selectivity_comparison_figure,
)


def save(fig: Figure, folder: Path, name: str, *, pdf: bool) -> str:
    """Save ``fig`` as ``folder/name.png`` (+ PDF); return the PNG's file name."""
    save_figure(fig, folder / f"{name}.png", tight=False)
    if pdf:
        save_figure(fig, folder / f"{name}.pdf", tight=False)
    return f"{name}.png"


def write_index(folder: Path, entries: list[dict]) -> Path:
    """Write the figure manifest the report reads."""
    path = folder / "index.json"
    path.write_text(json.dumps(entries, indent=2))
    return path


# =========================================================================== the run's figures


def _need_file(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(str(path))
    return path


def fig_data_examples(ctx) -> Figure:
    """Example images and the response distribution."""
    return dataset_examples_figure(ctx.dataset())


def fig_selection(ctx) -> Figure:
    return oracle_variance_scatter(ctx.selection())


def fig_oracle_truth(ctx) -> Figure:
    sel = ctx.selection()
    if "true_oracle" not in sel:
        raise FileNotFoundError("no ground truth")
    return oracle_truth_figure(sel, spearman=ctx.rd.metrics().get("oracle_spearman_vs_truth"))


def _mei(ctx, tag):
    _need_file(ctx.rd / f"mei_{tag}.nc")
    return load_mei(ctx.rd.path, tag)


def _examples(ctx, n_total: int) -> np.ndarray:
    n = min(ctx.cfg.report.n_examples, n_total)
    return np.linspace(0, n_total - 1, n).round().astype(int) if n else np.arange(0)


def _kind_labels(ctx, neuron_id):
    twin = ctx.twin()
    if twin is None:
        return [f"#{i}" for i in neuron_id]
    k = twin.kinds[np.searchsorted(twin.neuron_id, neuron_id)]
    return [f"#{i} {kk[:4]}" for i, kk in zip(neuron_id, k, strict=True)]


def fig_mei(ctx, tag: str) -> Figure:
    fig = mei_grid(_mei(ctx, tag), max_neurons=ctx.cfg.report.n_examples)
    fig.suptitle(
        f"MEIs of the {'CNN model' if tag == 'model' else 'true neurons'} with activation traces"
    )
    return fig


def fig_mei_vs_truth(ctx) -> Figure:
    twin = ctx.twin()
    res = _mei(ctx, "model")
    if twin is None:
        raise FileNotFoundError("no ground truth")
    ex = _examples(ctx, res.sizes["neuron"])
    ids = res["neuron_id"].values[ex]
    opt = optimal_stimuli(twin)[np.searchsorted(twin.neuron_id, ids)]
    mei = res["mei"].values[ex, 0] - BACKGROUND
    lab = _kind_labels(ctx, ids)
    return paired_grid(
        mei,
        opt,
        [f"model {t}" for t in lab],
        [f"true opt. {t}" for t in lab],
        symmetric=True,
        suptitle="model MEIs (upper rows) vs the true optimal "
        "stimuli (lower rows), contrast images",
    )


def _load_array(path: Path) -> xr.DataArray:
    """A run's array store (the stages write DataArrays, so dims are named)."""
    arr = load_zarr(path)
    assert isinstance(arr, xr.DataArray)
    return arr


def fig_grad_rf(ctx, tag: str) -> Figure:
    rf = _load_array(_need_file(ctx.rd / "arrays" / f"grad_rf_{tag}.zarr"))
    fig = gradient_rf_grid(rf, max_neurons=2 * ctx.cfg.report.n_examples)
    fig.suptitle(
        f"Gradient receptive fields of the "
        f"{'CNN' if tag == 'model' else 'true neurons'} (at the mean image)"
    )
    return fig


def fig_cross(ctx) -> Figure:
    ca = open_nc(_need_file(ctx.rd / "cross_activation.nc"))["cross_activation"]
    return cross_activation_figure(ca)


def fig_gabor_vs_mei(ctx, tag: str) -> Figure:
    gab = _load_array(_need_file(ctx.rd / "arrays" / f"gabor_{tag}.zarr")).values
    g = open_nc(ctx.rd / f"gabor_{tag}.nc")
    mei = _mei(ctx, tag)
    ex = _examples(ctx, len(gab))
    ids = g["neuron_id"].values[ex]
    lab = _kind_labels(ctx, ids)
    act_m = mei["activation"].values[ex]
    act_g = g["response"].values[ex]
    return paired_grid(
        mei["mei"].values[ex, 0],
        gab[ex, 0],
        [f"MEI {t}\nr={a:.1f}" for t, a in zip(lab, act_m, strict=True)],
        [f"Gabor\nr={a:.1f}" for a in act_g],
        suptitle=f"MEI (upper rows) vs optimal Gabor (lower rows), "
        f"{'CNN' if tag == 'model' else 'true neurons'}; r = rate",
        center_median=True,
    )


def fig_comparison(ctx, tag: str) -> Figure:
    return comparison_figure(open_nc(_need_file(ctx.rd / f"comparison_{tag}.nc")))


def fig_models(ctx) -> Figure:
    """LN vs CNN test correlation per neuron, and correlation histograms."""
    return model_quality_figure(open_nc(_need_file(ctx.rd / "evaluation.nc")))


def fig_information(ctx) -> Figure:
    sel = open_nc(_need_file(ctx.rd / "selectivity.nc"))
    curves = {str(m): sel["information"].sel(model=m).values for m in sel["model"].values}
    return ranked_information_figure(curves, title="I(preferred orientation present; R)")


def fig_selectivity(ctx) -> Figure:
    return selectivity_comparison_figure(open_nc(_need_file(ctx.rd / "selectivity.nc")))


def fig_spectra(ctx) -> Figure:
    gab = _load_array(_need_file(ctx.rd / "arrays" / "gabor_model.zarr")).values
    mei = _mei(ctx, "model")
    i = int(np.argmax(mei["activation"].values))
    return power_spectra_figure(
        {f"MEI #{mei['neuron_id'].values[i]}": mei["mei"].values[i, 0], "optimal Gabor": gab[i, 0]}
    )


def fig_recovery(ctx) -> Figure:
    rec = open_nc(_need_file(ctx.rd / "recovery_model.nc"))
    gp = ctx.rd / "gabor_recovery_model.nc"
    err = open_nc(gp)["theta_error_deg"].values if gp.is_file() else None
    return recovery_figure(rec, theta_error_deg=err)


# name, section, title, caption, producer
FIGURES = (
    (
        "data_examples",
        "data",
        "Dataset",
        "Example training images and the distribution of single-trial responses.",
        fig_data_examples,
    ),
    (
        "selection",
        "selection",
        "Neuron selection",
        "Oracle correlation vs response variance; dashed lines are the rule's thresholds.",
        fig_selection,
    ),
    (
        "oracle_vs_truth",
        "selection",
        "Oracle correlation vs truth",
        "The estimated oracle correlation of each neuron against the twin's true value.",
        fig_oracle_truth,
    ),
    (
        "model_quality",
        "models",
        "Model quality",
        "Left: single-trial test correlation of "
        "the LN model vs the CNN per neuron. Middle: distributions, with the oracle "
        "correlation (upper bound). Right (twin): correlation of each model with the true "
        "noise-free response on the test images.",
        fig_models,
    ),
    (
        "mei_model",
        "mei",
        "MEIs of the CNN",
        "Most exciting inputs of the trained CNN at the "
        "contrast budget, with the activation during the ascent.",
        lambda c: fig_mei(c, "model"),
    ),
    (
        "mei_truth",
        "mei",
        "MEIs of the true neurons",
        "The same optimisation on the twin's noise-free neurons.",
        lambda c: fig_mei(c, "truth"),
    ),
    (
        "mei_vs_truth",
        "recovery",
        "Model MEIs vs true optimal stimuli",
        "Contrast images; complex cells' optima are one phase of the quadrature pair.",
        fig_mei_vs_truth,
    ),
    (
        "grad_rf_model",
        "rf",
        "Gradient RFs of the CNN",
        "d rate / d pixel at the mean image.",
        lambda c: fig_grad_rf(c, "model"),
    ),
    (
        "grad_rf_truth",
        "rf",
        "Gradient RFs of the true neurons",
        "d rate / d pixel at the mean image.",
        lambda c: fig_grad_rf(c, "truth"),
    ),
    (
        "cross_activation",
        "cross",
        "Cross-activation",
        "Each neuron's response to every MEI, normalised by its maximum.",
        fig_cross,
    ),
    (
        "gabor_vs_mei_model",
        "gabor",
        "MEI vs optimal Gabor (CNN)",
        "Both at the same contrast budget; r is the model's rate.",
        lambda c: fig_gabor_vs_mei(c, "model"),
    ),
    (
        "gabor_vs_mei_truth",
        "gabor",
        "MEI vs optimal Gabor (truth)",
        "Both at the same contrast budget; r is the true rate.",
        lambda c: fig_gabor_vs_mei(c, "truth"),
    ),
    (
        "comparison_model",
        "gabor",
        "Image metrics",
        "Model activation, masked contrast, 2-fold "
        "symmetry index and dominant spatial frequency of MEIs, Gabors and the best natural "
        "images.",
        lambda c: fig_comparison(c, "model"),
    ),
    (
        "power_spectra",
        "gabor",
        "Power spectra",
        "Log power spectrum and axial average (with "
        "symmetry indices) of the most activating MEI and its optimal Gabor.",
        fig_spectra,
    ),
    (
        "information",
        "information",
        "Ranked information",
        "Single-neuron information "
        "(Poisson, from noise-free rates) about whether the neuron's preferred orientation is "
        "present in a test image; dotted: the 2/3-bit 'informative' threshold.",
        fig_information,
    ),
    (
        "selectivity",
        "information",
        "Selectivity",
        "Selectivity index of each neuron for its preferred orientation, model vs truth.",
        fig_selectivity,
    ),
    (
        "recovery",
        "recovery",
        "Ground-truth recovery",
        "Pearson r of model MEIs with the true "
        "optimal stimulus, phase-invariant match, and the true drive the MEI reaches relative "
        "to the true optimum.",
        fig_recovery,
    ),
)


def draw_all(ctx) -> list[dict]:
    """Draw every figure whose inputs exist; write ``figures/index.json``.

    Returns:
      The manifest entries (file, title, section, caption).
    """
    folder = ctx.rd / "figures"
    folder.mkdir(exist_ok=True)
    entries = []
    for name, section, title, caption, make in FIGURES + tuple(extra_figures(ctx)):
        try:
            fig = make(ctx)
        except FileNotFoundError as err:
            ctx.log.info(f"  figure {name}: skipped ({err})")
            continue
        file = save(fig, folder, name, pdf=ctx.cfg.report.pdf)
        entries.append({"file": file, "title": title, "section": section, "caption": caption})
    write_index(folder, entries)
    ctx.log.info(f"  {len(entries)} figures in {folder}")
    return entries


def extra_figures(ctx) -> list:
    """Figures of the library's viz modules that need results of later issues."""
    return []
