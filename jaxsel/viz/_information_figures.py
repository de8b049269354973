"""Figure of single-neuron information measured against the truth (the twin)."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from jaxsel.viz._style import new_figure, styled


@styled
def information_truth_figure(table: xr.Dataset, noisy: xr.Dataset | None = None) -> Figure:
    """Estimated vs true information per neuron, and informative counts vs input noise.

    Args:
      table: ``information`` (neuron, source) in bits with ``spearman`` and ``informative``
        per source and attrs ``reference`` and ``threshold``
        (:func:`jaxsel.measures.information_table`).
      noisy: the same over ``input_noise`` (:func:`jaxsel.measures.information_vs_input_noise`),
        or None for the left panel only.

    Returns:
      The figure: left, each non-reference source's information against the reference's
      (threshold lines dotted, Spearman in the legend); right, the informative-neuron count of
      every source against the input's pixel-noise sd.
    """
    ref = str(table.attrs.get("reference", "true"))
    thr = float(table.attrs.get("threshold", 2 / 3))
    sources = [str(s) for s in table["source"].values]
    panels = 2 if noisy is not None and noisy.sizes.get("input_noise", 0) > 1 else 1
    fig = new_figure(figsize=(4.2 * panels, 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, panels))
    ax = axes[0]
    x = table["information"].sel(source=ref).values
    for i, s in enumerate(src for src in sources if src != ref):
        y = table["information"].sel(source=s).values
        rho = float(table["spearman"].sel(source=s))
        ax.scatter(
            x, y, s=14, linewidths=0, color=f"C{i}", alpha=0.8, label=f"{s} (Spearman {rho:.2f})"
        )
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.axvline(thr, color="grey", ls=":", lw=0.8)
    ax.axhline(thr, color="grey", ls=":", lw=0.8)
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(f"{ref} information (bit)")
    ax.set_ylabel("model information (bit)")
    counts = ", ".join(f"{s} {int(table['informative'].sel(source=s))}" for s in sources)
    ax.set_title(f"informative (I >= {thr:.2f} bit): {counts}", fontsize="small")
    ax.legend(loc="upper left", fontsize="small")
    if panels == 2 and noisy is not None:
        ax2 = axes[1]
        sig = noisy["input_noise"].values
        for s in sources:
            color = "k" if s == ref else f"C{[t for t in sources if t != ref].index(s)}"
            ax2.plot(sig, noisy["informative"].sel(source=s).values, "o-", color=color, label=s)
        ax2.set_xlabel("input noise (pixel sd, raw grey levels)")
        ax2.set_ylabel("informative neurons")
        ax2.legend(fontsize="small")
    return fig
