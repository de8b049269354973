"""Figures of model quality: correlation histograms, LN-vs-CNN scatter, training curves.

Every function builds a ``matplotlib.figure.Figure`` directly (no pyplot state, no backend
selection), returns it, and saves a PNG when ``path`` is given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def _save(fig: Figure, path) -> Figure:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150, bbox_inches="tight")
    return fig


def _values(x, measure: str):
    """A DataArray/Dataset/array -> 1-D NumPy values."""
    if hasattr(x, "data_vars"):
        x = x[measure]
    return np.asarray(getattr(x, "values", x), dtype=float).ravel()


def correlation_histogram(values, *, measure: str = "test_correlation", groups=None,
                          title: str | None = None, bins: int = 40, path=None) -> Figure:
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
    fig = Figure(figsize=(4.5, 3.2))
    ax = fig.add_subplot()
    edges = np.linspace(min(-0.1, np.nanmin(v) if np.isfinite(v).any() else 0), 1.0, bins + 1)
    if groups is None:
        ax.hist(v[np.isfinite(v)], bins=edges, color="k")
        m = np.nanmean(v)
        ax.axvline(m, color="r")
        ax.text(m, ax.get_ylim()[1] * 0.95, f" mean = {m:.3f}", color="r", va="top")
    else:
        groups = np.asarray(groups)
        for g in np.unique(groups):
            sel = v[(groups == g) & np.isfinite(v)]
            ax.hist(sel, bins=edges, histtype="step", lw=1.5,
                    label=f"{g} (median {np.median(sel):.2f})" if sel.size else str(g))
        ax.legend(frameon=False, fontsize=7)
    ax.set_xlabel(measure.replace("_", " "))
    ax.set_ylabel("neurons")
    ax.spines[["top", "right"]].set_visible(False)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def ln_vs_cnn_scatter(ln, cnn, *, measure: str = "test_correlation", groups=None,
                      labels=("LN", "CNN"), title: str | None = None, path=None) -> Figure:
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
    fig = Figure(figsize=(3.8, 3.8))
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
    return _save(fig, path)


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
    get = (lambda k: np.asarray(history[k].values if hasattr(history[k], "values")
                                else history[k], float))
    loss, val = get("loss"), get("val_correlation")
    epochs = get("epoch") if "epoch" in history else np.arange(len(loss))
    fig = Figure(figsize=(7.5, 3.0))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(epochs, loss, color="k")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss / trial / neuron")
    ax2.plot(epochs, val, color="C0")
    if len(val) and np.isfinite(val).any():
        best = int(np.nanargmax(val))
        ax2.plot(epochs[best], val[best], "o", color="r")
        ax2.annotate(f"best {val[best]:.3f} @ {int(epochs[best])}", (epochs[best], val[best]),
                     textcoords="offset points", xytext=(4, -12), fontsize=7, color="r")
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
    return _save(fig, path)


__all__ = ["correlation_histogram", "ln_vs_cnn_scatter", "training_curves"]
