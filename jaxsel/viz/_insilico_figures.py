"""Figures for in-silico experiments: MEI grids with activation traces, gradient RFs,
cross-activation matrices, Gabor vs MEI panels, power spectra and sensitivity overlays.

Every function builds a :class:`matplotlib.figure.Figure` (no pyplot state), optionally saves
it as PNG to ``path`` and returns it.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from jaxsel._errors import ConfigError
from jaxsel.viz._style import maybe_save, new_figure, styled


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


@styled
def mei_grid(result: xr.Dataset, *, max_neurons: int = 24, ncols: int = 6, path=None) -> Figure:
    """MEIs (best seed) with the activation trace of every seed under each image.

    Args:
      result: output of :func:`jaxsel.insilico.optimize_meis`.
      max_neurons: at most this many neurons (the first ones).
      ncols: neurons per row.
      path: optional PNG path.
    """
    from jaxsel.insilico import best_seed

    if "mei" not in result:
        raise ConfigError("mei_grid needs an optimize_meis result (with 'mei' and 'trace')")
    sel = _select(result.sizes["neuron"], max_neurons)
    best = best_seed(result) if "seed" in result.dims else result
    rows, cols = _grid(len(sel), ncols)
    fig = new_figure(figsize=(2.2 * cols, 2.6 * rows))
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
    return maybe_save(fig, path)


@styled
def gradient_rf_grid(
    rf: xr.DataArray, *, max_neurons: int = 32, ncols: int = 8, path=None
) -> Figure:
    """Gradient receptive fields, each on a symmetric diverging colour scale."""
    sel = _select(rf.sizes["neuron"], max_neurons)
    rows, cols = _grid(len(sel), ncols)
    fig = new_figure(figsize=(1.8 * cols, 1.2 * rows + 0.3))
    for j, i in enumerate(sel):
        ax = fig.add_subplot(rows, cols, j + 1)
        a = _img2d(rf.isel(neuron=i).values)
        v = float(np.abs(a).max()) or 1.0
        ax.imshow(a, cmap="RdBu_r", vmin=-v, vmax=v)
        ax.set_title(f"n{rf['neuron_id'].values[i]}", fontsize=7)
        ax.axis("off")
    fig.suptitle("Gradient receptive fields", fontsize=9)
    return maybe_save(fig, path)


@styled
def cross_activation_figure(ca: xr.DataArray, *, path=None) -> Figure:
    """Cross-activation matrix: rows = MEIs, columns = neurons (normalised per neuron)."""
    fig = new_figure(figsize=(5, 4.3))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(
        ca.values,
        cmap="gray",
        vmin=0,
        vmax=max(1.0, float(np.nanmax(ca.values))),
        interpolation="nearest",
    )
    ax.set_xlabel("neuron")
    ax.set_ylabel("MEI of neuron")
    ax.set_title("MEI cross-activation")
    fig.colorbar(im, ax=ax, fraction=0.046, label="response / max")
    return maybe_save(fig, path)


@styled
def gabor_vs_mei(
    stimuli: dict,
    *,
    activations: dict | None = None,
    neuron_id=None,
    max_neurons: int = 8,
    path=None,
) -> Figure:
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
    fig = new_figure(figsize=(2.4 * len(names), 1.6 * len(sel) + 0.3))
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
    return maybe_save(fig, path)


@styled
def power_spectra_figure(images: dict, *, path=None) -> Figure:
    """Log power spectrum (top) and axial average with SI_1/SI_2 (bottom) per image."""
    import jax.numpy as jnp

    from jaxsel.insilico import axial_average, power_spectrum, spectrum_frequencies, symmetry_index

    names = list(images)
    if not names:
        raise ConfigError("power_spectra_figure needs at least one image")
    fig = new_figure(figsize=(3.0 * len(names), 5.2))
    for c, name in enumerate(names):
        img = _img2d(images[name])
        p = power_spectrum(jnp.asarray(img))
        ky, kx = spectrum_frequencies(img.shape)
        ax = fig.add_subplot(2, len(names), c + 1)
        ax.imshow(
            np.log1p(np.asarray(p)),
            cmap="gnuplot",
            origin="upper",
            extent=(float(kx.min()), float(kx.max()), float(ky.max()), float(ky.min())),
        )
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
    return maybe_save(fig, path)


@styled
def sensitivity_overlays(
    images, maps, *, titles=None, alpha: float = 0.55, ncols: int = 6, path=None
) -> Figure:
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
    fig = new_figure(figsize=(2.2 * cols, 1.5 * rows + 0.2))
    for i in range(n):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(_img2d(imgs[i]), cmap="gray")
        m = _img2d(maps[i])
        m = np.abs(m) / (np.abs(m).max() or 1.0)
        ax.imshow(m, cmap="hot", alpha=alpha * m, vmin=0, vmax=1)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=7)
        ax.axis("off")
    return maybe_save(fig, path)


@styled
def image_grid(
    images,
    *,
    titles=None,
    ncols: int = 6,
    cmap: str = "gray",
    symmetric=False,
    suptitle: str = "",
    size: float = 1.6,
    traces=None,
    center_median: bool = False,
) -> Figure:
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
    fig = new_figure(
        figsize=(size * ncols, rows_per * nrows * size * h / w * 1.25 + 0.6), layout="constrained"
    )
    axes = fig.subplots(
        nrows * rows_per,
        ncols,
        squeeze=False,
        height_ratios=([1, 0.6] * nrows) if traces is not None else None,
    )
    for ax in axes.ravel():
        ax.set_axis_off()
    for i in range(n):
        r, c = divmod(i, ncols)
        ax = axes[r * rows_per, c]
        if not np.isfinite(a[i]).any():  # padding
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


@styled
def paired_grid(top, bottom, top_titles, bottom_titles, *, ncols: int = 6, **kw) -> Figure:
    """Two image sets in alternating row blocks: ``ncols`` of ``top``, then their ``bottom``."""
    top, bottom = np.asarray(top), np.asarray(bottom)
    n = len(top)
    ncols = max(1, min(ncols, n))
    imgs, titles = [], []
    blank = np.full_like(top[0], np.nan)
    for s in range(0, n, ncols):
        for src, tt in ((top, top_titles), (bottom, bottom_titles)):
            block = list(src[s : s + ncols])
            names = list(tt[s : s + ncols])
            pad = ncols - len(block)
            imgs += block + [blank] * pad
            titles += names + [""] * pad
    fig = image_grid(np.stack(imgs), titles=titles, ncols=ncols, **kw)
    return fig


@styled
def comparison_figure(comparison: xr.Dataset) -> Figure:
    """Box plots per stimulus kind (MEI, optimal Gabor, best natural image) of the model's
    activation and the image metrics of a ``stimulus_comparison`` dataset."""
    c = comparison
    names = [str(s) for s in c["stimulus"].values]
    keys = [k for k in ("activation", "contrast", "si_2", "sf") if k in c]
    fig = new_figure(figsize=(3.0 * len(keys), 3.2), layout="constrained")
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    for ax, k in zip(axes, keys, strict=True):
        v = [c[k].sel(stimulus=s).values for s in names]
        ax.boxplot(v, tick_labels=names)
        ax.set_title(k)
    fig.suptitle("MEI vs optimal Gabor vs best natural image: activation and image metrics")
    return fig


@styled
def recovery_figure(recovery: xr.Dataset, *, theta_error_deg=None) -> Figure:
    """Histograms per neuron kind of an ``mei_recovery`` dataset: Pearson r with the true
    optimum, the phase-invariant match and the true drive relative to the true maximum;
    the median Gabor orientation error (degrees) goes in the title if given."""
    rec = recovery
    kinds = rec["kind"].values.astype(str)
    fig = new_figure(figsize=(11, 3.4), layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, (k, label) in zip(
        axes,
        (
            ("pearson_r", "r(MEI, true optimum)"),
            ("phase_match", "phase-invariant match"),
            ("frac_true_max", "true drive / true max"),
        ),
        strict=True,
    ):
        for i, kind in enumerate(("simple", "complex", "suppressed")):
            v = rec[k].values[kinds == kind]
            v = v[np.isfinite(v)]
            if len(v):
                ax.hist(
                    v,
                    bins=np.linspace(-0.2 if k == "pearson_r" else 0, 1.05, 26),
                    histtype="step",
                    lw=1.5,
                    color=f"C{i}",
                    label=f"{kind} ({len(v)})",
                )
        ax.set_xlabel(label)
        ax.set_ylabel("neurons")
    axes[0].legend(frameon=False, fontsize="small")
    title = "ground-truth recovery of the model's MEIs"
    if theta_error_deg is not None:
        err = np.asarray(theta_error_deg)
        title += f"; Gabor orientation error median {np.nanmedian(err):.1f} deg"
    fig.suptitle(title)
    return fig
