"""Image grids of in-silico results: MEIs, gradient receptive fields, sensitivity overlays
and the generic grid (one shared or per-panel colour scale) they are drawn with, plus the
panel helpers the other figures share."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from jaxsel._errors import ConfigError
from jaxsel.viz._style import maybe_save, new_figure, styled


def img2d(a) -> np.ndarray:
    """The first channel of an image (any leading axes) as a 2-D float32 array."""
    a = np.asarray(a, np.float32)
    while a.ndim > 2:
        a = a[0]
    return a


def _grid(n: int, ncols: int) -> tuple[int, int]:
    ncols = max(1, min(ncols, n))
    return int(np.ceil(n / ncols)), ncols


def select_panels(n_total: int, max_panels: int) -> np.ndarray:
    return np.arange(min(n_total, max_panels))


def _pick(ids, neuron_id, max_panels: int) -> np.ndarray:
    """Row indices to draw: those of ``neuron_id`` (in that order), or the first ones."""
    ids = np.asarray(ids)
    if neuron_id is None:
        return select_panels(len(ids), max_panels)
    want = np.asarray(neuron_id).ravel()
    missing = [int(i) for i in want if i not in ids]
    if missing:
        raise ConfigError(
            f"neuron_id {missing} not in the result (it has {len(ids)} neurons); "
            "pass neuron_id= from its 'neuron_id' coordinate"
        )
    return np.array([int(np.flatnonzero(ids == i)[0]) for i in want], dtype=int)


def shared_limits(images, center: float | None = None) -> tuple[float, float]:
    """One colour range for a set of images: symmetric around ``center`` if given
    (``max |image - center|`` over every pixel of every image), else their min..max."""
    a = np.asarray(images, np.float64)
    fin = a[np.isfinite(a)]
    if not fin.size:
        return (-1.0, 1.0) if center is None else (center - 1.0, center + 1.0)
    if center is None:
        lo, hi = float(fin.min()), float(fin.max())
        return (lo, hi) if hi > lo else (lo - 1.0, hi + 1.0)
    v = float(np.abs(fin - center).max()) or 1.0
    return center - v, center + v


@styled
def mei_grid(
    result: xr.Dataset,
    *,
    max_neurons: int = 24,
    ncols: int = 6,
    neuron_id=None,
    titles=None,
    background: float | None = None,
    path=None,
) -> Figure:
    """MEIs (best seed) on one shared grey scale, with the activation trace of every seed.

    All panels share one colour range, symmetric around ``background``, so the grey
    background looks the same everywhere; a colorbar gives the raw pixel values.

    Args:
      result: output of :func:`jaxsel.insilico.optimize_meis`.
      max_neurons: at most this many neurons (the first ones) when ``neuron_id`` is None.
      ncols: neurons per row.
      neuron_id: the neurons to show (values of the result's ``neuron_id``), in order.
      titles: one title per shown neuron (default ``"id <neuron_id>"``); the final
        activation is added below it.
      background: the grey the scale is centred on (default: the median MEI pixel).
      path: optional PNG path.
    """
    from jaxsel.insilico import best_seed

    if "mei" not in result:
        raise ConfigError("mei_grid needs an optimize_meis result (with 'mei' and 'trace')")
    ids = result["neuron_id"].values
    sel = _pick(ids, neuron_id, max_neurons)
    best = best_seed(result) if "seed" in result.dims else result
    imgs = np.stack([img2d(best["mei"].isel(neuron=int(i)).values) for i in sel])
    center = float(np.nanmedian(imgs)) if background is None else float(background)
    names = [f"id {ids[i]}" for i in sel] if titles is None else [str(t) for t in titles]
    if len(names) != len(sel):
        raise ConfigError(f"{len(names)} titles for {len(sel)} neurons")
    acts = [float(best["activation"].isel(neuron=int(i)).sum()) for i in sel]
    traces = [
        result["trace"].isel(neuron=int(i)).values.reshape(-1, result.sizes["step"]) for i in sel
    ]
    return maybe_save(
        image_grid(
            imgs,
            titles=[f"{t}\nrate {a:.3g}" for t, a in zip(names, acts, strict=True)],
            ncols=ncols,
            center=center,
            colorbar=f"pixel value (grey background {center:g})",
            traces=traces,
            size=2.0,
        ),
        path,
    )


@styled
def gradient_rf_grid(
    rf: xr.DataArray,
    *,
    max_neurons: int = 32,
    ncols: int = 8,
    neuron_id=None,
    titles=None,
    scale: str = "shared",
    path=None,
) -> Figure:
    """Gradient receptive fields on one symmetric diverging colour scale.

    Args:
      rf: output of :func:`jaxsel.insilico.gradient_rf` (neuron, [C,] y, x).
      max_neurons: at most this many neurons (the first ones) when ``neuron_id`` is None.
      ncols: panels per row.
      neuron_id: the neurons to show (values of ``rf``'s ``neuron_id``), in order.
      titles: one title per shown neuron (default ``"id <neuron_id>"``).
      scale: ``"shared"``: gradients in their units (rate per pixel unit) on one scale, so
        panels compare directly; ``"panel"``: each gradient divided by its own max |grad|
        (given in its title), on one scale from -1 to 1, so weak fields stay visible.
      path: optional PNG path.
    """
    if scale not in ("shared", "panel"):
        raise ConfigError(f"scale = {scale!r}: expected 'shared' or 'panel'")
    ids = rf["neuron_id"].values if "neuron_id" in rf.coords else np.arange(rf.sizes["neuron"])
    sel = _pick(ids, neuron_id, max_neurons)
    imgs = np.stack([img2d(rf.isel(neuron=int(i)).values) for i in sel])
    names = [f"id {ids[i]}" for i in sel] if titles is None else [str(t) for t in titles]
    if len(names) != len(sel):
        raise ConfigError(f"{len(names)} titles for {len(sel)} neurons")
    peak = [float(np.nanmax(np.abs(a))) for a in imgs]
    label = "d rate / d pixel (rate per pixel unit)"
    if scale == "panel":
        imgs = np.stack([a / p if p > 0 else a for a, p in zip(imgs, peak, strict=True)])
        label = "d rate / d pixel ÷ the panel's max |grad| (in its title)"
    fig = image_grid(
        imgs,
        titles=[f"{t}\nmax |grad| {p:.2g}" for t, p in zip(names, peak, strict=True)],
        ncols=ncols,
        cmap="RdBu_r",
        center=0.0,
        colorbar=label,
        suptitle="Gradient receptive fields",
    )
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
        ax.imshow(img2d(imgs[i]), cmap="gray")
        m = img2d(maps[i])
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
    center: float | None = None,
    colorbar: str | None = None,
    trace_label: str = "rate",
) -> Figure:
    """A grid of images (n, [1,] y, x) on ONE colour scale shared by every panel.

    The scale is symmetric around ``center`` (or 0 with ``symmetric``, or the median pixel
    of all images with ``center_median``), wide enough for the largest deviation of any
    panel; otherwise it spans all images' min..max. So equal values look equal in every
    panel (e.g. the grey background of stimuli). NaN-only images are left blank (padding).

    Args:
      images: the images.
      titles: one short title per image.
      ncols: images per row.
      cmap: colour map.
      symmetric: colour range symmetric around 0 (contrast images, gradients).
      center_median: colour range symmetric around the median pixel of all images.
      center: colour range symmetric around this value (e.g. the background grey).
      colorbar: label of a colorbar for the shared scale (its unit); None: no colorbar.
      suptitle: figure title.
      size: inches per panel (width).
      traces: optional curves drawn under each image: (n, step) or (n, k, step) (e.g. the
        activation of every seed during the MEI ascent).
      trace_label: y label of the traces.
    """
    a = np.asarray(images, np.float32)
    if a.ndim == 4:
        a = a[:, 0]
    n = len(a)
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    h, w = a.shape[1:]
    if center is None and (symmetric or center_median):
        center = float(np.nanmedian(a)) if center_median else 0.0
    vmin, vmax = shared_limits(a, center)
    rows_per = 2 if traces is not None else 1
    fig = new_figure(
        figsize=(
            size * ncols + (1.0 if colorbar else 0.0),
            rows_per * nrows * size * h / w * 1.3 + 0.7,
        ),
        layout="constrained",
    )
    axes = fig.subplots(
        nrows * rows_per,
        ncols,
        squeeze=False,
        height_ratios=([1, 0.5] * nrows) if traces is not None else None,
    )
    for ax in axes.ravel():
        ax.set_axis_off()
    im = None
    for i in range(n):
        r, c = divmod(i, ncols)
        ax = axes[r * rows_per, c]
        if not np.isfinite(a[i]).any():  # padding
            continue
        im = ax.imshow(a[i], cmap=cmap, vmin=vmin, vmax=vmax)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=7)
        if traces is not None:
            tx = axes[r * rows_per + 1, c]
            tx.set_axis_on()
            for t in np.atleast_2d(np.asarray(traces[i], float)):
                tx.plot(t[np.isfinite(t)], lw=1)
            tx.tick_params(labelsize=5)
            tx.set_xlabel("step", fontsize=6)
            if c == 0:
                tx.set_ylabel(trace_label, fontsize=6)
    if colorbar and im is not None:
        cb = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.7, aspect=30, pad=0.02)
        cb.set_label(colorbar, fontsize=7)
        cb.ax.tick_params(labelsize=6)
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
