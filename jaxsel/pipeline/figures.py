"""The run's figures: each one drawn from files in the run folder, saved as PNG (+ PDF).

Figures come from :mod:`jaxsel.viz` where a function exists there; the few pipeline-only
panels (dataset examples, image grids of run outputs) are drawn here with the same
conventions (``matplotlib.figure.Figure``, no pyplot state). :func:`draw_all` writes
``figures/<name>.png`` and the manifest ``figures/index.json`` the report reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from jaxsel.viz import insilico_figures, measure_figures


def image_grid(images, *, titles=None, ncols: int = 6, cmap: str = "gray", symmetric=False,
               suptitle: str = "", size: float = 1.6, traces=None,
               center_median: bool = False) -> Figure:
    """A grid of images (n, [1,] y, x), each with its own colour range; optional traces.

    Args:
      images: the images.
      titles: one short title per image.
      ncols: images per row.
      cmap: colour map.
      symmetric: colour range symmetric around 0 (gradients).
      center_median: colour range symmetric around each image's median pixel, so the
        background of stimuli on a grey background shows as the same mid-grey everywhere.
      suptitle: figure title.
      size: inches per panel (width).
      traces: optional (n, step) curves drawn under each image (MEI activation traces).
    """
    a = np.asarray(images, np.float32)
    if a.ndim == 4:
        a = a[:, 0]
    n = len(a)
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    h, w = a.shape[1:]
    rows_per = 2 if traces is not None else 1
    fig = Figure(figsize=(size * ncols, rows_per * nrows * size * h / w * 1.25 + 0.6),
                 layout="constrained")
    axes = fig.subplots(nrows * rows_per, ncols, squeeze=False,
                        height_ratios=([1, 0.6] * nrows) if traces is not None else None)
    for ax in axes.ravel():
        ax.set_axis_off()
    for i in range(n):
        r, c = divmod(i, ncols)
        ax = axes[r * rows_per, c]
        if not np.isfinite(a[i]).any():         # padding
            continue
        if symmetric or center_median:
            m = float(np.nanmedian(a[i])) if center_median else 0.0
            v = float(np.nanmax(np.abs(a[i] - m))) or 1.0
            ax.imshow(a[i], cmap=cmap, vmin=m - v, vmax=m + v)
        else:
            ax.imshow(a[i], cmap=cmap)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=7)
        if traces is not None:
            tx = axes[r * rows_per + 1, c]
            tx.set_axis_on()
            t = np.asarray(traces[i], float)
            tx.plot(t[np.isfinite(t)], lw=1)
            tx.tick_params(labelsize=5)
            tx.set_xlabel("step", fontsize=6)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def paired_grid(top, bottom, top_titles, bottom_titles, *, ncols: int = 6, **kw) -> Figure:
    """Two image sets in alternating row blocks: ``ncols`` of ``top``, then their ``bottom``."""
    top, bottom = np.asarray(top), np.asarray(bottom)
    n = len(top)
    ncols = max(1, min(ncols, n))
    imgs, titles = [], []
    blank = np.full_like(top[0], np.nan)
    for s in range(0, n, ncols):
        for src, tt in ((top, top_titles), (bottom, bottom_titles)):
            block = list(src[s:s + ncols])
            names = list(tt[s:s + ncols])
            pad = ncols - len(block)
            imgs += block + [blank] * pad
            titles += names + [""] * pad
    fig = image_grid(np.stack(imgs), titles=titles, ncols=ncols, **kw)
    return fig


def save(fig: Figure, folder: Path, name: str, *, pdf: bool) -> str:
    """Save ``fig`` as ``folder/name.png`` (+ PDF); return the PNG's file name."""
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / f"{name}.png", dpi=120)
    if pdf:
        fig.savefig(folder / f"{name}.pdf")
    return f"{name}.png"


def write_index(folder: Path, entries: list[dict]) -> Path:
    """Write the figure manifest the report reads."""
    path = folder / "index.json"
    path.write_text(json.dumps(entries, indent=2))
    return path


# =========================================================================== the run's figures

def fig_data_examples(ctx) -> Figure:
    """Example images and the response distribution."""
    ds = ctx.dataset()
    tiers = ds["tier"].values
    x = ds["images"].values[tiers == "train"][:8, 0]
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    sub = fig.subfigures(1, 2, width_ratios=[2.4, 1])
    axes = sub[0].subplots(2, 4)
    for ax, im in zip(axes.ravel(), x):
        ax.imshow(im, cmap="gray", vmin=0, vmax=255)
        ax.set_axis_off()
    sub[0].suptitle("example training images", fontsize=10)
    ax = sub[1].subplots()
    r = ds["responses"].values
    ax.hist(r.ravel(), bins=min(60, int(np.nanmax(r)) + 1 if np.nanmax(r) < 60 else 60),
            color="C0")
    ax.set_yscale("log")
    ax.set_xlabel("response (per trial)")
    ax.set_ylabel("trials x neurons")
    ax.set_title(f"{ds.sizes['neuron']} neurons, {ds.sizes['trial']} trials", fontsize=10)
    return fig


def fig_selection(ctx) -> Figure:
    return measure_figures.oracle_variance_scatter(ctx.selection())


def fig_oracle_truth(ctx) -> Figure:
    sel = ctx.selection()
    if "true_oracle" not in sel:
        raise FileNotFoundError("no ground truth")
    fig = Figure(figsize=(4.4, 4), layout="constrained")
    ax = fig.subplots()
    keep = sel["selected"].values.astype(bool)
    t, o = sel["true_oracle"].values, sel["oracle"].values
    ax.scatter(t[~keep], o[~keep], s=10, c="0.6", label="excluded", linewidths=0)
    ax.scatter(t[keep], o[keep], s=12, c="C0", label="selected", linewidths=0)
    lo = float(np.nanmin([t.min(), np.nanmin(o)]))
    ax.plot([lo, 1], [lo, 1], "k--", lw=0.8)
    ax.set_xlabel("true oracle correlation (twin)")
    ax.set_ylabel("estimated oracle correlation")
    m = ctx.rd.metrics().get("oracle_spearman_vs_truth")
    ax.set_title("oracle: estimate vs truth" + (f" (Spearman {m:.2f})" if m else ""))
    ax.legend(frameon=False, fontsize="small")
    return fig


def _mei(ctx, tag):
    from jaxsel.pipeline.insilico_stages import load_mei
    if not (ctx.rd / f"mei_{tag}.nc").is_file():
        raise FileNotFoundError(f"mei_{tag}.nc")
    return load_mei(ctx.rd.path, tag)


def _examples(ctx, n_total: int) -> np.ndarray:
    n = min(ctx.cfg.report.n_examples, n_total)
    return np.linspace(0, n_total - 1, n).round().astype(int) if n else np.arange(0)


def _kind_labels(ctx, neuron_id):
    twin = ctx.twin()
    if twin is None:
        return [f"#{i}" for i in neuron_id]
    k = twin.kinds[np.searchsorted(twin.neuron_id, neuron_id)]
    return [f"#{i} {kk[:4]}" for i, kk in zip(neuron_id, k)]


def fig_mei(ctx, tag: str) -> Figure:
    res = _mei(ctx, tag)
    fig = insilico_figures.mei_grid(res, max_neurons=ctx.cfg.report.n_examples)
    fig.suptitle(f"MEIs of the {'CNN model' if tag == 'model' else 'true neurons'} with "
                 "activation traces")
    return fig


def fig_mei_vs_truth(ctx) -> Figure:
    twin = ctx.twin()
    res = _mei(ctx, "model")
    if twin is None:
        raise FileNotFoundError("no ground truth")
    from jaxsel.data.twin import optimal_stimuli
    ex = _examples(ctx, res.sizes["neuron"])
    ids = res["neuron_id"].values[ex]
    opt = optimal_stimuli(twin)[np.searchsorted(twin.neuron_id, ids)]
    mei = res["mei"].values[ex, 0] - 127.5
    lab = _kind_labels(ctx, ids)
    return paired_grid(mei, opt, [f"model {t}" for t in lab], [f"true opt. {t}" for t in lab],
                       symmetric=True, suptitle="model MEIs (upper rows) vs the true optimal "
                                                "stimuli (lower rows), contrast images")


def fig_grad_rf(ctx, tag: str) -> Figure:
    from jaxsel.data.zarr_store import load_zarr
    p = ctx.rd / "arrays" / f"grad_rf_{tag}.zarr"
    if not p.exists():
        raise FileNotFoundError(str(p))
    rf = load_zarr(p)
    fig = insilico_figures.gradient_rf_grid(rf, max_neurons=2 * ctx.cfg.report.n_examples)
    fig.suptitle(f"Gradient receptive fields of the "
                 f"{'CNN' if tag == 'model' else 'true neurons'} (at the mean image)")
    return fig


def fig_cross(ctx) -> Figure:
    from jaxsel.pipeline.context import open_nc
    p = ctx.rd / "cross_activation.nc"
    if not p.is_file():
        raise FileNotFoundError(str(p))
    return insilico_figures.cross_activation_figure(open_nc(p)["cross_activation"])


def fig_gabor_vs_mei(ctx, tag: str) -> Figure:
    from jaxsel.data.zarr_store import load_zarr
    from jaxsel.pipeline.context import open_nc
    p = ctx.rd / "arrays" / f"gabor_{tag}.zarr"
    if not p.exists():
        raise FileNotFoundError(str(p))
    gab = load_zarr(p).values
    g = open_nc(ctx.rd / f"gabor_{tag}.nc")
    mei = _mei(ctx, tag)
    ex = _examples(ctx, len(gab))
    ids = g["neuron_id"].values[ex]
    lab = _kind_labels(ctx, ids)
    act_m = mei["activation"].values[ex]
    act_g = g["response"].values[ex]
    return paired_grid(mei["mei"].values[ex, 0], gab[ex, 0],
                       [f"MEI {t}\nr={a:.1f}" for t, a in zip(lab, act_m)],
                       [f"Gabor\nr={a:.1f}" for a in act_g],
                       suptitle=f"MEI (upper rows) vs optimal Gabor (lower rows), "
                                f"{'CNN' if tag == 'model' else 'true neurons'}; r = rate",
                       center_median=True)


def fig_comparison(ctx, tag: str) -> Figure:
    from jaxsel.pipeline.context import open_nc
    p = ctx.rd / f"comparison_{tag}.nc"
    if not p.is_file():
        raise FileNotFoundError(str(p))
    c = open_nc(p)
    names = [str(s) for s in c["stimulus"].values]
    keys = [k for k in ("activation", "contrast", "si_2", "sf") if k in c]
    fig = Figure(figsize=(3.0 * len(keys), 3.2), layout="constrained")
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    for ax, k in zip(axes, keys):
        v = [c[k].sel(stimulus=s).values for s in names]
        ax.boxplot(v, tick_labels=names)
        ax.set_title(k)
    fig.suptitle("MEI vs optimal Gabor vs best natural image: activation and image metrics")
    return fig


def fig_models(ctx) -> Figure:
    """LN vs CNN test correlation per neuron, and correlation histograms."""
    from jaxsel.pipeline.context import open_nc
    p = ctx.rd / "evaluation.nc"
    if not p.is_file():
        raise FileNotFoundError(str(p))
    ev = open_nc(p)
    models = [str(m) for m in ev["model"].values]
    has_truth = "truth_correlation" in ev
    fig = Figure(figsize=(12 if has_truth else 8.5, 3.8), layout="constrained")
    axes = fig.subplots(1, 3 if has_truth else 2)
    a, b = models[0], models[-1]
    x = ev["test_correlation"].sel(model=a).values
    y = ev["test_correlation"].sel(model=b).values
    kinds = ev["kind"].values.astype(str) if "kind" in ev.coords else None
    if kinds is not None:
        for i, k in enumerate(np.unique(kinds)):
            m = kinds == k
            axes[0].scatter(x[m], y[m], s=12, c=f"C{i}", label=k, linewidths=0)
        axes[0].legend(frameon=False, fontsize="small")
    else:
        axes[0].scatter(x, y, s=12, linewidths=0)
    lo = float(np.nanmin([x.min(), y.min(), 0]))
    hi = float(np.nanmax([x.max(), y.max()]))
    axes[0].plot([lo, hi], [lo, hi], "k--", lw=0.8)
    axes[0].set_xlabel(f"{a}: test correlation")
    axes[0].set_ylabel(f"{b}: test correlation")
    axes[0].set_title(f"{a} vs {b} (single trials)")
    bins = np.linspace(min(-0.1, lo), 1, 34)
    for i, m in enumerate(models):
        v = ev["test_correlation"].sel(model=m).values
        axes[1].hist(v[np.isfinite(v)], bins=bins, histtype="step", lw=1.5, color=f"C{i}",
                     label=f"{m} (median {np.nanmedian(v):.2f})")
    o = ev["oracle"].sel(model=models[-1]).values
    axes[1].hist(o[np.isfinite(o)], bins=bins, histtype="step", lw=1, color="0.5", ls="--",
                 label=f"oracle (median {np.nanmedian(o):.2f})")
    axes[1].set_xlabel("test correlation")
    axes[1].set_ylabel("neurons")
    axes[1].set_title("correlation to single trials")
    axes[1].legend(frameon=False, fontsize="small")
    if has_truth:
        for i, m in enumerate(models):
            v = ev["truth_correlation"].sel(model=m).values
            axes[2].hist(v[np.isfinite(v)], bins=np.linspace(-0.2, 1, 31), histtype="step",
                         lw=1.5, color=f"C{i}", label=f"{m} (median {np.nanmedian(v):.2f})")
        axes[2].set_xlabel("correlation to the true noise-free response")
        axes[2].set_ylabel("neurons")
        axes[2].set_title("twin: model vs truth")
        axes[2].legend(frameon=False, fontsize="small")
    return fig


def fig_information(ctx) -> Figure:
    from jaxsel.pipeline.context import open_nc
    p = ctx.rd / "selectivity.nc"
    if not p.is_file():
        raise FileNotFoundError(str(p))
    sel = open_nc(p)
    curves = {str(m): sel["information"].sel(model=m).values for m in sel["model"].values}
    return measure_figures.ranked_information_figure(
        curves, title="I(preferred orientation present; R)")


def fig_selectivity(ctx) -> Figure:
    from jaxsel.pipeline.context import open_nc
    p = ctx.rd / "selectivity.nc"
    if not p.is_file():
        raise FileNotFoundError(str(p))
    sel = open_nc(p)
    fig = Figure(figsize=(8, 3.4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for i, m in enumerate(sel["model"].values):
        v = sel["selectivity_index"].sel(model=m).values
        ax1.hist(v[np.isfinite(v)], bins=np.linspace(-1, 1, 31), histtype="step", lw=1.5,
                 color=f"C{i}", label=str(m))
    ax1.set_xlabel("selectivity index (preferred orientation present vs absent)")
    ax1.set_ylabel("neurons")
    ax1.legend(frameon=False)
    models = [str(m) for m in sel["model"].values]
    if len(models) >= 2:
        a = sel["selectivity_index"].sel(model=models[0]).values
        b = sel["selectivity_index"].sel(model=models[1]).values
        ax2.scatter(b, a, s=12, linewidths=0)
        ax2.plot([-1, 1], [-1, 1], "k--", lw=0.8)
        ax2.set_xlabel(f"{models[1]}: selectivity index")
        ax2.set_ylabel(f"{models[0]}: selectivity index")
    fig.suptitle("orientation selectivity of the model and of the true neurons")
    return fig


def fig_spectra(ctx) -> Figure:
    from jaxsel.data.zarr_store import load_zarr
    p = ctx.rd / "arrays" / "gabor_model.zarr"
    if not p.exists():
        raise FileNotFoundError(str(p))
    mei = _mei(ctx, "model")
    i = int(np.argmax(mei["activation"].values))
    gab = load_zarr(p).values
    return insilico_figures.power_spectra_figure(
        {f"MEI #{mei['neuron_id'].values[i]}": mei["mei"].values[i, 0],
         "optimal Gabor": gab[i, 0]})


def fig_recovery(ctx) -> Figure:
    from jaxsel.pipeline.context import open_nc
    p = ctx.rd / "recovery_model.nc"
    if not p.is_file():
        raise FileNotFoundError(str(p))
    rec = open_nc(p)
    kinds = rec["kind"].values.astype(str)
    fig = Figure(figsize=(11, 3.4), layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, (k, label) in zip(axes, (("pearson_r", "r(MEI, true optimum)"),
                                     ("phase_match", "phase-invariant match"),
                                     ("frac_true_max", "true drive / true max"))):
        for i, kind in enumerate(("simple", "complex", "suppressed")):
            v = rec[k].values[kinds == kind]
            v = v[np.isfinite(v)]
            if len(v):
                ax.hist(v, bins=np.linspace(-0.2 if k == "pearson_r" else 0, 1.05, 26),
                        histtype="step", lw=1.5, color=f"C{i}", label=f"{kind} ({len(v)})")
        ax.set_xlabel(label)
        ax.set_ylabel("neurons")
    axes[0].legend(frameon=False, fontsize="small")
    gp = ctx.rd / "gabor_recovery_model.nc"
    title = "ground-truth recovery of the model's MEIs"
    if gp.is_file():
        err = open_nc(gp)["theta_error_deg"].values
        title += f"; Gabor orientation error median {np.nanmedian(err):.1f} deg"
    fig.suptitle(title)
    return fig


# name, section, title, caption, producer
FIGURES = (
    ("data_examples", "data", "Dataset", "Example training images and the distribution of "
     "single-trial responses.", fig_data_examples),
    ("selection", "selection", "Neuron selection", "Oracle correlation vs response variance; "
     "dashed lines are the rule's thresholds.", fig_selection),
    ("oracle_vs_truth", "selection", "Oracle correlation vs truth", "The estimated oracle "
     "correlation of each neuron against the twin's true value.", fig_oracle_truth),
    ("model_quality", "models", "Model quality", "Left: single-trial test correlation of "
     "the LN model vs the CNN per neuron. Middle: distributions, with the oracle "
     "correlation (upper bound). Right (twin): correlation of each model with the true "
     "noise-free response on the test images.", fig_models),
    ("mei_model", "mei", "MEIs of the CNN", "Most exciting inputs of the trained CNN at the "
     "contrast budget, with the activation during the ascent.",
     lambda c: fig_mei(c, "model")),
    ("mei_truth", "mei", "MEIs of the true neurons", "The same optimisation on the twin's "
     "noise-free neurons.", lambda c: fig_mei(c, "truth")),
    ("mei_vs_truth", "recovery", "Model MEIs vs true optimal stimuli", "Contrast images; "
     "complex cells' optima are one phase of the quadrature pair.", fig_mei_vs_truth),
    ("grad_rf_model", "rf", "Gradient RFs of the CNN", "d rate / d pixel at the mean image.",
     lambda c: fig_grad_rf(c, "model")),
    ("grad_rf_truth", "rf", "Gradient RFs of the true neurons", "d rate / d pixel at the "
     "mean image.", lambda c: fig_grad_rf(c, "truth")),
    ("cross_activation", "cross", "Cross-activation", "Each neuron's response to every MEI, "
     "normalised by its maximum.", fig_cross),
    ("gabor_vs_mei_model", "gabor", "MEI vs optimal Gabor (CNN)", "Both at the same contrast "
     "budget; r is the model's rate.", lambda c: fig_gabor_vs_mei(c, "model")),
    ("gabor_vs_mei_truth", "gabor", "MEI vs optimal Gabor (truth)", "Both at the same "
     "contrast budget; r is the true rate.", lambda c: fig_gabor_vs_mei(c, "truth")),
    ("comparison_model", "gabor", "Image metrics", "Model activation, masked contrast, 2-fold "
     "symmetry index and dominant spatial frequency of MEIs, Gabors and the best natural "
     "images.", lambda c: fig_comparison(c, "model")),
    ("power_spectra", "gabor", "Power spectra", "Log power spectrum and axial average (with "
     "symmetry indices) of the most activating MEI and its optimal Gabor.", fig_spectra),
    ("information", "information", "Ranked information", "Single-neuron information "
     "(Poisson, from noise-free rates) about whether the neuron's preferred orientation is "
     "present in a test image; dotted: the 2/3-bit 'informative' threshold.",
     fig_information),
    ("selectivity", "information", "Selectivity", "Selectivity index of each neuron for its "
     "preferred orientation, model vs truth.", fig_selectivity),
    ("recovery", "recovery", "Ground-truth recovery", "Pearson r of model MEIs with the true "
     "optimal stimulus, phase-invariant match, and the true drive the MEI reaches relative "
     "to the true optimum.", fig_recovery),
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
        entries.append({"file": file, "title": title, "section": section,
                        "caption": caption})
    write_index(folder, entries)
    ctx.log.info(f"  {len(entries)} figures in {folder}")
    return entries


def extra_figures(ctx) -> list:
    """Figures of the library's viz modules that need results of later issues."""
    return []
