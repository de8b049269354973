"""The figure functions of a run: each picks its data from the run folder (raising
``FileNotFoundError`` when a stage has not written it) and draws it with :mod:`jaxsel.viz`;
also the example neurons every figure shows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from jaxsel.data import BACKGROUND, SCALE, load_zarr, optimal_stimuli
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
    selectivity_comparison_figure,
)


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
