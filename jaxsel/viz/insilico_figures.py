"""Figures for in-silico experiments: MEI grids with activation traces, gradient RFs,
cross-activation matrices, Gabor vs MEI panels, power spectra and sensitivity overlays.

Every function builds a :class:`matplotlib.figure.Figure` (no pyplot state), optionally saves
it as PNG to ``path`` and returns it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from jaxsel.errors import ConfigError


def _save(fig: Figure, path) -> Figure:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


def _img2d(a) -> np.ndarray:
    a = np.asarray(a, np.float32)
    while a.ndim > 2:
        a = a[0]
    return a


def _grid(n: int, ncols: int) -> tuple[int, int]:
    ncols = max(1, min(ncols, n))
    return int(np.ceil(n / ncols)), ncols


def _select(n_total: int, max_panels: int) -> np.ndarray:
    return np.arange(min(n_total, max_panels))


def mei_grid(result: xr.Dataset, *, max_neurons: int = 24, ncols: int = 6, path=None
             ) -> Figure:
    """MEIs (best seed) with the activation trace of every seed under each image.

    Args:
      result: output of :func:`jaxsel.insilico.mei.optimize_meis`.
      max_neurons: at most this many neurons (the first ones).
      ncols: neurons per row.
      path: optional PNG path.
    """
    from jaxsel.insilico.mei import best_seed

    if "mei" not in result:
        raise ConfigError("mei_grid needs an optimize_meis result (with 'mei' and 'trace')")
    sel = _select(result.sizes["neuron"], max_neurons)
    best = best_seed(result) if "seed" in result.dims else result
    rows, cols = _grid(len(sel), ncols)
    fig = Figure(figsize=(2.2 * cols, 2.6 * rows))
    gs = fig.add_gridspec(2 * rows, cols, height_ratios=[3, 1] * rows, hspace=0.35)
    for j, i in enumerate(sel):
        r, c = divmod(j, cols)
        ax = fig.add_subplot(gs[2 * r, c])
        img = _img2d(best["mei"].isel(neuron=i).values)
        ax.imshow(img, cmap="gray")
        act = float(best["activation"].isel(neuron=i).sum())
        ax.set_title(f"n{best['neuron_id'].values[i]}  {act:.3g}", fontsize=8)
        ax.axis("off")
        tx = fig.add_subplot(gs[2 * r + 1, c])
        tr = result["trace"].isel(neuron=i).values.reshape(-1, result.sizes["step"])
        for t in tr:
            tx.plot(t, lw=0.8)
        tx.tick_params(labelsize=6)
        if c == 0:
            tx.set_ylabel("rate", fontsize=7)
    return _save(fig, path)


def gradient_rf_grid(rf: xr.DataArray, *, max_neurons: int = 32, ncols: int = 8, path=None
                     ) -> Figure:
    """Gradient receptive fields, each on a symmetric diverging colour scale."""
    sel = _select(rf.sizes["neuron"], max_neurons)
    rows, cols = _grid(len(sel), ncols)
    fig = Figure(figsize=(1.8 * cols, 1.2 * rows + 0.3))
    for j, i in enumerate(sel):
        ax = fig.add_subplot(rows, cols, j + 1)
        a = _img2d(rf.isel(neuron=i).values)
        v = float(np.abs(a).max()) or 1.0
        ax.imshow(a, cmap="RdBu_r", vmin=-v, vmax=v)
        ax.set_title(f"n{rf['neuron_id'].values[i]}", fontsize=7)
        ax.axis("off")
    fig.suptitle("Gradient receptive fields", fontsize=9)
    return _save(fig, path)


def cross_activation_figure(ca: xr.DataArray, *, path=None) -> Figure:
    """Cross-activation matrix: rows = MEIs, columns = neurons (normalised per neuron)."""
    fig = Figure(figsize=(5, 4.3))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(ca.values, cmap="gray", vmin=0, vmax=max(1.0, float(np.nanmax(ca.values))),
                   interpolation="nearest")
    ax.set_xlabel("neuron")
    ax.set_ylabel("MEI of neuron")
    ax.set_title("MEI cross-activation")
    fig.colorbar(im, ax=ax, fraction=0.046, label="response / max")
    return _save(fig, path)


def gabor_vs_mei(stimuli: dict, *, activations: dict | None = None, neuron_id=None,
                 max_neurons: int = 8, path=None) -> Figure:
    """Side-by-side panels per neuron (rows): e.g. MEI, optimal Gabor, best natural image.

    Args:
      stimuli: name -> (neuron, [C,] H, W) images.
      activations: optional name -> (neuron,) model rates shown in the titles.
      neuron_id: labels of the rows.
      max_neurons: rows shown.
      path: optional PNG path.
    """
    names = list(stimuli)
    if not names:
        raise ConfigError("gabor_vs_mei needs at least one stimulus set")
    n = len(np.asarray(stimuli[names[0]]))
    sel = _select(n, max_neurons)
    ids = np.arange(n) if neuron_id is None else np.asarray(neuron_id)
    fig = Figure(figsize=(2.4 * len(names), 1.6 * len(sel) + 0.3))
    for r, i in enumerate(sel):
        for c, name in enumerate(names):
            ax = fig.add_subplot(len(sel), len(names), r * len(names) + c + 1)
            ax.imshow(_img2d(np.asarray(stimuli[name])[i]), cmap="gray")
            title = name if r == 0 else ""
            if activations is not None and name in activations:
                title += f"{' ' if title else ''}{float(np.asarray(activations[name])[i]):.3g}"
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(f"n{ids[i]}", fontsize=8)
    return _save(fig, path)


def power_spectra_figure(images: dict, *, path=None) -> Figure:
    """Log power spectrum (top) and axial average with SI_1/SI_2 (bottom) per image."""
    import jax.numpy as jnp

    from jaxsel.insilico.image_metrics import (axial_average, power_spectrum,
                                               spectrum_frequencies, symmetry_index)

    names = list(images)
    if not names:
        raise ConfigError("power_spectra_figure needs at least one image")
    fig = Figure(figsize=(3.0 * len(names), 5.2))
    for c, name in enumerate(names):
        img = _img2d(images[name])
        p = power_spectrum(jnp.asarray(img))
        ky, kx = spectrum_frequencies(img.shape)
        ax = fig.add_subplot(2, len(names), c + 1)
        ax.imshow(np.log1p(np.asarray(p)), cmap="gnuplot", origin="upper",
                  extent=[kx.min(), kx.max(), ky.max(), ky.min()])
        ax.set_title(f"{name}: log power", fontsize=8)
        ax.set_xlabel("kx (c/px)", fontsize=7)
        ax.set_ylabel("ky (c/px)", fontsize=7)
        ax.tick_params(labelsize=6)
        pt, th = axial_average(p)
        bx = fig.add_subplot(2, len(names), len(names) + c + 1)
        bx.plot(np.degrees(np.asarray(th)), np.asarray(pt), marker="o", ms=3)
        si1 = float(symmetry_index(pt, th, 1))
        si2 = float(symmetry_index(pt, th, 2))
        bx.set_title(f"SI1 {si1:.2f}  SI2 {si2:.2f}", fontsize=8)
        bx.set_xlabel("orientation (deg)", fontsize=7)
        bx.tick_params(labelsize=6)
    fig.tight_layout()
    return _save(fig, path)


def sensitivity_overlays(images, maps, *, titles=None, alpha: float = 0.55, ncols: int = 6,
                         path=None) -> Figure:
    """Sensitivity maps drawn over their images (gray image, 'hot' map with transparency).

    Args:
      images: (n, [C,] H, W) images (or one image for all maps).
      maps: (n, [C,] H, W) maps (e.g. ``sensitivity_maps(...)`` rows).
      titles: optional n titles.
      alpha: opacity of the map.
      ncols: panels per row.
      path: optional PNG path.
    """
    maps = np.asarray(maps, np.float32)
    n = len(maps)
    imgs = np.asarray(images, np.float32)
    if imgs.ndim == maps.ndim - 1:
        imgs = np.broadcast_to(imgs, maps.shape)
    if len(imgs) != n:
        raise ConfigError(f"{len(imgs)} images for {n} sensitivity maps")
    rows, cols = _grid(n, ncols)
    fig = Figure(figsize=(2.2 * cols, 1.5 * rows + 0.2))
    for i in range(n):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(_img2d(imgs[i]), cmap="gray")
        m = _img2d(maps[i])
        m = np.abs(m) / (np.abs(m).max() or 1.0)
        ax.imshow(m, cmap="hot", alpha=alpha * m, vmin=0, vmax=1)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=7)
        ax.axis("off")
    return _save(fig, path)
