"""Sweep figures: ranked per-neuron metric curves and informative counts per value,
plus the validation score per sweep point. Pure ``matplotlib.figure.Figure`` (no pyplot)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from jaxsel.viz._style import new_figure, save_figure, styled


@styled
def ranked_curves_figure(
    curves: xr.Dataset, *, hparam: str, ylabel: str = "metric", log_x: bool = True
) -> Figure:
    """Ranked curves (point, rank) with ``mean`` and ``sd``: one line per point (band = sd),
    coloured by ``hparam``'s value."""
    fig = new_figure(figsize=(4.5, 3.2))
    ax = fig.add_subplot(111)
    vals = curves[hparam].values if hparam in curves.coords else curves["point"].values
    n = len(vals)
    import matplotlib

    cmap = matplotlib.colormaps["copper"]
    rank = curves["rank"].values
    for i in range(n):
        m = curves["mean"].isel(point=i).values
        s = curves["sd"].isel(point=i).values
        c = cmap(i / max(n - 1, 1))
        ax.plot(
            rank,
            m,
            color=c,
            lw=1.2,
            label=f"{vals[i]:.3g}"
            if np.ndim(vals[i]) == 0 and np.issubdtype(np.asarray(vals[i]).dtype, np.number)
            else str(vals[i]),
        )
        ax.fill_between(rank, m - s, m + s, color=c, alpha=0.15, lw=0)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel("neuron rank")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.4)
    ax.legend(title=hparam, fontsize="x-small", title_fontsize="x-small", loc="lower left")
    fig.tight_layout()
    return fig


@styled
def informative_counts_figure(
    table: pd.DataFrame, *, n_neurons: int | None = None, ylabel: str = "# informative neurons"
) -> Figure:
    """Bars of ``informative_count_mean`` ± SEM per value (a :func:`sweep_summary` table)."""
    fig = new_figure(figsize=(4.5, 3.0))
    ax = fig.add_subplot(111)
    x = np.arange(len(table))
    mean = table["informative_count_mean"].to_numpy(float)
    sem = np.nan_to_num(table["informative_count_sem"].to_numpy(float))
    bars = ax.bar(x, mean, yerr=sem, capsize=2, color="C0")
    if n_neurons:
        for b, m in zip(bars, mean, strict=True):
            ax.annotate(
                f"{100 * m / n_neurons:.1f}%",
                (b.get_x() + b.get_width() / 2, b.get_height()),
                ha="center",
                va="bottom",
                fontsize="x-small",
            )
    ax.set_xticks(x)
    ax.set_xticklabels(
        [f"{v:.3g}" if isinstance(v, (float, np.floating)) else str(v) for v in table["value"]],
        rotation=45,
        fontsize="small",
    )
    ax.set_xlabel(str(table["hyperparameter"].iloc[0]) if len(table) else "value")
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.4)
    fig.tight_layout()
    return fig


@styled
def score_figure(results: xr.Dataset, *, hparam: str, log_x: bool = True) -> Figure:
    """Best validation correlation per point: seeds as dots, mean as a line."""
    fig = new_figure(figsize=(4.0, 3.0))
    ax = fig.add_subplot(111)
    v = results[hparam].values.astype(float)
    sc = results["best_score"].values
    order = np.argsort(v)
    for s in range(sc.shape[1]):
        ax.plot(v, sc[:, s], "o", ms=3, color="0.5")
    ax.plot(v[order], np.nanmean(sc, 1)[order], "-", color="C0")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(hparam)
    ax.set_ylabel("best validation correlation")
    ax.grid(True, alpha=0.4)
    fig.tight_layout()
    return fig


def save(fig: Figure, path) -> Path:
    """Save ``fig`` to ``path`` (PNG at 120 dpi, written atomically); return the path."""
    return save_figure(fig, path, tight=False)


__all__ = ["informative_counts_figure", "ranked_curves_figure", "save", "score_figure"]
