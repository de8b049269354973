"""The run's figures: each one drawn from files in the run folder, saved as PNG (+ PDF).

This module only picks the data of a run folder and hands it to :mod:`jaxsel.viz`, which
draws every figure. :func:`draw_all` writes ``figures/<name>.png`` and the manifest
``figures/index.json`` the report reads.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from jaxsel.data import (
    BACKGROUND,
    SCALE,
    load_zarr,
    optimal_stimuli,
)
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


EXAMPLES_FILE = "examples.json"


def example_neurons(ctx) -> dict:
    """The run's example neurons: one set shown and labelled the same in every figure.

    ``report.n_examples`` neurons evenly spaced (by position) over the neurons that have
    MEIs (``mei_model.nc``), else over the selected neurons. Returns a dict with
    ``neuron_id`` (list of int), ``label`` (``"id 6 (simple)"``, kind only with a twin) and
    ``chosen_from``; :func:`draw_all` writes it to ``figures/examples.json``.
    """
    if "examples" in ctx.cache:
        return ctx.cache["examples"]
    path = ctx.rd / "mei_model.nc"
    if path.is_file():
        pool, source = open_nc(path)["neuron_id"].values, "neurons with MEIs (mei_model.nc)"
    else:
        pool, source = ctx.selected_ids(), "selected neurons (selection.nc)"
    n = min(ctx.cfg.report.n_examples, len(pool))
    pick = np.linspace(0, len(pool) - 1, n).round().astype(int) if n else np.arange(0)
    ids = [int(i) for i in np.asarray(pool)[np.unique(pick)]]
    twin = ctx.twin()
    if twin is None:
        labels = [f"id {i}" for i in ids]
    else:
        kinds = twin.kinds[np.searchsorted(twin.neuron_id, ids)]
        labels = [f"id {i} ({k})" for i, k in zip(ids, kinds, strict=True)]
    ex = {
        "neuron_id": ids,
        "label": labels,
        "chosen_from": source,
        "rule": f"report.n_examples = {ctx.cfg.report.n_examples}, evenly spaced by position",
    }
    ctx.cache["examples"] = ex
    return ex


def _labels(ctx, ids) -> list[str]:
    ex = example_neurons(ctx)
    by_id = dict(zip(ex["neuron_id"], ex["label"], strict=True))
    return [by_id.get(int(i), f"id {i}") for i in ids]


def _rows(ids, want) -> np.ndarray:
    """Positions of the neuron ids ``want`` in ``ids`` (those present, in ``want``'s order)."""
    ids = [int(i) for i in ids]
    return np.array([ids.index(int(w)) for w in want if int(w) in ids], dtype=int)


def _background(ctx, images) -> float:
    return BACKGROUND if ctx.is_twin else float(np.nanmedian(images))


def fig_mei(ctx, tag: str) -> Figure:
    res = _mei(ctx, tag)
    ids = res["neuron_id"].values[_rows(res["neuron_id"].values, example_neurons(ctx)["neuron_id"])]
    fig = mei_grid(
        res,
        neuron_id=ids,
        titles=_labels(ctx, ids),
        background=_background(ctx, res["mei"].values),
    )
    fig.suptitle(
        f"MEIs of the {'CNN model' if tag == 'model' else 'true neurons'} "
        "(one grey scale for all panels) and their rate during the ascent"
    )
    return fig


def fig_mei_vs_truth(ctx) -> Figure:
    twin = ctx.twin()
    res = _mei(ctx, "model")
    if twin is None:
        raise FileNotFoundError("no ground truth")
    ex = _rows(res["neuron_id"].values, example_neurons(ctx)["neuron_id"])
    ids = res["neuron_id"].values[ex]
    opt = optimal_stimuli(twin)[np.searchsorted(twin.neuron_id, ids)]
    mei = (res["mei"].values[ex, 0] - BACKGROUND) / SCALE
    lab = _labels(ctx, ids)
    return paired_grid(
        mei,
        opt,
        [f"model MEI\n{t}" for t in lab],
        [f"true optimum\n{t}" for t in lab],
        symmetric=True,
        colorbar=f"contrast = (pixel - {BACKGROUND:g}) / {SCALE:g}",
        suptitle="model MEIs (upper rows) vs the true optimal stimuli (lower rows), "
        "same norm budget, one contrast scale",
    )


def _load_array(path: Path) -> xr.DataArray:
    """A run's array store (the stages write DataArrays, so dims are named)."""
    arr = load_zarr(path)
    assert isinstance(arr, xr.DataArray)
    return arr


def fig_grad_rf(ctx, tag: str) -> Figure:
    rf = _load_array(_need_file(ctx.rd / "arrays" / f"grad_rf_{tag}.zarr"))
    ids = rf["neuron_id"].values[_rows(rf["neuron_id"].values, example_neurons(ctx)["neuron_id"])]
    fig = gradient_rf_grid(rf, neuron_id=ids, titles=_labels(ctx, ids), ncols=6, scale="panel")
    fig.suptitle(
        f"Gradient receptive fields of the {'CNN' if tag == 'model' else 'true neurons'} "
        "at the mean image (each panel ÷ its max |grad|)"
    )
    return fig


def fig_cross(ctx) -> Figure:
    ca = open_nc(_need_file(ctx.rd / "cross_activation.nc"))["cross_activation"]
    return cross_activation_figure(ca)


def fig_gabor_vs_mei(ctx, tag: str) -> Figure:
    gab = _load_array(_need_file(ctx.rd / "arrays" / f"gabor_{tag}.zarr"))
    g = open_nc(ctx.rd / f"gabor_{tag}.nc")
    mei = _mei(ctx, tag)
    want = example_neurons(ctx)["neuron_id"]
    ex_g = _rows(g["neuron_id"].values, want)
    ids = g["neuron_id"].values[ex_g]
    ex_m = _rows(mei["neuron_id"].values, ids)
    lab = _labels(ctx, ids)
    act_m = mei["activation"].values[ex_m]
    act_g = g["response"].values[ex_g]
    rate = "model rate" if tag == "model" else "true rate"
    return paired_grid(
        mei["mei"].values[ex_m, 0],
        gab.values[ex_g, 0],
        [f"MEI {t}\n{rate} {a:.1f}" for t, a in zip(lab, act_m, strict=True)],
        [f"Gabor {t}\n{rate} {a:.1f}" for t, a in zip(lab, act_g, strict=True)],
        suptitle=f"MEI (upper rows) vs optimal Gabor (lower rows) of the "
        f"{'CNN' if tag == 'model' else 'true neurons'}, one grey scale",
        center=_background(ctx, mei["mei"].values),
        colorbar="pixel value",
    )


def fig_comparison(ctx, tag: str) -> Figure:
    return comparison_figure(open_nc(_need_file(ctx.rd / f"comparison_{tag}.nc")))


def fig_models(ctx) -> Figure:
    """LN vs CNN test correlation per neuron, and correlation histograms."""
    return model_quality_figure(open_nc(_need_file(ctx.rd / "evaluation.nc")))


def fig_information(ctx) -> Figure:
    sel = open_nc(_need_file(ctx.rd / "selectivity.nc"))
    curves = {str(m): sel["information"].sel(model=m).values for m in sel["model"].values}
    return ranked_information_figure(
        curves, title="I(preferred orientation present; R)", note=information_note(sel)
    )


def information_note(sel: xr.Dataset) -> str:
    """Why the information is what it is: how much the rate changes with the label."""
    r = sel.isel(model=0)
    pos, neg = np.nanmedian(r["rate_pos"].values), np.nanmedian(r["rate_neg"].values)
    sd = np.nanmedian(r["sd_pos"].values)
    d = np.nanmedian(r["d_prime"].values)
    return (
        f"{sel['model'].values[0]}: median rate {pos:.2g} with the orientation vs {neg:.2g} "
        f"without (d' {d:.2f}),\nsmall next to the rate's spread over images (sd {sd:.2g}) "
        "and the Poisson noise of one trial"
    )


def fig_selectivity(ctx) -> Figure:
    return selectivity_comparison_figure(open_nc(_need_file(ctx.rd / "selectivity.nc")))


def fig_spectra(ctx) -> Figure:
    gab = _load_array(_need_file(ctx.rd / "arrays" / "gabor_model.zarr"))
    mei = _mei(ctx, "model")
    ex = _rows(mei["neuron_id"].values, example_neurons(ctx)["neuron_id"])
    i = int(ex[np.argmax(mei["activation"].values[ex])])  # the most driven example neuron
    nid = int(mei["neuron_id"].values[i])
    j = _rows(gab["neuron_id"].values, [nid])[0]
    (lab,) = _labels(ctx, [nid])
    return power_spectra_figure(
        {f"MEI {lab}": mei["mei"].values[i, 0], f"optimal Gabor {lab}": gab.values[j, 0]}
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
        "Oracle correlation vs response variance of every neuron, coloured by what the selection "
        "rule decided; the lines are the thresholds it applied (legend), and outliers are marked "
        "only when the rule excluded them.",
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
        "Most exciting inputs of the trained CNN at the contrast budget (raw pixel values, "
        "one grey scale centred on the background for all panels), with the model rate "
        "during the ascent. The example neurons are the same in every figure "
        "(figures/examples.json).",
        lambda c: fig_mei(c, "model"),
    ),
    (
        "mei_truth",
        "mei",
        "MEIs of the true neurons",
        "The same optimisation on the twin's noise-free neurons (same scale convention).",
        lambda c: fig_mei(c, "truth"),
    ),
    (
        "mei_vs_truth",
        "recovery",
        "Model MEIs vs true optimal stimuli",
        "Contrast images (pixel - 127.5) / 127.5 on one shared scale; complex cells' optima are "
        "one phase of the quadrature pair.",
        fig_mei_vs_truth,
    ),
    (
        "grad_rf_model",
        "rf",
        "Gradient RFs of the CNN",
        "d rate / d pixel at the mean image, each panel divided by its own max |grad| (in its "
        "title, rate per pixel-value unit) and shown on one symmetric scale from -1 to 1.",
        lambda c: fig_grad_rf(c, "model"),
    ),
    (
        "grad_rf_truth",
        "rf",
        "Gradient RFs of the true neurons",
        "d rate / d pixel at the mean image, each panel divided by its own max |grad| (in its "
        "title, rate per pixel-value unit) and shown on one symmetric scale from -1 to 1.",
        lambda c: fig_grad_rf(c, "truth"),
    ),
    (
        "cross_activation",
        "cross",
        "Cross-activation",
        "Each neuron's rate (columns) to every MEI (rows), divided by its largest rate over "
        "all MEIs; labels are neuron ids.",
        fig_cross,
    ),
    (
        "gabor_vs_mei_model",
        "gabor",
        "MEI vs optimal Gabor (CNN)",
        "Both at the same contrast budget, raw pixel values on one grey scale; the titles give "
        "the model's rate.",
        lambda c: fig_gabor_vs_mei(c, "model"),
    ),
    (
        "gabor_vs_mei_truth",
        "gabor",
        "MEI vs optimal Gabor (truth)",
        "Both at the same contrast budget, raw pixel values on one grey scale; the titles give "
        "the true rate.",
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
        "symmetry indices) of the MEI of the most driven example neuron and of its optimal Gabor; "
        "one colour scale.",
        fig_spectra,
    ),
    (
        "information",
        "information",
        "Ranked information",
        "Single-neuron information "
        "(Poisson, from noise-free rates) about whether the neuron's preferred orientation is "
        "present in a test image; dotted: the 2/3-bit 'informative' threshold. The figure states "
        "how many neurons reach it and, below it, how much the rate changes with the label.",
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


def named_neurons(fig: Figure) -> list[int]:
    """The neuron ids a figure names (``"id <n>"`` in its titles and axis labels)."""
    texts = [t.get_text() for t in fig.texts] + [fig.get_suptitle()]
    for ax in fig.axes:
        texts += [ax.get_title(), ax.get_ylabel(), ax.get_xlabel()]
    return sorted({int(m) for t in texts for m in re.findall(r"\bid (\d+)", t)})


def draw_all(ctx) -> list[dict]:
    """Draw every figure whose inputs exist; write ``figures/index.json`` and
    ``figures/examples.json`` (the example neurons every figure shows).

    Returns:
      The manifest entries (file, title, section, caption, neuron_id: the example neurons
      the figure names).
    """
    folder = ctx.rd / "figures"
    folder.mkdir(exist_ok=True)
    if (ctx.rd / "selection.nc").is_file():
        ex = example_neurons(ctx)
        (folder / EXAMPLES_FILE).write_text(json.dumps(ex, indent=2))
        ctx.log.info(f"  example neurons: {', '.join(ex['label'])}")
    entries = []
    for name, section, title, caption, make in FIGURES + tuple(extra_figures(ctx)):
        try:
            fig = make(ctx)
        except FileNotFoundError as err:
            ctx.log.info(f"  figure {name}: skipped ({err})")
            continue
        file = save(fig, folder, name, pdf=ctx.cfg.report.pdf)
        entries.append(
            {
                "file": file,
                "title": title,
                "section": section,
                "caption": caption,
                "neuron_id": named_neurons(fig),
            }
        )
    write_index(folder, entries)
    ctx.log.info(f"  {len(entries)} figures in {folder}")
    return entries


def extra_figures(ctx) -> list:
    """Figures of the library's viz modules that need results of later issues."""
    return []
