"""Selectivity of model neurons for a labelled stimulus attribute, and its robustness.

A model is the CONVENTIONS.md pair ``(fn, params)``: ``fn(params, images) -> rates
(batch, neuron)``, a pure JAX function of RAW images (batch, channel, y, x). Everything here
works for any such pair (the twin's truth, a trained CNN, an untrained one).

* Labels: a binary (or categorical) attribute per image, from a file
  (:func:`labels_from_file`), any user function (:func:`labels_from_function`), or computed
  on the image: whether oriented structure at a given orientation (e.g. each neuron's
  preferred one) dominates the image's power spectrum (:func:`orientation_labels`);
  :func:`grating_stimuli` makes a labelled set (preferred vs orthogonal gratings).
* Per neuron: rates to positive vs negative images, the selectivity index
  ``SI = (r_pos - r_neg) / (r_pos + r_neg)`` (in [-1, 1] for non-negative rates; 0 where
  both are 0), d' and the Poisson mutual information (``information.poisson_information``).
* Firing-rate distributions (:func:`rate_distributions`) and topographic maps of rates over
  neuron positions (:func:`topographic_map`).
* :func:`compare_models`: the same measures for several models (e.g. untrained vs trained)
  and several Gaussian input-noise amplitudes (seed 000), on identical noisy images.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from jaxsel.errors import DataError
from jaxsel.measures.information import poisson_information
from jaxsel.measures.labels import neuron_coords
from jaxsel.models import predict

BACKGROUND = 127.5
SCALE = 127.5


# --------------------------------------------------------------------------- images

def _as_images(images) -> np.ndarray:
    x = np.asarray(images.values if isinstance(images, xr.DataArray) else images, np.float32)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise DataError(f"images have shape {x.shape}", field="images",
                        expected="(batch, channel, y, x) or (batch, y, x) raw images")
    return x


def add_gaussian_noise(images, amplitude: float, *, seed: int = 0,
                       clip: tuple[float, float] | None = None) -> np.ndarray:
    """Images plus i.i.d. Gaussian pixel noise of standard deviation ``amplitude``.

    Args:
      images: raw images (any shape).
      amplitude: noise sd in the images' pixel units (e.g. 20 on a 0..255 scale).
      seed: NumPy generator seed (same seed, same noise).
      clip: optional (low, high) range to clip to (e.g. (0, 255)).
    """
    if amplitude < 0:
        raise DataError(f"amplitude={amplitude}", field="amplitude", expected=">= 0")
    x = np.asarray(images, np.float32)
    if amplitude > 0:
        x = x + amplitude * np.random.default_rng(seed).standard_normal(x.shape).astype(
            np.float32)
    if clip is not None:
        x = np.clip(x, clip[0], clip[1])
    return x


# --------------------------------------------------------------------------- labels

def labels_from_file(path: str | Path, *, column: str | None = None, image_id=None,
                     id_column: str = "image_id") -> xr.DataArray:
    """Read a label per image from CSV (one id column + label columns) or ``.npy``.

    Args:
      path: ``.csv`` or ``.npy`` (a vector, in image order).
      column: CSV label column (required if there are several).
      image_id: optional ids to return labels for, in that order.
      id_column: the CSV column with image ids.

    Returns:
      ``xr.DataArray`` (image) of integer labels with an ``image_id`` coord.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("label file not found", file=path, expected="a .csv or .npy file")
    if path.suffix == ".npy":
        lab = np.load(path)
        ids = np.arange(len(lab))
    elif path.suffix == ".csv":
        import pandas as pd
        df = pd.read_csv(path)
        if id_column not in df.columns:
            raise DataError(f"no column '{id_column}' (columns: {list(df.columns)})",
                            file=path, field=id_column, expected="an image id column")
        cols = [c for c in df.columns if c != id_column]
        if column is None:
            if len(cols) != 1:
                raise DataError(f"several label columns {cols}", file=path, field="column",
                                expected="pass column=<name>")
            column = cols[0]
        if column not in df.columns:
            raise DataError(f"no column '{column}' (columns: {cols})", file=path,
                            field=column)
        lab, ids = df[column].to_numpy(), df[id_column].to_numpy()
    else:
        raise DataError(f"unsupported suffix '{path.suffix}'", file=path,
                        expected=".csv or .npy")
    lab = np.asarray(lab)
    if lab.ndim != 1:
        raise DataError(f"labels have shape {lab.shape}", file=path, expected="a vector")
    if lab.dtype == bool or np.issubdtype(lab.dtype, np.number):
        if not np.all(lab == np.round(lab)) or np.any(lab < 0):
            raise DataError("labels are not non-negative integers", file=path,
                            field=column or "labels", expected="0/1 or classes 0..C-1")
        lab = lab.astype(np.int64)
    else:
        raise DataError(f"labels of dtype {lab.dtype}", file=path,
                        field=column or "labels", expected="0/1 or classes 0..C-1")
    out = xr.DataArray(lab, dims=("image",), coords={"image_id": ("image", ids)},
                       name="label")
    if image_id is not None:
        pos = {v: i for i, v in enumerate(ids.tolist())}
        want = np.asarray(image_id).tolist()
        missing = [v for v in want if v not in pos]
        if missing:
            raise DataError(f"no label for image ids {missing[:5]}", file=path,
                            field=id_column)
        out = out.isel(image=[pos[v] for v in want])
    return out


def labels_from_function(images, fn: Callable, *, batched: bool = False) -> xr.DataArray:
    """Label every image with a user function.

    Args:
      images: (n, ...) images.
      fn: ``fn(image) -> label`` (or ``fn(images) -> (n,)`` labels with ``batched=True``);
        booleans become 0/1.
      batched: call ``fn`` once on all images.

    Returns:
      ``xr.DataArray`` (image) of integer labels.
    """
    x = np.asarray(images)
    lab = np.asarray(fn(x)) if batched else np.asarray([np.asarray(fn(im)) for im in x])
    if lab.shape != (len(x),):
        raise DataError(f"label function returned shape {lab.shape}", field="fn",
                        expected=f"one label per image, ({len(x)},)")
    if lab.dtype != bool and not np.all(lab == np.round(lab)):
        raise DataError("label function returned non-integer labels", field="fn",
                        expected="booleans or integer classes")
    return xr.DataArray(lab.astype(np.int64), dims=("image",), name="label")


def orientation_energy(images, theta, sf=None, *, bandwidth: float = np.pi / 8,
                       octaves: float = 1.0, background: float = BACKGROUND) -> np.ndarray:
    """Fraction of each image's (non-DC) power at orientation ``theta`` (and near ``sf``).

    Orientation = direction of the wave vector (radians from +x towards +y, y = row index
    downwards), as ``jaxsel.data.stimuli.grating``; the band is ``|angle - theta| <=
    bandwidth`` modulo pi and, if ``sf`` is given, ``|log2(|k| / sf)| <= octaves / 2``.

    Args:
      images: (n, [1,] y, x) raw images.
      theta: scalar or (m,) orientations (e.g. each neuron's preferred one).
      sf: None, scalar or (m,) spatial frequencies in cycles/pixel.
      bandwidth: half-width of the orientation band in radians.
      octaves: full width of the frequency band in octaves.
      background: grey level subtracted before the transform.

    Returns:
      (n,) for scalar ``theta``, else (n, m) fractions in [0, 1].
    """
    x = _as_images(images)[:, 0].astype(np.float64) - background
    h, w = x.shape[1:]
    power = np.abs(np.fft.fft2(x)) ** 2
    ky = np.fft.fftfreq(h)[:, None] * np.ones((1, w))
    kx = np.fft.fftfreq(w)[None, :] * np.ones((h, 1))
    kr = np.hypot(kx, ky)
    ang = np.arctan2(ky, kx)
    scalar = np.ndim(theta) == 0
    th = np.atleast_1d(np.asarray(theta, np.float64))
    d = np.abs((ang[None] - th[:, None, None] + np.pi / 2) % np.pi - np.pi / 2)
    band = (d <= bandwidth) & (kr[None] > 0)
    if sf is not None:
        f = np.broadcast_to(np.atleast_1d(np.asarray(sf, np.float64)), th.shape)
        with np.errstate(divide="ignore"):
            band &= np.abs(np.log2(kr[None] / f[:, None, None])) <= octaves / 2
    total = power.reshape(len(x), -1)[:, kr.ravel() > 0].sum(1)
    e = power.reshape(len(x), -1) @ band.reshape(len(th), -1).T.astype(np.float64)
    frac = e / np.where(total > 0, total, 1.0)[:, None]
    return frac[:, 0] if scalar else frac


def orientation_labels(images, theta, sf=None, *, threshold: float | None = None,
                       quantile: float = 0.5, **band) -> xr.DataArray:
    """Binary label: is structure at orientation ``theta`` present in the image?

    Positive when the image's :func:`orientation_energy` exceeds ``threshold`` or, if None,
    the given ``quantile`` of that energy over the images (per orientation), so the median
    default gives balanced classes. With the twin, pass ``twin.params['theta']`` (and
    ``'sf'``) for a per-neuron label: "the neuron's preferred orientation is present".

    Returns:
      ``xr.DataArray`` (image,) or (image, neuron) of 0/1 labels.
    """
    e = orientation_energy(images, theta, sf, **band)
    thr = (np.quantile(e, quantile, axis=0) if threshold is None else threshold)
    lab = (e > thr).astype(np.int64)
    dims = ("image",) if lab.ndim == 1 else ("image", "neuron")
    return xr.DataArray(lab, dims=dims, name="label",
                        attrs={"attribute": "orientation energy above threshold"})


def grating_stimuli(shape: tuple[int, int], theta: float, sf: float, n_per_class: int, *,
                    seed: int = 0, contrast: float = 0.5, noise: float = 0.0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """A labelled set: gratings at ``theta`` (label 1) vs at ``theta + pi/2`` (label 0).

    Phases are random per image; optional white pixel noise (contrast units) on top.

    Returns:
      ``(images, labels)``: (2 n, 1, y, x) float32 RAW images (0..255 scale, grey 127.5)
      and (2 n,) int labels, positives first.
    """
    from jaxsel.data.stimuli import grating
    rng = np.random.default_rng(seed)
    n = int(n_per_class)
    th = np.r_[np.full(n, theta), np.full(n, theta + np.pi / 2)]
    ph = rng.uniform(0, 2 * np.pi, 2 * n)
    make = jax.vmap(lambda t, p: grating(tuple(shape), t, sf, p, contrast))
    c = np.asarray(make(jnp.asarray(th, jnp.float32), jnp.asarray(ph, jnp.float32)))
    if noise > 0:
        c = c + noise * rng.standard_normal(c.shape)
    raw = np.clip(c * SCALE + BACKGROUND, 0.0, 255.0).astype(np.float32)[:, None]
    return raw, np.r_[np.ones(n, np.int64), np.zeros(n, np.int64)]


# --------------------------------------------------------------------------- selectivity

def _binary(labels, n_image, n_neuron) -> np.ndarray:
    lab = np.asarray(labels.values if isinstance(labels, xr.DataArray) else labels)
    lab = lab.astype(np.int64) if lab.dtype == bool else lab
    if lab.ndim == 1:
        lab = lab[:, None]
    if lab.shape[0] != n_image or lab.shape[1] not in (1, n_neuron) or lab.ndim != 2:
        raise DataError(f"labels have shape {np.shape(labels)}", field="labels",
                        expected=f"({n_image},) or ({n_image}, {n_neuron})")
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
        raise DataError(f"rates have shape {r.shape}", field="rates",
                        expected="(image, neuron)")
    pos = _binary(labels, *r.shape)
    neg = ~pos
    npos, nneg = pos.sum(0), neg.sum(0)
    if (npos == 0).any() or (nneg == 0).any():
        raise DataError("a neuron has no positive or no negative image", field="labels",
                        expected="both classes present for every neuron")
    mp = (r * pos).sum(0) / npos
    mn = (r * neg).sum(0) / nneg
    sp = np.sqrt((pos * (r - mp) ** 2).sum(0) / npos)
    sn = np.sqrt((neg * (r - mn) ** 2).sum(0) / nneg)
    with np.errstate(invalid="ignore", divide="ignore"):
        si = np.where(mp + mn != 0, (mp - mn) / (mp + mn), 0.0)
        pooled = np.sqrt((sp ** 2 + sn ** 2) / 2)
        dp = np.where(pooled > 0, (mp - mn) / pooled,
                      np.where(mp == mn, 0.0, np.sign(mp - mn) * np.inf))
    out = xr.Dataset({"rate_pos": ("neuron", mp), "rate_neg": ("neuron", mn),
                      "sd_pos": ("neuron", sp), "sd_neg": ("neuron", sn),
                      "selectivity_index": ("neuron", si), "d_prime": ("neuron", dp)},
                     coords=neuron_coords(rates))
    if information:
        out["information"] = ("neuron", poisson_information(
            np.maximum(r, 0.0), pos.astype(np.int64)).values)
    return out



def rate_distributions(rates, *, bins: int | np.ndarray = 60, range=None,
                       density: bool = True, positive_only: bool = False) -> xr.DataArray:
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
    allv = np.concatenate([v for v in vals.values()]) if vals else np.zeros(0)
    if allv.size == 0:
        raise DataError("no finite rates to histogram", field="rates")
    if range is None:
        range = (float(allv.min()), float(allv.max()) if allv.max() > allv.min()
                 else float(allv.min()) + 1.0)
    edges = np.histogram_bin_edges(allv, bins=bins, range=range)
    h = np.stack([np.histogram(v, bins=edges, density=density and v.size > 0)[0]
                  for v in vals.values()])
    return xr.DataArray(h, dims=("state", "bin"), name="rate_density" if density else "count",
                        coords={"state": list(vals), "bin_left": ("bin", edges[:-1]),
                                "bin_right": ("bin", edges[1:]),
                                "bin_centre": ("bin", (edges[:-1] + edges[1:]) / 2)})


def topographic_map(values, positions=None, *, grid: tuple[int, int] = (12, 12),
                    extent: tuple[float, float, float, float] | None = None) -> xr.DataArray:
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
            raise DataError("no neuron positions", field="positions",
                            expected="(neuron, 2) positions, or values with cortex_x / "
                                     "cortex_y coords")
        positions = np.stack([values["cortex_x"].values, values["cortex_y"].values], 1)
    v = np.asarray(values, np.float64)
    pos = np.asarray(positions, np.float64)
    if pos.ndim != 2 or pos.shape[1] < 2 or pos.shape[0] != v.shape[-1]:
        raise DataError(f"positions have shape {pos.shape} for {v.shape[-1]} neurons",
                        field="positions", expected=f"({v.shape[-1]}, 2)")
    ny, nx = grid
    x0, x1, y0, y1 = extent if extent is not None else (
        pos[:, 0].min(), pos[:, 0].max(), pos[:, 1].min(), pos[:, 1].max())
    x1 = x1 if x1 > x0 else x0 + 1.0
    y1 = y1 if y1 > y0 else y0 + 1.0
    ix = np.clip(((pos[:, 0] - x0) / (x1 - x0) * nx).astype(int), 0, nx - 1)
    iy = np.clip(((pos[:, 1] - y0) / (y1 - y0) * ny).astype(int), 0, ny - 1)
    cell = iy * nx + ix
    inside = ((pos[:, 0] >= x0) & (pos[:, 0] <= x1) & (pos[:, 1] >= y0) & (pos[:, 1] <= y1))
    lead = v.shape[:-1]
    flat = v.reshape(-1, v.shape[-1])
    ok = np.isfinite(flat) & inside[None]
    idx = (np.arange(len(flat))[:, None] * (ny * nx) + cell[None])
    sums = np.bincount(idx[ok], weights=flat[ok], minlength=len(flat) * ny * nx)
    cnt = np.bincount(idx[ok], minlength=len(flat) * ny * nx)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.where(cnt > 0, sums / cnt, np.nan).reshape(lead + (ny, nx))
    count = np.bincount(cell[inside], minlength=ny * nx).reshape(ny, nx)
    dims = tuple(f"dim_{i}" for i in range(len(lead))) + ("y", "x")
    return xr.DataArray(m, dims=dims, name="topographic_map",
                        coords={"y": y0 + (np.arange(ny) + 0.5) * (y1 - y0) / ny,
                                "x": x0 + (np.arange(nx) + 0.5) * (x1 - x0) / nx,
                                "count": (("y", "x"), count)})


def compare_models(models: Mapping[str, tuple[Callable, object]], images, labels, *,
                   noise=(0.0,), seed: int = 0, clip: tuple[float, float] | None = (0, 255),
                   batch_size: int = 256, neuron_id=None) -> xr.Dataset:
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
    x = _as_images(images)
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
            raise DataError(f"model '{name}' has {rates[0].shape[1]} neurons, others "
                            f"{per_model[0]['rates'].shape[-1]}", field="models",
                            expected="the same neurons in every model")
        ds = xr.concat(per_noise, dim="noise")
        ds["rates"] = (("noise", "image", "neuron"), np.stack(rates))
        per_model.append(ds)
    out = xr.concat(per_model, dim="model")
    n_neu = out.sizes["neuron"]
    out = out.assign_coords(model=list(models), noise=amps,
                            neuron_id=("neuron", np.arange(n_neu) if neuron_id is None
                                       else np.asarray(neuron_id)))
    return out.transpose("model", "noise", ..., "neuron")
