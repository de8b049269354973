"""Figures for in-silico experiments: cross-activation matrices, Gabor vs MEI panels, power
spectra, stimulus comparisons and recovery scores (the image grids are in ``_image_grids``).

Every function builds a :class:`matplotlib.figure.Figure` (no pyplot state), optionally saves
it as PNG to ``path`` and returns it.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from jaxsel._errors import ConfigError
from jaxsel.viz._image_grids import img2d, select_panels, shared_limits
from jaxsel.viz._style import maybe_save, new_figure, styled


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
    sel = select_panels(n, max_neurons)
    ids = np.arange(n) if neuron_id is None else np.asarray(neuron_id)
    panels = {name: [img2d(np.asarray(stimuli[name])[i]) for i in sel] for name in names}
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
    spectra = {n: np.asarray(power_spectrum(jnp.asarray(img2d(images[n])))) for n in names}
    logp = {n: np.log10(1.0 + p) for n, p in spectra.items()}
    vmax = max(float(np.nanmax(v)) for v in logp.values()) or 1.0
    axial = {n: axial_average(jnp.asarray(p)) for n, p in spectra.items()}
    top = max(float(np.nanmax(np.asarray(pt))) for pt, _ in axial.values())
    exp = int(np.floor(np.log10(top))) if top > 0 else 0  # one power of ten on the y axis
    fig = new_figure(figsize=(3.0 * len(names) + 0.9, 5.4), layout="constrained")
    axes = fig.subplots(2, len(names), squeeze=False)
    im = None
    for c, name in enumerate(names):
        img = img2d(images[name])
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
