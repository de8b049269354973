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


def _pick(ids, neuron_id, max_panels: int) -> np.ndarray:
    """Row indices to draw: those of ``neuron_id`` (in that order), or the first ones."""
    ids = np.asarray(ids)
    if neuron_id is None:
        return _select(len(ids), max_panels)
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
    imgs = np.stack([_img2d(best["mei"].isel(neuron=int(i)).values) for i in sel])
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
    imgs = np.stack([_img2d(rf.isel(neuron=int(i)).values) for i in sel])
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
def cross_activation_figure(ca: xr.DataArray, *, path=None) -> Figure:
    """Cross-activation matrix: rows = MEIs, columns = neurons (normalised per neuron)."""
    fig = new_figure(figsize=(5.4, 4.6), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(
        ca.values,
        cmap="gray",
        vmin=0,
        vmax=max(1.0, float(np.nanmax(ca.values))),
        interpolation="nearest",
    )
    rows = ca["mei_neuron_id"].values if "mei_neuron_id" in ca.coords else None
    cols = ca["neuron_id"].values if "neuron_id" in ca.coords else None
    if cols is None and rows is not None and ca.sizes[ca.dims[1]] == len(rows):
        same = "mei_neuron_index" in ca.coords and "neuron_index" in ca.coords
        if same and np.array_equal(ca["mei_neuron_index"].values, ca["neuron_index"].values):
            cols = rows  # the MEIs' own neurons
    if rows is not None and len(rows) <= 40:
        ax.set_yticks(np.arange(len(rows)), [str(i) for i in rows], fontsize=5)
    if cols is not None and len(cols) <= 40:
        ax.set_xticks(np.arange(len(cols)), [str(i) for i in cols], fontsize=5, rotation=90)
    ax.set_xlabel("responding neuron (id)" if cols is not None else "neuron")
    ax.set_ylabel("MEI of neuron (id)" if rows is not None else "MEI of neuron")
    ax.set_title("MEI cross-activation")
    fig.colorbar(im, ax=ax, fraction=0.046, label="rate / the neuron's largest rate over all MEIs")
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
    panels = {name: [_img2d(np.asarray(stimuli[name])[i]) for i in sel] for name in names}
    center = float(np.nanmedian(np.stack(panels[names[0]])))
    vmin, vmax = shared_limits(np.stack([p for v in panels.values() for p in v]), center)
    fig = new_figure(figsize=(2.4 * len(names) + 0.8, 1.6 * len(sel) + 0.3), layout="constrained")
    axes = fig.subplots(len(sel), len(names), squeeze=False)
    im = None
    for r, i in enumerate(sel):
        for c, name in enumerate(names):
            ax = axes[r, c]
            im = ax.imshow(panels[name][r], cmap="gray", vmin=vmin, vmax=vmax)
            title = name if r == 0 else ""
            if activations is not None and name in activations:
                title += f"{' ' if title else ''}{float(np.asarray(activations[name])[i]):.3g}"
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(f"id {ids[i]}", fontsize=8)
    if im is not None:
        cb = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.7, aspect=30)
        cb.set_label(f"pixel value (grey {center:g})", fontsize=7)
    return maybe_save(fig, path)


@styled
def power_spectra_figure(images: dict, *, unit: str = "pixel value", path=None) -> Figure:
    """Log power spectrum (top, one shared colour scale) and its axial average with the
    symmetry indices SI_1/SI_2 (bottom, one shared y axis) per image.

    Args:
      images: name -> ([C,] H, W) image (the mean is removed by the spectrum).
      unit: the images' pixel unit, used in the power's unit (unit^2).
      path: optional PNG path.
    """
    import jax.numpy as jnp

    from jaxsel.insilico import axial_average, power_spectrum, spectrum_frequencies, symmetry_index

    names = list(images)
    if not names:
        raise ConfigError("power_spectra_figure needs at least one image")
    spectra = {n: np.asarray(power_spectrum(jnp.asarray(_img2d(images[n])))) for n in names}
    logp = {n: np.log10(1.0 + p) for n, p in spectra.items()}
    vmax = max(float(np.nanmax(v)) for v in logp.values()) or 1.0
    axial = {n: axial_average(jnp.asarray(p)) for n, p in spectra.items()}
    top = max(float(np.nanmax(np.asarray(pt))) for pt, _ in axial.values())
    exp = int(np.floor(np.log10(top))) if top > 0 else 0  # one power of ten on the y axis
    fig = new_figure(figsize=(3.0 * len(names) + 0.9, 5.4), layout="constrained")
    axes = fig.subplots(2, len(names), squeeze=False)
    im = None
    for c, name in enumerate(names):
        img = _img2d(images[name])
        ky, kx = spectrum_frequencies(img.shape)
        ax = axes[0, c]
        im = ax.imshow(
            logp[name],
            cmap="gnuplot",
            origin="upper",
            vmin=0.0,
            vmax=vmax,
            extent=(float(kx.min()), float(kx.max()), float(ky.max()), float(ky.min())),
        )
        ax.set_title(f"{name}: power spectrum", fontsize=8)
        ax.set_xlabel("kx (cycles/pixel)", fontsize=7)
        ax.set_ylabel("ky (cycles/pixel)", fontsize=7)
        ax.tick_params(labelsize=6)
        pt, th = axial[name]
        bx = axes[1, c]
        bx.plot(np.degrees(np.asarray(th)), np.asarray(pt) / 10.0**exp, marker="o", ms=3)
        si1 = float(symmetry_index(pt, th, 1))
        si2 = float(symmetry_index(pt, th, 2))
        bx.set_title(f"axial average: SI1 {si1:.2f}  SI2 {si2:.2f}", fontsize=8)
        bx.set_xlabel("orientation (deg)", fontsize=7)
        scale = f"$10^{{{exp}}}$ " if exp else ""
        bx.set_ylabel(f"power [{scale}({unit})$^2$]", fontsize=7)
        bx.tick_params(labelsize=6)
    for bx in axes[1, 1:]:
        bx.sharey(axes[1, 0])
    if im is not None:
        cb = fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, aspect=25)
        cb.set_label(f"log10(1 + power [({unit})$^2$])", fontsize=7)
        cb.ax.tick_params(labelsize=6)
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


_STIMULUS_NAMES = {"mei": "MEI", "gabor": "optimal\nGabor", "natural": "best\nnatural"}
_METRIC_LABELS = {
    "activation": ("model activation", "rate"),
    "contrast": ("contrast (pixel std in the mask)", "pixel value"),
    "si_2": ("2-fold symmetry index SI2", "SI2 (unitless, 0..1)"),
    "sf": ("dominant spatial frequency", "cycles / pixel"),
}


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
        ax.boxplot(v, tick_labels=[_STIMULUS_NAMES.get(s, s) for s in names])
        title, unit = _METRIC_LABELS.get(k, (k, ""))
        ax.set_title(title)
        ax.set_ylabel(unit)
    fig.suptitle(
        "MEI vs optimal Gabor vs best natural image: activation and image metrics "
        f"({c.sizes['neuron']} neurons)"
    )
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
