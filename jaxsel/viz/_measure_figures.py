"""Figures for reliability, selection, information and selectivity.

Every function builds a ``matplotlib.figure.Figure`` directly (no pyplot state), optionally
saves it as PNG (``path``), and returns it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from jaxsel.measures import INFO_THRESHOLD, ranked_information
from jaxsel.viz._style import maybe_save, new_figure, styled


@styled
def oracle_variance_scatter(
    table: xr.Dataset, *, x: str = "variance", y: str = "oracle", path: str | Path | None = None
) -> Figure:
    """Oracle correlation vs variance per neuron, selected neurons highlighted.

    Args:
      table: a selection table (``jaxsel.measures.selection_table``); threshold
        lines are drawn from its ``threshold_*`` attrs when present.
      x, y: the statistics on the axes.
      path: PNG path to save to.
    """
    fig = new_figure(figsize=(5.6, 4.2), layout="constrained")
    ax = fig.add_subplot()
    xv, yv = table[x].values, table[y].values
    sel = table["selected"].values.astype(bool) if "selected" in table else np.zeros(len(xv), bool)
    n_out = int(table["outlier"].values.astype(bool).sum()) if "outlier" in table else 0
    excl_out = "pass_not_outlier" in table  # the rule excluded outliers
    out = ~table["pass_not_outlier"].values.astype(bool) if excl_out else np.zeros(len(xv), bool)
    rest = ~sel & ~out
    ax.scatter(xv[rest], yv[rest], s=10, c="0.6", label=f"not selected ({rest.sum()})", lw=0)
    ax.scatter(xv[sel], yv[sel], s=12, c="C0", label=f"selected ({sel.sum()})", lw=0)
    if excl_out:
        ax.scatter(
            xv[out],
            yv[out],
            s=18,
            c="C3",
            marker="x",
            lw=0.8,
            label=f"excluded as outlier ({out.sum()})",
        )
    others = []
    for key, val in table.attrs.items():
        if not key.startswith("threshold_"):
            continue
        stat, _, crit = key[len("threshold_") :].rpartition("_")
        op = "<" if crit == "max" else ">"
        how = f" ({crit[1:]}th percentile)" if crit.startswith("p") else ""
        text = f"{stat.replace('_', ' ')} {op} {val:.3g}{how}"
        if stat == x:
            ax.axvline(val, color="k", ls="--", lw=0.8, label=text)
        elif stat == y:
            ax.axhline(val, color="k", ls=":", lw=0.9, label=text)
        else:
            others.append(text)
    if others:  # criteria on statistics not on these axes
        ax.plot([], [], " ", label="also: " + "; ".join(others))
    if "outlier" in table and not excl_out:
        ax.plot([], [], " ", label=f"outliers not excluded ({n_out} flagged)")
    if np.nanmin(xv) > 0:
        ax.set_xscale("log")
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(y.replace("_", " "))
    ax.set_title(f"{int(sel.sum())} of {len(sel)} neurons selected")
    ax.legend(fontsize="x-small", frameon=False, loc="best")
    return maybe_save(fig, path)


@styled
def ranked_information_figure(
    curves: Mapping,
    *,
    threshold: float = INFO_THRESHOLD,
    log_x: bool = True,
    title: str | None = None,
    note: str | None = None,
    path: str | Path | None = None,
) -> Figure:
    """Ranked information curves, mean +/- sd over runs, one line per condition.

    Args:
      curves: ``{label: info (run, neuron)}`` (e.g. hyperparameter values, or
        ``{"untrained": ..., "trained": ...}``); runs are sorted per run before averaging.
      threshold: the informative threshold drawn as a dotted line; the figure states how
        many neurons reach it and, when none does, the highest information reached.
      log_x: logarithmic rank axis.
      title: axes title.
      note: an extra line of explanation written in the figure (e.g. why nothing passes).
    """
    fig = new_figure(figsize=(5.6, 4.2), layout="constrained")
    ax = fig.add_subplot()
    n = len(curves)
    for i, (label, info) in enumerate(curves.items()):
        rk = ranked_information(info)
        color = f"C{i % 10}" if n <= 10 else None
        ax.plot(rk["rank"], rk["mean"], color=color, lw=1.3, label=str(label))
        if rk.attrs["n_runs"] > 1:
            ax.fill_between(
                rk["rank"],
                rk["mean"] - rk["sd"],
                rk["mean"] + rk["sd"],
                color=color,
                alpha=0.25,
                lw=0,
            )
    ax.axhline(threshold, color="k", ls=":", lw=0.8, label=f"informative: I >= {threshold:.3g} bit")
    if log_x:
        ax.set_xscale("log")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("neuron rank")
    ax.set_ylabel("I(s; R) [bit]")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", frameon=False, loc="upper right")
    counts = {
        str(k): int(np.sum(ranked_information(v)["mean"] >= threshold)) for k, v in curves.items()
    }
    lines = ["informative neurons: " + ", ".join(f"{k} {c}" for k, c in counts.items())]
    if counts and not any(counts.values()):
        best = max(float(np.nanmax(ranked_information(v)["mean"])) for v in curves.values())
        lines.append(f"none reaches {threshold:.3g} bit: the highest is {best:.2f} bit")
    if note:
        lines.append(note)
    ax.text(0.0, -0.16, "\n".join(lines), transform=ax.transAxes, va="top", fontsize="x-small")
    if title:
        ax.set_title(title)
    return maybe_save(fig, path)


@styled
def informative_counts_figure(table: pd.DataFrame, *, path: str | Path | None = None) -> Figure:
    """Bars of the informative-neuron count (mean +/- SEM) per value, a panel per
    hyperparameter, labelled with the informative fraction in percent.

    Args:
      table: a sweep table (``jaxsel.measures.sweep_table``).
    """
    hps = list(dict.fromkeys(table["hyperparameter"]))
    fig = new_figure(figsize=(2.6 * max(len(hps), 1) + 0.6, 3), layout="constrained")
    axes = fig.subplots(1, max(len(hps), 1), sharey=True, squeeze=False)[0]
    for ax, hp in zip(axes, hps, strict=False):  # one spare axis when hps is empty
        t = table[table["hyperparameter"] == hp]
        xpos = np.arange(len(t))
        sem = np.nan_to_num(np.asarray(t["informative_count_sem"], float))
        bars = ax.bar(xpos, t["informative_count_mean"], yerr=sem, capsize=2, color="C0")
        for b, frac, e in zip(bars, t["informative_fraction_mean"], sem, strict=True):
            ax.annotate(
                f"{100 * frac:.1f}%",
                (b.get_x() + b.get_width() / 2, b.get_height() + e),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize="x-small",
            )
        ax.set_xticks(xpos, [str(v) for v in t["value"]])
        ax.set_xlabel(str(hp))
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    axes[0].set_ylabel("# informative neurons")
    return maybe_save(fig, path)


@styled
def rate_distributions_figure(
    rates: Mapping | xr.DataArray,
    *,
    bins: int = 60,
    positive_only: bool = False,
    log_y: bool = False,
    path: str | Path | None = None,
) -> Figure:
    """Firing-rate distributions of several states (e.g. untrained vs trained) overlaid.

    Args:
      rates: ``{state: rates array}`` or an ``xr.DataArray`` (state, bin) from
        ``jaxsel.measures.rate_distributions``.
      bins, positive_only: passed to ``rate_distributions`` for a mapping.
      log_y: logarithmic density axis (for heavy-tailed rates).
    """
    from jaxsel.measures import rate_distributions

    h = (
        rates
        if isinstance(rates, xr.DataArray)
        else rate_distributions(rates, bins=bins, positive_only=positive_only)
    )
    fig = new_figure(figsize=(5, 3), layout="constrained")
    ax = fig.add_subplot()
    width = h["bin_right"].values - h["bin_left"].values
    for i, state in enumerate(h["state"].values):
        ax.stairs(
            h.sel(state=state).values,
            np.r_[h["bin_left"].values, h["bin_right"].values[-1]],
            color=f"C{i % 10}",
            fill=True,
            alpha=0.35,
            label=str(state),
        )
    ax.set_xlim(h["bin_left"].values[0], h["bin_left"].values[-1] + width[-1])
    if log_y:
        pos = h.values[h.values > 0]
        ax.set_yscale("log")
        if pos.size:
            ax.set_ylim(pos.min() / 2, pos.max() * 2)
    ax.set_xlabel("rate")
    ax.set_ylabel("density" if h.name == "rate_density" else "count")
    ax.legend(fontsize="small", frameon=False)
    return maybe_save(fig, path)


@styled
def selectivity_figure(result: xr.Dataset, *, path: str | Path | None = None) -> Figure:
    """Selectivity index histograms and information per model/noise level
    (a ``compare_models`` result)."""
    fig = new_figure(figsize=(8, 3), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    bins = np.linspace(-1, 1, 41)
    for i, model in enumerate(result["model"].values):
        for j, amp in enumerate(result["noise"].values):
            r = result.sel(model=model, noise=amp)
            ls = ["-", "--", ":", "-."][j % 4]
            label = f"{model}, noise {amp:g}"
            ax1.hist(
                r["selectivity_index"].values,
                bins=bins,
                histtype="step",
                color=f"C{i % 10}",
                ls=ls,
                label=label,
            )
            info = np.sort(r["information"].values)[::-1]
            ax2.plot(np.arange(1, len(info) + 1), info, color=f"C{i % 10}", ls=ls, label=label)
    ax1.set_xlabel("selectivity index")
    ax1.set_ylabel("neurons")
    ax2.set_xlabel("neuron rank")
    ax2.set_ylabel("I(s; R) [bit]")
    ax2.set_ylim(0, 1.05)
    ax2.legend(fontsize="x-small", frameon=False)
    return maybe_save(fig, path)


@styled
def topographic_map_figure(
    maps: xr.DataArray, *, titles=None, cmap: str = "viridis", path: str | Path | None = None
) -> Figure:
    """One image per map of ``jaxsel.measures.topographic_map`` output
    ((y, x) or (k, y, x))."""
    m = maps.values if maps.ndim == 3 else maps.values[None]
    fig = new_figure(figsize=(3 * len(m), 2.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(m)))
    x, y = maps["x"].values, maps["y"].values
    dx = (x[1] - x[0]) / 2 if len(x) > 1 else 0.5
    dy = (y[1] - y[0]) / 2 if len(y) > 1 else 0.5
    for k, ax in enumerate(axes):
        im = ax.imshow(
            m[k],
            origin="lower",
            cmap=cmap,
            extent=(x[0] - dx, x[-1] + dx, y[0] - dy, y[-1] + dy),
            aspect="auto",
        )
        fig.colorbar(im, ax=ax, shrink=0.8)
        if titles is not None:
            ax.set_title(str(titles[k]))
        ax.set_xlabel("cortex x")
        ax.set_ylabel("cortex y")
    return maybe_save(fig, path)


@styled
def raster_figure(
    raster: xr.DataArray, *, vmin: float = 0.0, vmax: float = 1.2, path: str | Path | None = None
) -> Figure:
    """Similarity-sorted raster (``jaxsel.measures.sorted_raster``)."""
    fig = new_figure(figsize=(8, 4), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(
        raster.values, cmap="gray_r", vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest"
    )
    fig.colorbar(im, ax=ax, pad=0.01, label="z-scored activity")
    ax.set_xlabel(f"bins ({raster.attrs.get('bin_size', '?')} trials)")
    ax.set_ylabel("neurons (sorted by similarity)")
    return maybe_save(fig, path)


@styled
def dataset_examples_figure(dataset: xr.Dataset, *, n_images: int = 8) -> Figure:
    """Example training images (0..255 grey scale) and the distribution of single-trial
    responses (log counts) of a dataset."""
    ds = dataset
    tiers = ds["tier"].values
    x = ds["images"].values[tiers == "train"][:n_images, 0]
    fig = new_figure(figsize=(10, 3.6), layout="constrained")
    sub = fig.subfigures(1, 2, width_ratios=[2.4, 1])
    assert isinstance(sub, np.ndarray)  # a 1 x 2 grid: an array of two SubFigures
    axes = sub[0].subplots(2, 4)
    shown = None
    for ax, im in zip(axes.ravel(), x, strict=False):  # up to 8 panels
        shown = ax.imshow(im, cmap="gray", vmin=0, vmax=255)
        ax.set_axis_off()
    if shown is not None:
        sub[0].colorbar(shown, ax=axes.ravel().tolist(), shrink=0.7, label="pixel value (0..255)")
    sub[0].suptitle("example training images (one grey scale)", fontsize=10)
    ax = sub[1].subplots()
    r = ds["responses"].values
    ax.hist(r.ravel(), bins=min(60, int(np.nanmax(r)) + 1 if np.nanmax(r) < 60 else 60), color="C0")
    ax.set_yscale("log")
    ax.set_xlabel("response (count per trial)")
    ax.set_ylabel("trials x neurons")
    ax.set_title(f"{ds.sizes['neuron']} neurons, {ds.sizes['trial']} trials", fontsize=10)
    return fig


@styled
def oracle_truth_figure(table: xr.Dataset, *, spearman: float | None = None) -> Figure:
    """Estimated vs true oracle correlation per neuron (a selection table with
    ``true_oracle``, ``oracle`` and ``selected``); ``spearman`` goes in the title."""
    sel = table
    fig = new_figure(figsize=(4.4, 4), layout="constrained")
    ax = fig.subplots()
    keep = sel["selected"].values.astype(bool)
    t, o = sel["true_oracle"].values, sel["oracle"].values
    ax.scatter(t[~keep], o[~keep], s=10, c="0.6", label="excluded", linewidths=0)
    ax.scatter(t[keep], o[keep], s=12, c="C0", label="selected", linewidths=0)
    lo = float(np.nanmin([t.min(), np.nanmin(o)]))
    ax.plot([lo, 1], [lo, 1], "k--", lw=0.8)
    ax.set_xlabel("true oracle correlation (twin)")
    ax.set_ylabel("estimated oracle correlation")
    m = spearman
    ax.set_title("oracle: estimate vs truth" + (f" (Spearman {m:.2f})" if m else ""))
    ax.legend(frameon=False, fontsize="small")
    return fig


@styled
def selectivity_comparison_figure(selectivity: xr.Dataset) -> Figure:
    """Selectivity-index histograms per model and, for two models, one against the other
    (a dataset with ``selectivity_index`` (model, neuron))."""
    sel = selectivity
    fig = new_figure(figsize=(8, 3.4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for i, m in enumerate(sel["model"].values):
        v = sel["selectivity_index"].sel(model=m).values
        ax1.hist(
            v[np.isfinite(v)],
            bins=np.linspace(-1, 1, 31),
            histtype="step",
            lw=1.5,
            color=f"C{i}",
            label=str(m),
        )
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
