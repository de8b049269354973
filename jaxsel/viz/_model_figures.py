"""Figures of model quality: correlation histograms, LN-vs-CNN scatter, training curves.

Every function builds a ``matplotlib.figure.Figure`` directly (no pyplot state, no backend
selection), returns it, and saves a PNG when ``path`` is given.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from jaxsel.viz._style import maybe_save, new_figure, styled


def _values(x, measure: str):
    """A DataArray/Dataset/array -> 1-D NumPy values."""
    if hasattr(x, "data_vars"):
        x = x[measure]
    return np.asarray(getattr(x, "values", x), dtype=float).ravel()


@styled
def correlation_histogram(
    values,
    *,
    measure: str = "test_correlation",
    groups=None,
    title: str | None = None,
    bins: int = 40,
    path=None,
) -> Figure:
    """Histogram of per-neuron correlations with the mean (and per-group medians).

    Args:
      values: an evaluation ``xr.Dataset`` (uses ``measure``), a DataArray, or an array.
      measure: the variable to plot when ``values`` is a Dataset.
      groups: optional (neuron,) labels (e.g. the twin's cell kinds); one histogram each.
      title: figure title.
      bins: histogram bins.
      path: save a PNG here.
    """
    v = _values(values, measure)
    fig = new_figure(figsize=(4.5, 3.2))
    ax = fig.add_subplot()
    lo = min(-0.1, np.nanmin(v) if np.isfinite(v).any() else 0)
    edges = np.linspace(lo, 1.0, bins + 1).tolist()  # hist's stub takes a Sequence, not an array
    if groups is None:
        ax.hist(v[np.isfinite(v)], bins=edges, color="k")
        m = np.nanmean(v)
        ax.axvline(m, color="r")
        ax.text(m, ax.get_ylim()[1] * 0.95, f" mean = {m:.3f}", color="r", va="top")
    else:
        groups = np.asarray(groups)
        for g in np.unique(groups):
            sel = v[(groups == g) & np.isfinite(v)]
            ax.hist(
                sel,
                bins=edges,
                histtype="step",
                lw=1.5,
                label=f"{g} (median {np.median(sel):.2f})" if sel.size else str(g),
            )
        ax.legend(frameon=False, fontsize=7)
    ax.set_xlabel(measure.replace("_", " "))
    ax.set_ylabel("neurons")
    ax.spines[["top", "right"]].set_visible(False)
    if title:
        ax.set_title(title)
    return maybe_save(fig, path)


@styled
def ln_vs_cnn_scatter(
    ln,
    cnn,
    *,
    measure: str = "test_correlation",
    groups=None,
    labels=("LN", "CNN"),
    title: str | None = None,
    path=None,
) -> Figure:
    """Per-neuron scatter of two models' scores with the identity line.

    Args:
      ln, cnn: evaluation Datasets (uses ``measure``), DataArrays or arrays (same neurons).
      measure: the variable to compare.
      groups: optional (neuron,) labels to colour by (e.g. cell kinds).
      labels: axis labels.
      title: figure title.
      path: save a PNG here.
    """
    a, b = _values(ln, measure), _values(cnn, measure)
    if a.shape != b.shape:
        raise ValueError(f"the two models have {a.size} and {b.size} neurons")
    fig = new_figure(figsize=(3.8, 3.8))
    ax = fig.add_subplot()
    if groups is None:
        ax.scatter(a, b, s=4, color="k")
    else:
        groups = np.asarray(groups)
        for g in np.unique(groups):
            sel = groups == g
            ax.scatter(a[sel], b[sel], s=5, label=str(g))
        ax.legend(frameon=False, fontsize=7, markerscale=2)
    lo = min(0.0, np.nanmin(a), np.nanmin(b))
    ax.plot([lo, 1], [lo, 1], color="r", lw=1)
    ax.set_xlim(lo, 1)
    ax.set_ylim(lo, 1)
    ax.set_aspect("equal")
    ax.set_xlabel(f"{labels[0]} {measure.replace('_', ' ')}")
    ax.set_ylabel(f"{labels[1]} {measure.replace('_', ' ')}")
    ax.spines[["top", "right"]].set_visible(False)
    if title:
        ax.set_title(title)
    return maybe_save(fig, path)


@styled
def training_curves(history, *, title: str | None = None, path=None) -> Figure:
    """Training loss and validation correlation per epoch, learning rate and best epoch.

    Args:
      history: ``FitResult.history`` (xr.Dataset over ``epoch``), a FitResult, or a dict of
        lists with ``loss``, ``val_correlation`` (and optionally ``lr``, ``epoch``).
      title: figure title.
      path: save a PNG here.
    """
    if hasattr(history, "history"):
        history = history.history

    def get(k):
        return np.asarray(history[k].values if hasattr(history[k], "values") else history[k], float)

    loss, val = get("loss"), get("val_correlation")
    epochs = get("epoch") if "epoch" in history else np.arange(len(loss))
    fig = new_figure(figsize=(7.5, 3.0))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(epochs, loss, color="k")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss / trial / neuron")
    ax2.plot(epochs, val, color="C0")
    if len(val) and np.isfinite(val).any():
        best = int(np.nanargmax(val))
        ax2.plot(epochs[best], val[best], "o", color="r")
        ax2.annotate(
            f"best {val[best]:.3f} @ {int(epochs[best])}",
            (epochs[best], val[best]),
            textcoords="offset points",
            xytext=(4, -12),
            fontsize=7,
            color="r",
        )
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation correlation")
    if "lr" in history:
        lr = get("lr")
        for e in epochs[1:][np.diff(lr) != 0]:
            ax2.axvline(e, color="0.7", lw=0.8, ls="--")
    for ax in (ax1, ax2):
        ax.spines[["top", "right"]].set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return maybe_save(fig, path)


__all__ = ["correlation_histogram", "ln_vs_cnn_scatter", "training_curves"]


@styled
def model_quality_figure(evaluation: xr.Dataset) -> Figure:
    """Model quality from an ``evaluate`` dataset (model, neuron): first vs last model's
    test correlation per neuron, test-correlation histograms with the oracle, and (if
    present) histograms of the correlation to the true noise-free response."""
    ev = evaluation
    models = [str(m) for m in ev["model"].values]
    has_truth = "truth_correlation" in ev
    fig = new_figure(figsize=(12 if has_truth else 8.5, 3.8), layout="constrained")
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
    _correlation_histograms(axes[1], ev, models, lo)
    if has_truth:
        for i, m in enumerate(models):
            v = ev["truth_correlation"].sel(model=m).values
            axes[2].hist(
                v[np.isfinite(v)],
                bins=np.linspace(-0.2, 1, 31),
                histtype="step",
                lw=1.5,
                color=f"C{i}",
                label=f"{m} (median {np.nanmedian(v):.2f})",
            )
        axes[2].set_xlabel("correlation to the true noise-free response")
        axes[2].set_ylabel("neurons")
        axes[2].set_title("twin: model vs truth")
        axes[2].legend(frameon=False, fontsize="small")
    return fig


def _correlation_histograms(ax, ev: xr.Dataset, models: list[str], lo: float) -> None:
    bins = np.linspace(min(-0.1, lo), 1, 34)
    for i, m in enumerate(models):
        v = ev["test_correlation"].sel(model=m).values
        ax.hist(
            v[np.isfinite(v)],
            bins=bins,
            histtype="step",
            lw=1.5,
            color=f"C{i}",
            label=f"{m} (median {np.nanmedian(v):.2f})",
        )
    o = ev["oracle"].sel(model=models[-1]).values
    ax.hist(
        o[np.isfinite(o)],
        bins=bins,
        histtype="step",
        lw=1,
        color="0.5",
        ls="--",
        label=f"oracle (median {np.nanmedian(o):.2f})",
    )
    ax.set_xlabel("test correlation")
    ax.set_ylabel("neurons")
    ax.set_title("correlation to single trials")
    ax.legend(frameon=False, fontsize="small")
