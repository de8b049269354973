"""Selectivity of model neurons for a labelled stimulus attribute, and its robustness.

A model is the CONVENTIONS.md pair ``(fn, params)``: ``fn(params, images) -> rates
(batch, neuron)``, a pure JAX function of RAW images (batch, channel, y, x). Everything here
works for any such pair (the twin's truth, a trained CNN, an untrained one).

* Labels: a binary (or categorical) attribute per image (1 = positive), e.g. from
  ``jaxsel.data`` (``labels_from_file``, ``labels_from_function``,
  ``orientation_labels``, or the labelled set ``grating_stimuli``).
* Per neuron: rates to positive vs negative images, the selectivity index
  ``SI = (r_pos - r_neg) / (r_pos + r_neg)`` (in [-1, 1] for non-negative rates; 0 where
  both are 0), d' and the Poisson mutual information (:func:`jaxsel.measures.poisson_information`).
* Firing-rate distributions (:func:`rate_distributions`) and topographic maps of rates over
  neuron positions (:func:`topographic_map`).
* :func:`compare_models`: the same measures for several models (e.g. untrained vs trained)
  and several Gaussian input-noise amplitudes, on identical noisy images.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import xarray as xr

from jaxsel._errors import DataError
from jaxsel.data import add_gaussian_noise, as_images
from jaxsel.measures._information import poisson_information
from jaxsel.measures._labels import neuron_coords
from jaxsel.models import predict

# --------------------------------------------------------------------------- images


# --------------------------------------------------------------------------- selectivity


def _binary(labels, n_image, n_neuron) -> np.ndarray:
    lab = np.asarray(labels.values if isinstance(labels, xr.DataArray) else labels)
    lab = lab.astype(np.int64) if lab.dtype == bool else lab
    if lab.ndim == 1:
        lab = lab[:, None]
    if lab.shape[0] != n_image or lab.shape[1] not in (1, n_neuron) or lab.ndim != 2:
        raise DataError(
            f"labels have shape {np.shape(labels)}",
            field="labels",
            expected=f"({n_image},) or ({n_image}, {n_neuron})",
        )
    if not np.isin(lab, (0, 1)).all():
        raise DataError("labels are not binary", field="labels", expected="0/1 or booleans")
    return np.broadcast_to(lab, (n_image, n_neuron)).astype(bool)


def selectivity(rates, labels, *, information: bool = True) -> xr.Dataset:
    """Per-neuron responses to positive vs negative images.

    Args:
      rates: (image, neuron) rates (model rates or per-image mean responses).
      labels: (image,) or (image, neuron) binary labels (1 = positive).
      information: also compute the Poisson information (needs rates >= 0).

    Returns:
      ``xr.Dataset`` (neuron): ``rate_pos``, ``rate_neg``, ``sd_pos``, ``sd_neg``,
      ``selectivity_index``, ``d_prime`` and (optionally) ``information`` (bits).
    """
    r = np.asarray(rates.values if isinstance(rates, xr.DataArray) else rates, np.float64)
    if r.ndim != 2:
        raise DataError(f"rates have shape {r.shape}", field="rates", expected="(image, neuron)")
    pos = _binary(labels, *r.shape)
    neg = ~pos
    npos, nneg = pos.sum(0), neg.sum(0)
    if (npos == 0).any() or (nneg == 0).any():
        raise DataError(
            "a neuron has no positive or no negative image",
            field="labels",
            expected="both classes present for every neuron",
        )
    mp = (r * pos).sum(0) / npos
    mn = (r * neg).sum(0) / nneg
    sp = np.sqrt((pos * (r - mp) ** 2).sum(0) / npos)
    sn = np.sqrt((neg * (r - mn) ** 2).sum(0) / nneg)
    with np.errstate(invalid="ignore", divide="ignore"):
        si = np.where(mp + mn != 0, (mp - mn) / (mp + mn), 0.0)
        pooled = np.sqrt((sp**2 + sn**2) / 2)
        dp = np.where(
            pooled > 0, (mp - mn) / pooled, np.where(mp == mn, 0.0, np.sign(mp - mn) * np.inf)
        )
    out = xr.Dataset(
        {
            "rate_pos": ("neuron", mp),
            "rate_neg": ("neuron", mn),
            "sd_pos": ("neuron", sp),
            "sd_neg": ("neuron", sn),
            "selectivity_index": ("neuron", si),
            "d_prime": ("neuron", dp),
        },
        coords=neuron_coords(rates),
    )
    if information:
        out["information"] = (
            "neuron",
            poisson_information(np.maximum(r, 0.0), pos.astype(np.int64)).values,
        )
    return out


def rate_distributions(
    rates,
    *,
    bins: int | np.ndarray = 60,
    range=None,
    density: bool = True,
    positive_only: bool = False,
) -> xr.DataArray:
    """Histograms of rates (all images x neurons) on common bins, one per state.

    Args:
      rates: an array, or ``{state: array}`` (e.g. ``{"untrained": r0, "trained": r1}``).
      bins: number of bins or bin edges.
      range: (low, high) for the bins (default: min/max over all states).
      density: normalise each histogram to unit area.
      positive_only: drop rates <= 0 first (as a firing-rate plot of active cells).

    Returns:
      ``xr.DataArray`` (state, bin) with coords ``bin_left``, ``bin_right``, ``bin_centre``.
    """
    states = rates if isinstance(rates, Mapping) else {"rates": rates}
    vals = {}
    for k, v in states.items():
        a = np.asarray(v, np.float64).ravel()
        a = a[np.isfinite(a)]
        vals[k] = a[a > 0] if positive_only else a
    allv = np.concatenate(list(vals.values())) if vals else np.zeros(0)
    if allv.size == 0:
        raise DataError("no finite rates to histogram", field="rates")
    if range is None:
        range = (
            float(allv.min()),
            float(allv.max()) if allv.max() > allv.min() else float(allv.min()) + 1.0,
        )
    edges = np.histogram_bin_edges(allv, bins=bins, range=range)
    h = np.stack(
        [np.histogram(v, bins=edges, density=density and v.size > 0)[0] for v in vals.values()]
    )
    return xr.DataArray(
        h,
        dims=("state", "bin"),
        name="rate_density" if density else "count",
        coords={
            "state": list(vals),
            "bin_left": ("bin", edges[:-1]),
            "bin_right": ("bin", edges[1:]),
            "bin_centre": ("bin", (edges[:-1] + edges[1:]) / 2),
        },
    )


def topographic_map(
    values,
    positions=None,
    *,
    grid: tuple[int, int] = (12, 12),
    extent: tuple[float, float, float, float] | None = None,
) -> xr.DataArray:
    """Mean value of the neurons in each cell of a grid over their positions.

    Args:
      values: (neuron,) or (..., neuron) values, e.g. rates to one image or a selectivity
        index; a DataArray with ``cortex_x``/``cortex_y`` coords needs no ``positions``.
      positions: (neuron, 2) positions as (x, y) columns.
      grid: (ny, nx) cells.
      extent: (x_min, x_max, y_min, y_max) (default: the positions' range).

    Returns:
      ``xr.DataArray`` (..., y, x) of cell means (NaN for empty cells), ``count`` (y, x)
      coord, and cell-centre coords ``y``/``x``.
    """
    if positions is None:
        if not (isinstance(values, xr.DataArray) and "cortex_x" in values.coords):
            raise DataError(
                "no neuron positions",
                field="positions",
                expected="(neuron, 2) positions, or values with cortex_x / cortex_y coords",
            )
        positions = np.stack([values["cortex_x"].values, values["cortex_y"].values], 1)
    v = np.asarray(values, np.float64)
    pos = np.asarray(positions, np.float64)
    if pos.ndim != 2 or pos.shape[1] < 2 or pos.shape[0] != v.shape[-1]:
        raise DataError(
            f"positions have shape {pos.shape} for {v.shape[-1]} neurons",
            field="positions",
            expected=f"({v.shape[-1]}, 2)",
        )
    ny, nx = grid
    x0, x1, y0, y1 = (
        extent
        if extent is not None
        else (pos[:, 0].min(), pos[:, 0].max(), pos[:, 1].min(), pos[:, 1].max())
    )
    x1 = x1 if x1 > x0 else x0 + 1.0
    y1 = y1 if y1 > y0 else y0 + 1.0
    ix = np.clip(((pos[:, 0] - x0) / (x1 - x0) * nx).astype(int), 0, nx - 1)
    iy = np.clip(((pos[:, 1] - y0) / (y1 - y0) * ny).astype(int), 0, ny - 1)
    cell = iy * nx + ix
    inside = (pos[:, 0] >= x0) & (pos[:, 0] <= x1) & (pos[:, 1] >= y0) & (pos[:, 1] <= y1)
    lead = v.shape[:-1]
    flat = v.reshape(-1, v.shape[-1])
    ok = np.isfinite(flat) & inside[None]
    idx = np.arange(len(flat))[:, None] * (ny * nx) + cell[None]
    sums = np.bincount(idx[ok], weights=flat[ok], minlength=len(flat) * ny * nx)
    cnt = np.bincount(idx[ok], minlength=len(flat) * ny * nx)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.where(cnt > 0, sums / cnt, np.nan).reshape(lead + (ny, nx))
    count = np.bincount(cell[inside], minlength=ny * nx).reshape(ny, nx)
    dims = tuple(f"dim_{i}" for i in range(len(lead))) + ("y", "x")
    return xr.DataArray(
        m,
        dims=dims,
        name="topographic_map",
        coords={
            "y": y0 + (np.arange(ny) + 0.5) * (y1 - y0) / ny,
            "x": x0 + (np.arange(nx) + 0.5) * (x1 - x0) / nx,
            "count": (("y", "x"), count),
        },
    )


def compare_models(
    models: Mapping[str, tuple[Callable, object]],
    images,
    labels,
    *,
    noise=(0.0,),
    seed: int = 0,
    clip: tuple[float, float] | None = (0, 255),
    batch_size: int = 256,
    neuron_id=None,
) -> xr.Dataset:
    """Selectivity of several models under several input-noise amplitudes.

    Every model sees the same noisy images (noise drawn with ``seed + k`` for the k-th
    amplitude), so differences are due to the models.

    Args:
      models: ``{name: (fn, params)}``, e.g. ``{"untrained": ..., "trained": ...}``.
      images: (image, [channel,] y, x) raw images.
      labels: (image,) or (image, neuron) binary labels.
      noise: Gaussian noise amplitudes (pixel-unit sd) to add to the inputs.
      seed: noise seed.
      clip: range to clip noisy images to (None: no clipping).
      batch_size: images per model call.
      neuron_id: optional ids for the neuron coord.

    Returns:
      ``xr.Dataset`` with dims (model, noise, neuron) for ``rate_pos``, ``rate_neg``,
      ``sd_pos``, ``sd_neg``, ``selectivity_index``, ``d_prime``, ``information`` and
      ``rates`` (model, noise, image, neuron).
    """
    if not models:
        raise DataError("no models", field="models", expected="{name: (fn, params)}")
    x = as_images(images)
    amps = [float(a) for a in np.atleast_1d(noise)]
    per_model = []
    for name, (fn, params) in models.items():
        per_noise, rates = [], []
        for k, a in enumerate(amps):
            xn = add_gaussian_noise(x, a, seed=seed + k, clip=clip if a > 0 else None)
            r = predict((fn, params), xn, batch_size=batch_size)
            rates.append(r)
            per_noise.append(selectivity(r, labels))
        if per_model and rates[0].shape[1] != per_model[0]["rates"].shape[-1]:
            raise DataError(
                f"model '{name}' has {rates[0].shape[1]} neurons, others "
                f"{per_model[0]['rates'].shape[-1]}",
                field="models",
                expected="the same neurons in every model",
            )
        ds = xr.concat(per_noise, dim="noise")
        ds["rates"] = (("noise", "image", "neuron"), np.stack(rates))
        per_model.append(ds)
    out = xr.concat(per_model, dim="model")
    n_neu = out.sizes["neuron"]
    out = out.assign_coords(
        model=list(models),
        noise=amps,
        neuron_id=("neuron", np.arange(n_neu) if neuron_id is None else np.asarray(neuron_id)),
    )
    return out.transpose("model", "noise", ..., "neuron")
