"""Single-neuron mutual information I(s; R) between a stimulus label and the response.

Two estimators, both vectorised over neurons:

* :func:`poisson_information` — from noise-free rates (e.g. a model's, or the twin's) under
  Poisson spike-count noise: ``P(R=k | s) = mean over images i of class s of
  Poisson(k; rate_i)``, ``I = H(R) - H(R | s)`` by an exact sum over counts
  ``k = 0..k_max`` (``k_max`` chosen so the Poisson tail beyond it is negligible, < 1e-12).
  Written in JAX (jit, accelerator-ready); float32 unless x64 is enabled.
* :func:`repeat_information` — from measured responses (counts, or binned values) over
  repeated trials: the plug-in estimate of the joint histogram ``(s, R)`` minus the
  Panzeri-Treves (1996) first-order bias correction
  ``[sum_s (B_s - 1) - (B - 1)] / (2 n_trials ln 2)`` (``B_s`` = response bins with a
  nonzero count in class ``s``, ``B`` = bins nonzero overall; the Miller-Madow correction of
  ``H(R) - H(R|s)``). Chosen because it is analytic, deterministic and cheap to vectorise,
  and because with tens of trials per class it removes most of the plug-in's upward bias
  (a shuffle correction needs many recomputations and over-corrects). The corrected value
  can be slightly negative for uninformative neurons; it is not clipped unless ``clip``.

Labels are integer classes ``0..C-1`` (a boolean label is 0/1), per image ``(image,)`` or per
image and neuron ``(image, neuron)`` (e.g. "the neuron's preferred orientation is present").
With a binary label the information is at most 1 bit.

Population summaries (ranked information curves, informative counts, the sweep table) are
in ``_information_summaries``.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats
import xarray as xr
from jax.scipy.special import gammaln, xlogy
from numpy.typing import ArrayLike

from jaxsel._errors import DataError
from jaxsel.measures._labels import neuron_coords

INFO_THRESHOLD = 2.0 / 3.0
_LN2 = float(np.log(2.0))


# --------------------------------------------------------------------------- labels


def integer_labels(labels, n_image: int, n_neuron: int) -> tuple[np.ndarray, int]:
    """Integer labels broadcast to (image, neuron) and the number of classes."""
    lab = np.asarray(labels.values if isinstance(labels, xr.DataArray) else labels)
    if lab.dtype == bool:
        lab = lab.astype(np.int64)
    if lab.ndim == 1:
        lab = lab[:, None]
    if lab.ndim != 2 or lab.shape[0] != n_image or lab.shape[1] not in (1, n_neuron):
        raise DataError(
            f"labels have shape {np.shape(labels)}",
            field="labels",
            expected=f"({n_image},) or ({n_image}, {n_neuron}): one class per image (and neuron)",
        )
    if not np.issubdtype(lab.dtype, np.integer):
        if not np.all(np.isfinite(lab)) or not np.all(lab == np.round(lab)):
            raise DataError(
                "labels are not integer classes",
                field="labels",
                expected="integers 0..C-1 or booleans",
            )
        lab = lab.astype(np.int64)
    if lab.min(initial=0) < 0:
        raise DataError(f"negative label {lab.min()}", field="labels", expected="integers 0..C-1")
    n_class = max(int(lab.max(initial=0)) + 1, 2)
    return np.broadcast_to(lab, (n_image, n_neuron)), n_class


# --------------------------------------------------------------------------- Poisson rates


@partial(jax.jit, static_argnames=("k_max",))
def _poisson_info_core(rates, weights, prior, k_max: int):
    """I(s; R) in bits for rates (image, neuron), class weights (image, neuron, class)
    (each class's weights sum to 1 over images) and prior (class, neuron)."""
    k = jnp.arange(k_max + 1, dtype=rates.dtype)[:, None, None]
    logp = xlogy(k, rates[None]) - rates[None] - gammaln(k + 1.0)
    p = jnp.exp(logp)  # (k, image, neuron)
    p_ks = jnp.einsum("kin,inc->kcn", p, weights)  # P(k | s)
    p_k = jnp.einsum("kcn,cn->kn", p_ks, prior)  # P(k)
    h_r = -jnp.sum(xlogy(p_k, p_k), axis=0)
    h_rs = -jnp.sum(prior * jnp.sum(xlogy(p_ks, p_ks), axis=0), axis=0)
    return (h_r - h_rs) / _LN2


def class_weights(lab: np.ndarray, n_class: int, prior):
    """Per-class image weights (image, neuron, class) and prior (class, neuron)."""
    onehot = (lab[..., None] == np.arange(n_class)).astype(np.float64)  # (image, neuron, C)
    counts = onehot.sum(0)  # (neuron, C)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(counts[None] > 0, onehot / counts[None], 0.0)
    if isinstance(prior, str):
        if prior == "empirical":
            pr = counts / counts.sum(1, keepdims=True)
        elif prior == "uniform":
            present = (counts > 0).astype(np.float64)
            pr = present / present.sum(1, keepdims=True)
        else:
            raise DataError(
                f"unknown prior '{prior}'",
                field="prior",
                expected="'empirical', 'uniform' or an array of class probabilities",
            )
    else:
        pr = np.broadcast_to(np.asarray(prior, np.float64), (n_class,))[None].repeat(
            counts.shape[0], 0
        )
        if np.any(pr < 0) or not np.isclose(pr.sum(1), 1.0).all():
            raise DataError(
                f"prior {np.asarray(prior)}",
                field="prior",
                expected="non-negative class probabilities summing to 1",
            )
        if np.any((pr > 0) & (counts == 0)):
            raise DataError(
                "a class with prior > 0 has no images",
                field="prior",
                expected="images for every class with positive prior",
            )
    return w, pr.T


def poisson_information(
    rates,
    labels,
    *,
    prior: str | ArrayLike = "empirical",
    k_max: int | None = None,
    max_chunk_elements: int = 2**24,
) -> xr.DataArray:
    """Mutual information between a label and a Poisson spike count with the given rates.

    Args:
      rates: (image, neuron) non-negative mean counts (array or DataArray).
      labels: (image,) or (image, neuron) integer / boolean classes.
      prior: class probabilities: ``"empirical"`` (fraction of images per class: every
        image equally likely), ``"uniform"``, or an array (class,).
      k_max: largest count summed (default: ``ceil(max_rate + 12 sqrt(max_rate) + 20)``).
      max_chunk_elements: neurons are processed in chunks of at most this many
        (count x image x neuron) elements.

    Returns:
      ``xr.DataArray`` (neuron) named ``information`` in bits.
    """
    r = np.asarray(rates.values if isinstance(rates, xr.DataArray) else rates, np.float64)
    if r.ndim == 1:
        r = r[:, None]
    if r.ndim != 2:
        raise DataError(f"rates have shape {r.shape}", field="rates", expected="(image, neuron)")
    if not np.all(np.isfinite(r)) or np.any(r < 0):
        raise DataError(
            "rates must be finite and non-negative", field="rates", expected="Poisson means >= 0"
        )
    n_img, n_neu = r.shape
    lab, n_class = integer_labels(labels, n_img, n_neu)
    w, pr = class_weights(lab, n_class, prior)
    lam = float(r.max(initial=0.0))
    k_max = int(np.ceil(lam + 12.0 * np.sqrt(lam) + 20.0)) if k_max is None else int(k_max)
    dtype = jnp.result_type(float)
    chunk = max(1, int(max_chunk_elements // max((k_max + 1) * n_img, 1)))
    out = []
    for s in range(0, n_neu, chunk):
        e = min(n_neu, s + chunk)
        pad = chunk - (e - s) if n_neu > chunk else 0  # fixed shapes: one compile
        rr = np.pad(r[:, s:e], ((0, 0), (0, pad)))
        ww = np.pad(w[:, s:e], ((0, 0), (0, pad), (0, 0)))
        pp = np.pad(pr[:, s:e], ((0, 0), (0, pad)), constant_values=1.0 / n_class)
        res = _poisson_info_core(
            jnp.asarray(rr, dtype), jnp.asarray(ww, dtype), jnp.asarray(pp, dtype), k_max
        )
        out.append(np.asarray(res, np.float64)[: e - s])
    info = np.concatenate(out) if out else np.zeros(0)
    h_s = scipy.stats.entropy(pr, base=2, axis=0)  # H(s) of the class prior, bits
    info = np.clip(info, 0.0, h_s)  # 0 <= I <= H(s): removes float round-off only
    return xr.DataArray(
        info,
        dims=("neuron",),
        name="information",
        coords=neuron_coords(rates),
        attrs={"units": "bit", "method": "exact Poisson sum", "k_max": k_max},
    )


# --------------------------------------------------------------------------- repeats


def repeat_information(
    rep, labels, *, bins: int | None = None, correction: str = "pt", clip: bool = False
) -> xr.Dataset:
    """Plug-in mutual information from repeated trials, with bias correction.

    Args:
      rep: (image, repeat, neuron) responses, NaN-padded (``jaxsel.data.repeats``); every
        finite trial is one sample ``(s = label of its image, R = its response)``.
      labels: (image,) or (image, neuron) classes.
      bins: None: responses are non-negative integer counts, one bin per count; an integer:
        equal-population bins per neuron (ranks, ties share a bin).
      correction: ``"pt"`` (Panzeri-Treves / Miller-Madow) or ``"none"``.
      clip: clip the corrected value to ``[0, log2(C)]``.

    Returns:
      ``xr.Dataset`` (neuron): ``information`` (corrected, bits), ``plugin``, ``bias``,
      ``n_trials``.
    """
    if isinstance(rep, xr.DataArray):
        if set(rep.dims) != {"image", "repeat", "neuron"}:
            raise DataError(
                f"repeats array has dims {rep.dims}",
                field="rep",
                expected="('image', 'repeat', 'neuron')",
            )
        x = rep.transpose("image", "repeat", "neuron").values.astype(np.float64)
    else:
        x = np.asarray(rep, np.float64)
    if x.ndim != 3:
        raise DataError(
            f"repeats array has shape {x.shape}", field="rep", expected="(image, repeat, neuron)"
        )
    if correction not in ("pt", "none"):
        raise DataError(
            f"unknown correction '{correction}'", field="correction", expected="'pt' or 'none'"
        )
    n_img, _n_rep, n_neu = x.shape
    lab, n_class = integer_labels(labels, n_img, n_neu)
    ok = np.isfinite(x)
    if bins is None:
        v = np.where(ok, x, 0.0)
        if np.any(v < 0) or np.any(v != np.round(v)):
            raise DataError(
                "responses are not non-negative integer counts",
                field="rep",
                expected="spike counts, or pass bins=<int> to bin values",
            )
        b = v.astype(np.int64)
    else:
        if int(bins) < 1:
            raise DataError(f"bins={bins}", field="bins", expected="None or an integer >= 1")
        b = _rank_bins(x, ok, int(bins))
    n_bin = int(b.max(initial=0)) + 1
    cls = np.broadcast_to(lab[:, None, :], x.shape)
    neuron = np.broadcast_to(np.arange(n_neu), x.shape)
    idx = (neuron * n_class + cls) * n_bin + b
    joint = (
        np.bincount(idx[ok], minlength=n_neu * n_class * n_bin)
        .reshape(n_neu, n_class, n_bin)
        .astype(np.float64)
    )
    n = joint.sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = joint / n[:, None, None]
        ps = p.sum(2, keepdims=True)
        pr = p.sum(1, keepdims=True)
        terms = np.where(p > 0, p * np.log2(p / (ps * pr)), 0.0)
        plugin = terms.sum((1, 2))
        b_s = (joint > 0).sum(2)  # (neuron, class)
        present = joint.sum(2) > 0
        b_all = (joint.sum(1) > 0).sum(1)
        bias = ((np.where(present, b_s - 1, 0)).sum(1) - (b_all - 1)) / (2 * n * _LN2)
    bias = bias if correction == "pt" else np.zeros_like(plugin)
    info = plugin - bias
    if clip:
        info = np.clip(info, 0.0, np.log2(n_class))
    info = np.where(n > 0, info, np.nan)
    coords = neuron_coords(rep)
    return xr.Dataset(
        {
            "information": ("neuron", info),
            "plugin": ("neuron", plugin),
            "bias": ("neuron", bias),
            "n_trials": ("neuron", n.astype(np.int64)),
        },
        coords=coords,
        attrs={
            "units": "bit",
            "correction": correction,
            "bins": "counts" if bins is None else int(bins),
        },
    )


def _rank_bins(x, ok, bins: int) -> np.ndarray:
    """Equal-population bins per neuron from ranks over all finite trials (ties share)."""
    from scipy.stats import rankdata

    _n_img, _n_rep, n_neu = x.shape
    flat = np.where(ok, x, np.inf).reshape(-1, n_neu)
    rk = rankdata(flat, method="min", axis=0) - 1  # 0-based, inf last
    cnt = ok.reshape(-1, n_neu).sum(0)
    b = np.floor(rk * bins / np.maximum(cnt, 1)).astype(np.int64)
    return np.clip(b, 0, bins - 1).reshape(x.shape)
