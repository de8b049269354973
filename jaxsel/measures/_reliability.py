"""Reliability of single neurons from repeated presentations: oracle correlation, FEV, FEVE.

Every function takes the repeats array of :func:`jaxsel.data.repeats`, an
``xr.DataArray`` (image, repeat, neuron) NaN-padded where an image was shown fewer times
(ragged repeat counts). NaN may also mark single missing (image, repeat, neuron) entries:
all counts are taken per (image, neuron) from the finite entries. An image with fewer than
two finite repeats for a neuron carries no information about trial-to-trial variability;
it is skipped for that neuron and counted (coords ``n_images_used`` / ``n_images_skipped``).

All estimators are vectorised over images, repeats and neurons (NumPy, float64); there is
no Python loop over neurons or images.

Variance decomposition (used by :func:`explainable_variance`, :func:`fev`, :func:`feve`),
per neuron, over the usable images ``i`` (``n_i >= 2`` repeats, mean ``m_i``, unbiased
within-image variance ``s_i^2``):

* noise variance ``N = mean_i s_i^2`` (each image weighted equally);
* signal (explainable) variance ``S = var_i(m_i; ddof=1) - mean_i(s_i^2 / n_i)``, an
  unbiased estimate of the variance of the true per-image means (the ``s_i^2/n_i`` term
  removes the noise left in the repeat averages);
* total variance ``T = S + N``; ``FEV = S / T``; ``SNR = S / N``;
* ``FEVE = 1 - (MSE - N) / S`` with ``MSE = mean_i mean_j (r_ij - p_i)^2``.

With the same image weighting in ``MSE`` and ``N``, ``E[MSE - N] = mean_i (mu_i - p_i)^2``
exactly, also for ragged repeats and image-dependent (e.g. Poisson) noise; for balanced
repeats the definitions agree with the classical ones (Cadena et al. 2019) up to
O(1/n_images). Nothing is clipped: FEV and FEVE can be negative for noise-dominated neurons.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from jaxsel._errors import DataError
from jaxsel.data import repeats
from jaxsel.measures._labels import neuron_coords

_DIMS = ("image", "repeat", "neuron")


# --------------------------------------------------------------------------- input handling


def _as_repeats(rep) -> xr.DataArray:
    """Validate / wrap a repeats array (image, repeat, neuron); a dataset is turned into
    the repeats of its test tier (``jaxsel.data.repeats(ds, tier='test')``)."""
    if isinstance(rep, xr.Dataset):
        if "responses" not in rep or "image_id" not in rep:
            raise DataError(
                "got a dataset without responses and image_id",
                field="rep",
                expected="a dataset of jaxsel.data (make_dataset, load_static, ...) or the "
                "repeats array jaxsel.data.repeats(ds, tier='test')",
            )
        rep = repeats(rep, "test")
    rep = _checked_values(rep)
    if isinstance(rep, xr.DataArray):
        if set(rep.dims) != set(_DIMS):
            raise DataError(
                f"repeats array has dims {rep.dims}",
                field="rep",
                expected="dims ('image', 'repeat', 'neuron'), as returned by "
                "jaxsel.data.repeats(ds, tier='test')",
            )
        return rep.transpose(*_DIMS)
    a = np.asarray(rep)
    if a.ndim != 3:
        raise DataError(
            f"repeats array has shape {a.shape}", field="rep", expected="(image, repeat, neuron)"
        )
    return xr.DataArray(a, dims=_DIMS, coords={"neuron_id": ("neuron", np.arange(a.shape[2]))})


def _checked_values(rep):
    """Numbers, NaN only as padding: an infinite response is an error, not a missing one."""
    values = rep.values if isinstance(rep, xr.DataArray) else rep
    try:
        a = np.asarray(values)
    except Exception:
        a = np.asarray(None)
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise DataError(
            f"got a {type(rep).__name__} of dtype {a.dtype}",
            field="rep",
            expected="the numeric repeats array (image, repeat, neuron) of "
            "jaxsel.data.repeats(ds, tier='test'), or the dataset itself",
        )
    inf = np.isinf(a) if np.issubdtype(a.dtype, np.inexact) else np.zeros(a.shape, bool)
    if inf.any():
        first = tuple(int(i) for i in np.argwhere(inf)[0])
        raise DataError(
            f"{int(inf.sum())} infinite responses, the first at (image, repeat, neuron) "
            f"index {first}",
            field="rep",
            expected="finite responses (NaN only where an image has fewer repeats)",
        )
    return rep


def _per_image(rep: xr.DataArray):
    """Masked float64 values and per-(image, neuron) sums and counts."""
    x = np.asarray(rep.values, dtype=np.float64)
    m = np.isfinite(x)
    x0 = np.where(m, x, 0.0)
    n = m.sum(axis=1)  # (image, neuron)
    s = x0.sum(axis=1)
    return x0, m, n, s


def _pearson(x, y, w, axes):
    """Weighted (0/1) Pearson correlation reduced over ``axes``; NaN where undefined."""
    W = w.sum(axis=axes)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = (w * x).sum(axis=axes) / W
        my = (w * y).sum(axis=axes) / W
        mx = np.expand_dims(mx, axes)
        my = np.expand_dims(my, axes)
        dx, dy = w * (x - mx), w * (y - my)
        sxy = (dx * dy).sum(axis=axes)
        sxx = (dx * dx).sum(axis=axes)
        syy = (dy * dy).sum(axis=axes)
        r = sxy / np.sqrt(sxx * syy)
    ok = (W >= 2) & (sxx > 0) & (syy > 0)
    return np.where(ok, r, np.nan)


# --------------------------------------------------------------------------- oracle


def oracle_correlation(rep) -> xr.DataArray:
    """Jackknife oracle correlation per neuron.

    Every single-trial response ``r_ij`` to image ``i`` is paired with the mean of the other
    ``n_i - 1`` repeats of that image (leave-one-out mean); the pairs of all trials of all
    usable images are pooled and correlated (Pearson). Images with fewer than two repeats
    for a neuron are skipped for it and counted.

    Args:
      rep: (image, repeat, neuron) responses, NaN-padded (``jaxsel.data.repeats``), or a
        dataset (its test tier's repeats are taken).

    Returns:
      ``xr.DataArray`` (neuron) named ``oracle`` with the neuron coords plus
      ``n_images_used`` and ``n_images_skipped`` (images with exactly one finite repeat;
      images with none are neither). NaN where undefined (constant responses, < 2 usable
      images).
    """
    rep = _as_repeats(rep)
    x0, m, n, s = _per_image(rep)
    usable = n >= 2
    with np.errstate(invalid="ignore", divide="ignore"):
        loo = (s[:, None, :] - x0) / (n[:, None, :] - 1)
    w = (m & usable[:, None, :]).astype(np.float64)
    loo = np.where(w > 0, loo, 0.0)
    r = _pearson(x0, loo, w, axes=(0, 1))
    return xr.DataArray(
        r,
        dims=("neuron",),
        name="oracle",
        coords={
            **neuron_coords(rep),
            "n_images_used": ("neuron", usable.sum(0)),
            "n_images_skipped": ("neuron", (n == 1).sum(0)),
        },
        attrs={"method": "jackknife (all trials vs leave-one-out mean)"},
    )


def oracle_correlation_random(
    rep, n_draws: int = 50, *, seed: int = 0, max_chunk_elements: int = 5_000_000
) -> xr.Dataset:
    """The randomized oracle (one random trial per image vs the mean of its other trials),
    vectorised, averaged over ``n_draws`` draws.

    In each draw, for every neuron and every image with at least two repeats, one trial is
    drawn uniformly among the image's finite repeats and paired with the mean of the others;
    the Pearson correlation over images is multiplied by the fraction of images that had at
    least two repeats (``n_images_used / n_images``, ``n_images`` = all images of ``rep``),
    which penalises neurons with little repeated data. Neurons are ranked in each draw
    (1 = highest correlation, NaN last) and ranks and correlations are averaged over draws.

    Args:
      rep: (image, repeat, neuron) responses, NaN-padded.
      n_draws: number of random draws ``K``.
      seed: seed of the NumPy generator (same seed, same result).
      max_chunk_elements: draws are processed in chunks of at most this many
        (draw x image x neuron) elements to bound memory.

    Returns:
      ``xr.Dataset`` (neuron) with ``oracle_random`` (mean over draws), ``oracle_random_sd``
      (sd over draws) and ``oracle_random_rank`` (mean rank), plus ``n_images_used``.
    """
    if int(n_draws) < 1:
        raise DataError(f"n_draws={n_draws}", field="n_draws", expected="an integer >= 1")
    rep = _as_repeats(rep)
    x0, m, n, s = _per_image(rep)
    n_img, _n_rep, n_neu = x0.shape
    usable = n >= 2
    frac = usable.sum(0) / max(n_img, 1)
    finite_first = np.argsort(~m, axis=1, kind="stable")  # finite repeats first
    rng = np.random.default_rng(seed)
    chunk = max(1, int(max_chunk_elements // max(n_img * n_neu, 1)))
    corrs = []
    for start in range(0, n_draws, chunk):
        k = min(chunk, n_draws - start)
        pick = np.floor(rng.random((k, n_img, n_neu)) * n).astype(np.int64)
        pick = np.minimum(pick, np.maximum(n - 1, 0))  # guards u*n rounding to n
        pos = np.take_along_axis(finite_first[None], pick[:, :, None, :], axis=2)
        xs = np.take_along_axis(x0[None], pos, axis=2)[:, :, 0, :]  # (k, image, neuron)
        with np.errstate(invalid="ignore", divide="ignore"):
            loo = (s[None] - xs) / (n[None] - 1)
        w = np.broadcast_to(usable[None], xs.shape).astype(np.float64)
        loo = np.where(w > 0, loo, 0.0)
        corrs.append(_pearson(xs, loo, w, axes=(1,)) * frac[None])
    c = np.concatenate(corrs)  # (draw, neuron)
    key = np.where(np.isfinite(c), -c, np.inf)
    ranks = np.empty_like(c)
    order = np.argsort(key, axis=1, kind="stable")
    np.put_along_axis(ranks, order, np.arange(1, n_neu + 1, dtype=np.float64)[None], axis=1)
    fin = np.isfinite(c)
    cnt = fin.sum(0)
    c0 = np.where(fin, c, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(cnt > 0, c0.sum(0) / cnt, np.nan)
        sd = np.where(cnt > 0, np.sqrt((fin * (c0 - mean) ** 2).sum(0) / cnt), np.nan)
    coords = {**neuron_coords(rep), "n_images_used": ("neuron", usable.sum(0))}
    return xr.Dataset(
        {
            "oracle_random": ("neuron", mean),
            "oracle_random_sd": ("neuron", sd),
            "oracle_random_rank": ("neuron", ranks.mean(axis=0)),
        },
        coords=coords,
        attrs={
            "n_draws": int(n_draws),
            "seed": int(seed),
            "method": "randomized oracle (one trial per image, "
            "weighted by fraction of usable images)",
        },
    )


# --------------------------------------------------------------------------- FEV / FEVE


def explainable_variance(rep) -> xr.Dataset:
    """Variance decomposition per neuron (see the module docstring for the estimators).

    Args:
      rep: (image, repeat, neuron) responses, NaN-padded.

    Returns:
      ``xr.Dataset`` (neuron): ``total_variance``, ``noise_variance``,
      ``explainable_variance`` (signal), ``fev``, ``snr``, with ``n_images_used``.
    """
    rep = _as_repeats(rep)
    st = _moments(rep)
    S, N = st["signal"], st["noise"]
    T = S + N
    with np.errstate(invalid="ignore", divide="ignore"):
        fev_ = np.where(T > 0, S / T, np.nan)
        snr = np.where(N > 0, S / N, np.nan)
    return xr.Dataset(
        {
            "total_variance": ("neuron", T),
            "noise_variance": ("neuron", N),
            "explainable_variance": ("neuron", S),
            "fev": ("neuron", fev_),
            "snr": ("neuron", snr),
        },
        coords={**neuron_coords(rep), "n_images_used": ("neuron", st["usable"].sum(0))},
    )


def _moments(rep: xr.DataArray) -> dict:
    x0, m, n, s = _per_image(rep)
    usable = n >= 2
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s / n
        ss = np.where(m, (x0 - mean[:, None, :]) ** 2, 0.0).sum(axis=1)
        var_i = ss / (n - 1)  # unbiased within-image variance
    u = usable.astype(np.float64)
    n_u = u.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        noise = np.where(usable, var_i, 0.0).sum(0) / n_u
        mean_u = np.where(usable, mean, 0.0)
        grand = mean_u.sum(0) / n_u
        var_means = (u * (mean_u - grand) ** 2).sum(0) / (n_u - 1)
        resid = np.where(usable, var_i / n, 0.0).sum(0) / n_u
        signal = var_means - resid
    bad = n_u < 2
    signal = np.where(bad, np.nan, signal)
    noise = np.where(bad, np.nan, noise)
    return {"signal": signal, "noise": noise, "usable": usable, "x0": x0, "m": m, "n": n}


def fev(rep) -> xr.DataArray:
    """Fraction of explainable variance per neuron, ``S / (S + N)``.

    Args:
      rep: (image, repeat, neuron) responses, NaN-padded.

    Returns:
      ``xr.DataArray`` (neuron) named ``fev`` (NaN with fewer than 2 usable images or zero
      total variance).
    """
    return explainable_variance(rep)["fev"].rename("fev")


def feve(rep, predictions, *, min_fev: float | None = None) -> xr.DataArray:
    """Fraction of explainable variance explained by predictions, per neuron.

    ``FEVE = 1 - (MSE - N) / S`` (module docstring). By convention FEVE is only meaningful
    for neurons with enough explainable variance (FEV >= 0.15 in Cadena et al. 2019): the
    result carries the coord ``fev`` so callers can filter, and ``min_fev`` sets FEVE to NaN
    below a threshold directly.

    Args:
      rep: (image, repeat, neuron) responses, NaN-padded.
      predictions: (image, neuron) predicted mean responses in the image order of ``rep``
        (sorted ``image_id``); an ``xr.DataArray`` with an ``image_id`` coord is aligned by id.
      min_fev: if given, FEVE is NaN for neurons with ``fev < min_fev``.

    Returns:
      ``xr.DataArray`` (neuron) named ``feve`` with coords ``fev`` and the neuron coords.

    Raises:
      DataError: predictions of the wrong shape, non-finite, or missing image ids.
    """
    rep = _as_repeats(rep)
    p = _align_predictions(rep, predictions)
    st = _moments(rep)
    x0, m, n, usable = st["x0"], st["m"], st["n"], st["usable"]
    with np.errstate(invalid="ignore", divide="ignore"):
        mse_i = np.where(m, (x0 - p[:, None, :]) ** 2, 0.0).sum(axis=1) / n
        n_u = usable.sum(0)
        mse = np.where(usable, mse_i, 0.0).sum(0) / n_u
        S, N = st["signal"], st["noise"]
        out = 1.0 - (mse - N) / S
        fev_ = S / (S + N)
    out = np.where(S > 0, out, np.nan)
    if min_fev is not None:
        out = np.where(fev_ >= min_fev, out, np.nan)
    return xr.DataArray(
        out,
        dims=("neuron",),
        name="feve",
        coords={**neuron_coords(rep), "fev": ("neuron", fev_)},
        attrs={"min_fev": "none" if min_fev is None else float(min_fev)},
    )


def _align_predictions(rep: xr.DataArray, predictions) -> np.ndarray:
    if (
        isinstance(predictions, xr.DataArray)
        and "image_id" in predictions.coords
        and "image_id" in rep.coords
    ):
        pid = np.asarray(predictions["image_id"].values)
        pos = {v: i for i, v in enumerate(pid.tolist())}
        missing = [v for v in rep["image_id"].values.tolist() if v not in pos]
        if missing:
            raise DataError(
                f"no prediction for image ids {missing[:5]}",
                field="predictions.image_id",
                expected="a prediction for every image of the repeats array",
            )
        dim = predictions["image_id"].dims[0]
        predictions = predictions.transpose(dim, ...).values[
            [pos[v] for v in rep["image_id"].values.tolist()]
        ]
    p = np.asarray(predictions, dtype=np.float64)
    want = (rep.sizes["image"], rep.sizes["neuron"])
    if p.shape != want:
        raise DataError(
            f"predictions have shape {p.shape}",
            field="predictions",
            expected=f"(image, neuron) = {want}, in the image order of the repeats array",
        )
    if not np.isfinite(p).all():
        raise DataError("non-finite predictions", field="predictions", expected="finite numbers")
    return p


def reliability(rep, *, n_draws: int = 50, seed: int = 0) -> xr.Dataset:
    """All reliability statistics per neuron in one labelled table.

    Args:
      rep: (image, repeat, neuron) responses, NaN-padded.
      n_draws, seed: for the randomized oracle (:func:`oracle_correlation_random`).

    Returns:
      ``xr.Dataset`` (neuron): ``oracle``, ``oracle_random``, ``oracle_random_sd``,
      ``oracle_random_rank``, ``total_variance``, ``noise_variance``,
      ``explainable_variance``, ``fev``, ``snr``, ``n_images_used``, ``n_images_skipped``.
    """
    rep = _as_repeats(rep)
    o = oracle_correlation(rep)
    out = explainable_variance(rep)
    out["oracle"] = o.reset_coords(drop=True)
    out = out.assign_coords(n_images_skipped=("neuron", o["n_images_skipped"].values))
    rnd = oracle_correlation_random(rep, n_draws, seed=seed)
    for k in rnd.data_vars:
        out[k] = rnd[k].reset_coords(drop=True)
    return out
