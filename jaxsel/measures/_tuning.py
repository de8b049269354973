"""Tuning statistics of single neurons and of pairs: variance, entropy, signal correlations,
outliers, and a raster of binned activity sorted by similarity.

The per-image statistics work on per-image mean responses ``(image, neuron)``; get them from
a repeats array or a dataset with :func:`image_means`.

Outliers (:func:`outlier_flags`) use a robust distance, not an isolation forest: the default
is a robust Mahalanobis distance with the orthogonalised Gnanadesikan-Kettenring (OGK)
estimator of location and scatter (Maronna & Zamar 2002), flagged above the 0.975 quantile
of the chi-square distribution with as many degrees of freedom as features. Why: it is
deterministic (no random trees), needs no scikit-learn, has a stated false-positive rate for
Gaussian-like bulk data, and accounts for the strong correlation between variance, entropy
and mean rate, which per-feature robust z-scores (``method="robust_z"``, modified z-score of
Iglewicz & Hoaglin with threshold 3.5, also available) ignore.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import stats
from scipy.cluster import hierarchy
from scipy.spatial.distance import squareform

from jaxsel._errors import DataError
from jaxsel.measures._labels import neuron_coords

_MAD_TO_SD = 1.4826


def _as_means(means) -> xr.DataArray:
    if isinstance(means, xr.DataArray):
        if set(means.dims) != {"image", "neuron"}:
            raise DataError(
                f"per-image means have dims {means.dims}",
                field="means",
                expected="('image', 'neuron'); see image_means()",
            )
        return means.transpose("image", "neuron")
    a = np.asarray(means, dtype=np.float64)
    if a.ndim != 2:
        raise DataError(
            f"per-image means have shape {a.shape}", field="means", expected="(image, neuron)"
        )
    return xr.DataArray(
        a, dims=("image", "neuron"), coords={"neuron_id": ("neuron", np.arange(a.shape[1]))}
    )


def image_means(data, tier: str | None = "test") -> xr.DataArray:
    """Mean response per image and neuron.

    Args:
      data: a repeats array (image, repeat, neuron) — averaged over finite repeats — or a
        dataset, whose trials of ``tier`` (all trials if None) are grouped by ``image_id``.
      tier: tier of a dataset to use.

    Returns:
      ``xr.DataArray`` (image, neuron) named ``image_mean`` with ``image_id`` and neuron
      coords.
    """
    if isinstance(data, xr.Dataset):
        sel = data if tier is None else data.isel(trial=np.flatnonzero(data["tier"].values == tier))
        if sel.sizes["trial"] == 0:
            raise DataError(f"no trials in tier '{tier}'", field="tier")
        ids, inv = np.unique(sel["image_id"].values, return_inverse=True)
        r = sel["responses"].values.astype(np.float64)
        sums = np.zeros((len(ids), r.shape[1]))
        np.add.at(sums, inv, r)
        out = sums / np.bincount(inv, minlength=len(ids))[:, None]
        return xr.DataArray(
            out,
            dims=("image", "neuron"),
            name="image_mean",
            coords={"image_id": ("image", ids), **neuron_coords(sel)},
        )
    if isinstance(data, xr.DataArray) and data.ndim == 3:
        rep = data.transpose("image", "repeat", "neuron")
        x = rep.values.astype(np.float64)
        m = np.isfinite(x)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(m, x, 0).sum(1) / m.sum(1)
        coords = {k: v for k, v in rep.coords.items() if "repeat" not in v.dims}
        return xr.DataArray(out, dims=("image", "neuron"), coords=coords, name="image_mean")
    raise DataError(
        f"cannot take image means of {type(data).__name__}",
        field="data",
        expected="a dataset or a repeats DataArray (image, repeat, neuron)",
    )


def response_variance(means, ddof: int = 1) -> xr.DataArray:
    """Variance across images of the per-image mean response (the ``variance`` of the
    reliable-and-variable selection rule).

    Args:
      means: (image, neuron) per-image means.
      ddof: delta degrees of freedom (1 = sample variance, as pandas' ``var``).

    Returns:
      ``xr.DataArray`` (neuron) named ``variance``.
    """
    m = _as_means(means)
    v = np.nanvar(m.values.astype(np.float64), axis=0, ddof=ddof)
    return xr.DataArray(v, dims=("neuron",), coords=neuron_coords(m), name="variance")


def response_entropy(values, *, bins: int | None = None, base: float = 2.0) -> xr.DataArray:
    """Entropy of each neuron's distribution of response values across images.

    With ``bins=None`` every distinct value is its own category (right for spike counts and
    their repeat averages); with ``bins=k`` values are put in ``k``
    equal-width bins between the neuron's min and max (for continuous responses).

    Args:
      values: (image, neuron) responses (e.g. per-image means); NaN ignored.
      bins: None (distinct values) or the number of equal-width bins.
      base: logarithm base (2 = bits, e for nats).

    Returns:
      ``xr.DataArray`` (neuron) named ``entropy``.
    """
    m = _as_means(values)
    x = m.values.astype(np.float64)
    _n_img, n_neu = x.shape
    ok = np.isfinite(x)
    if bins is not None:
        if int(bins) < 1:
            raise DataError(f"bins={bins}", field="bins", expected="None or an integer >= 1")
        lo = np.nanmin(np.where(ok, x, np.nan), axis=0)
        hi = np.nanmax(np.where(ok, x, np.nan), axis=0)
        width = np.where(hi > lo, (hi - lo) / bins, 1.0)
        x = np.clip(np.floor((x - lo) / width), 0, bins - 1)
    neuron = np.broadcast_to(np.arange(n_neu), x.shape)[ok]
    pairs = np.stack([neuron.astype(np.float64), x[ok]], axis=1)
    uniq, counts = np.unique(pairs, axis=0, return_counts=True)
    owner = uniq[:, 0].astype(np.int64)
    total = ok.sum(0)
    p = counts / total[owner]
    h = -np.bincount(owner, weights=p * np.log(p), minlength=n_neu) / np.log(base)
    h = np.where(total > 0, h, np.nan)
    return xr.DataArray(
        h,
        dims=("neuron",),
        coords=neuron_coords(m),
        name="entropy",
        attrs={"base": base, "bins": "distinct values" if bins is None else int(bins)},
    )


def signal_correlations(means) -> xr.DataArray:
    """Pairwise signal correlation: Pearson correlation of per-image mean responses.

    Args:
      means: (image, neuron) per-image means.

    Returns:
      ``xr.DataArray`` (neuron, neuron_other) with ``neuron_id`` / ``neuron_id_other``
      coords; NaN for neurons with constant means.
    """
    m = _as_means(means)
    x = m.values.astype(np.float64)
    x = x - np.nanmean(x, axis=0)
    x = np.where(np.isfinite(x), x, 0.0)
    norm = np.sqrt((x**2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = x / norm
        c = z.T @ z
    c[:, norm == 0] = np.nan
    c[norm == 0, :] = np.nan
    ids = m["neuron_id"].values if "neuron_id" in m.coords else np.arange(x.shape[1])
    return xr.DataArray(
        c,
        dims=("neuron", "neuron_other"),
        name="signal_correlation",
        coords={**neuron_coords(m), "neuron_id_other": ("neuron_other", ids)},
    )


def correlation_partners(corr: xr.DataArray) -> xr.Dataset:
    """Each neuron's most and least correlated other neuron (the diagonal is excluded).

    Args:
      corr: (neuron, neuron_other) correlation matrix (:func:`signal_correlations`).

    Returns:
      ``xr.Dataset`` (neuron): ``max_corr``, ``max_corr_partner`` (neuron id),
      ``min_corr``, ``min_corr_partner``. Partner ids are -1 where no finite value exists.
    """
    c = np.array(corr.values, dtype=np.float64)
    n = c.shape[0]
    if c.shape != (n, n):
        raise DataError(
            f"correlation matrix has shape {c.shape}",
            field="corr",
            expected="a square (neuron, neuron_other) matrix",
        )
    np.fill_diagonal(c, np.nan)
    ok = np.isfinite(c)
    hi = np.where(ok, c, -np.inf)
    lo = np.where(ok, c, np.inf)
    imax, imin = hi.argmax(1), lo.argmin(1)
    any_ok = ok.any(1)
    ids = corr["neuron_id_other"].values if "neuron_id_other" in corr.coords else np.arange(n)
    return xr.Dataset(
        {
            "max_corr": ("neuron", np.where(any_ok, hi.max(1), np.nan)),
            "max_corr_partner": ("neuron", np.where(any_ok, ids[imax], -1)),
            "min_corr": ("neuron", np.where(any_ok, lo.min(1), np.nan)),
            "min_corr_partner": ("neuron", np.where(any_ok, ids[imin], -1)),
        },
        coords=neuron_coords(corr),
    )


def _robust_scale(x, axis=0):
    med = np.median(x, axis=axis, keepdims=True)
    mad = np.expand_dims(stats.median_abs_deviation(x, axis=axis, scale=1 / _MAD_TO_SD), axis)
    return med, mad


def outlier_flags(
    features, *, method: str = "robust_mahalanobis", threshold: float | None = None
) -> xr.Dataset:
    """Flag neurons whose statistics lie far from the bulk of the population.

    Args:
      features: ``xr.Dataset`` of (neuron,) variables (each a feature), or an array /
        DataArray (neuron, feature). Rows with a non-finite feature are not scored.
      method: ``"robust_mahalanobis"`` (OGK robust distance, default) or ``"robust_z"``
        (largest absolute modified z-score over features).
      threshold: flag when the score exceeds it; default: ``sqrt(chi2.ppf(0.975, d))`` for
        the distance, 3.5 for ``robust_z``.

    Returns:
      ``xr.Dataset`` (neuron): ``outlier_score`` and boolean ``outlier``; attrs name the
      method, threshold and features.
    """
    if isinstance(features, xr.Dataset):
        names = list(features.data_vars)
        x = np.stack([features[k].values.astype(np.float64) for k in names], axis=1)
        coords = neuron_coords(features)
    else:
        arr = features
        x = np.asarray(arr, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        names = [str(i) for i in range(x.shape[1])]
        coords = neuron_coords(arr) if isinstance(arr, xr.DataArray) else {}
    if x.ndim != 2:
        raise DataError(
            f"features have shape {x.shape}", field="features", expected="(neuron, feature)"
        )
    ok = np.isfinite(x).all(1)
    xs = x[ok]
    med, mad = _robust_scale(xs)
    mad = np.where(mad > 0, mad, 1.0)
    z = (xs - med) / mad
    if method == "robust_z":
        thr = 3.5 if threshold is None else float(threshold)
        score_ok = np.abs(z).max(1) if len(z) else np.zeros(0)
    elif method == "robust_mahalanobis":
        d = z.shape[1]
        thr = float(np.sqrt(stats.chi2.ppf(0.975, d))) if threshold is None else float(threshold)
        score_ok = _ogk_distance(z)
    else:
        raise DataError(
            f"unknown outlier method '{method}'",
            field="method",
            expected="'robust_mahalanobis' or 'robust_z'",
        )
    score = np.full(len(x), np.nan)
    score[ok] = score_ok
    return xr.Dataset(
        {
            "outlier_score": ("neuron", score),
            "outlier": ("neuron", np.where(ok, score > thr, False)),
        },
        coords=coords,
        attrs={"method": method, "threshold": thr, "features": ",".join(map(str, names))},
    )


def _ogk_distance(z: np.ndarray) -> np.ndarray:
    """Robust distance with one OGK step on robustly standardised data ``z`` (n, d)."""
    n, d = z.shape
    if n == 0:
        return np.zeros(0)

    def scale(a):
        s = stats.median_abs_deviation(a, axis=0, scale=1 / _MAD_TO_SD)
        return np.where(s > 0, s, 1.0)

    # Gnanadesikan-Kettenring pairwise covariances (correlations, as z is unit-scaled).
    plus = z[:, :, None] + z[:, None, :]
    minus = z[:, :, None] - z[:, None, :]
    u = (scale(plus.reshape(n, -1)) ** 2 - scale(minus.reshape(n, -1)) ** 2).reshape(d, d) / 4
    np.fill_diagonal(u, 1.0)
    _, vecs = np.linalg.eigh(u)
    proj = z @ vecs
    centre = np.median(proj, axis=0)
    s = scale(proj)
    return np.sqrt((((proj - centre) / s) ** 2).sum(1))


def similarity_order(activity) -> np.ndarray:
    """Order neurons so that similar activity profiles are adjacent.

    Average-linkage hierarchical clustering on correlation distance ``1 - r`` with optimal
    leaf ordering (a deterministic stand-in for Rastermap's 1-D embedding).

    Args:
      activity: (neuron, time) array.

    Returns:
      (neuron,) integer permutation.
    """
    a = np.asarray(activity, dtype=np.float64)
    n = a.shape[0]
    if n < 3:
        return np.arange(n)
    a = a - a.mean(1, keepdims=True)
    norm = np.linalg.norm(a, axis=1, keepdims=True)
    z = np.where(norm > 0, a / np.where(norm > 0, norm, 1.0), 0.0)
    dist = np.clip(1.0 - z @ z.T, 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    dist = (dist + dist.T) / 2
    link = hierarchy.linkage(squareform(dist, checks=False), method="average")
    return hierarchy.leaves_list(
        hierarchy.optimal_leaf_ordering(link, squareform(dist, checks=False))
    )


def sorted_raster(
    ds: xr.Dataset, *, bin_size: int = 10, tier: str | None = None, zscore: bool = True
) -> xr.DataArray:
    """Binned activity of all neurons over trials, rows sorted by similarity.

    Trials are taken in dataset order (presentation order) and summed in consecutive bins
    of ``bin_size`` trials (a trailing partial bin is dropped); each neuron is z-scored over
    bins if ``zscore``; neurons are ordered by :func:`similarity_order`.

    Args:
      ds: a dataset.
      bin_size: trials per bin.
      tier: only trials of this tier (all if None).
      zscore: z-score each neuron over bins.

    Returns:
      ``xr.DataArray`` (neuron, bin) in sorted order, with neuron coords, ``order`` (position
      of each row in the original neuron axis) and ``first_trial`` per bin.
    """
    if int(bin_size) < 1:
        raise DataError(f"bin_size={bin_size}", field="bin_size", expected="an integer >= 1")
    sel = ds if tier is None else ds.isel(trial=np.flatnonzero(ds["tier"].values == tier))
    r = sel["responses"].values.astype(np.float64)
    n_bins = r.shape[0] // bin_size
    if n_bins < 1:
        raise DataError(
            f"{r.shape[0]} trials, fewer than bin_size={bin_size}",
            field="bin_size",
            expected="at most the number of trials",
        )
    b = r[: n_bins * bin_size].reshape(n_bins, bin_size, -1).sum(1).T  # (neuron, bin)
    if zscore:
        sd = b.std(1, keepdims=True)
        b = (b - b.mean(1, keepdims=True)) / np.where(sd > 0, sd, 1.0)
    order = similarity_order(b)
    coords = {
        k: ("neuron", v[order])
        for k, v in ((k, c.values) for k, c in sel.coords.items() if c.dims == ("neuron",))
    }
    return xr.DataArray(
        b[order],
        dims=("neuron", "bin"),
        name="raster",
        coords={
            **coords,
            "order": ("neuron", order),
            "first_trial": ("bin", np.arange(n_bins) * bin_size),
        },
        attrs={"bin_size": int(bin_size), "zscore": bool(zscore)},
    )
