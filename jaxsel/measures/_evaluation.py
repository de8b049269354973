"""Per-neuron evaluation of a fitted model on a dataset tier, as a labelled ``xarray.Dataset``.

Measures (per neuron, on the ``test`` tier by default):

* ``test_correlation``: Pearson correlation of predictions with single-trial responses;
* ``average_correlation``: correlation of predictions with the mean response over repeats of
  each image;
* ``poisson_loglik``: mean Poisson log-likelihood per trial, ``r log f - f - log r!`` (nats);
* ``zig_loglik`` (with ``loss="zig"``, the default for a model trained with it): mean
  zero-inflated gamma log-density per trial (nats; :func:`jaxsel.train.zig_loglik`, mean
  ``f``, per-neuron gate, shape and zero threshold from
  :func:`jaxsel.train.fit_zig_parameters` of the dataset's train-tier responses);
* ``loglik``: the held-out log-likelihood under the loss the model was trained with
  (``poisson_loglik`` or ``zig_loglik``; attrs ``loss``);
* ``oracle``: the jackknife oracle correlation (``jaxsel.measures.oracle_correlation``);
* ``fraction_oracle``: ``test_correlation / oracle`` per neuron; the population value (the
  slope of a regression through the origin of test correlation on oracle, Lurz et al. 2021)
  is in ``attrs["fraction_oracle"]``;
* ``fev`` and ``feve`` (FEVE is NaN where FEV < ``min_fev``, 0.15 by default);
* with a ground truth (the digital twin): ``truth_correlation``, the correlation of the
  predictions with the true noise-free rates on the tier's images, and the twin's ``kind``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from jaxsel._checks import check_int, check_number
from jaxsel._errors import ConfigError, DataError
from jaxsel.data import repeats, subset, unique_images
from jaxsel.models import ResponseModel, predict
from jaxsel.train import fit_zig_parameters, zig_loglik, zig_parameters

LOGLIK_LOSSES = ("poisson", "zig")
"""Losses whose held-out log-likelihood :func:`evaluate` reports as ``loglik``."""


def pearson(a, b) -> np.ndarray:
    """Column-wise Pearson correlation of two (sample, neuron) arrays (NaN if constant)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a = a - a.mean(0)
    b = b - b.mean(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(0) / np.where(den > 0, den, 1.0), np.nan)


def _as_pair(model):
    if isinstance(model, ResponseModel):
        return model
    if hasattr(model, "response_fn"):
        return model.response_fn()
    if isinstance(model, tuple) and len(model) == 2 and callable(model[0]):
        return model
    raise DataError(
        f"evaluate: model is a {type(model).__name__}",
        field="model",
        expected="a FitResult, a ResponseModel (jaxsel.load_model) or an in-silico pair "
        "(fn, params); call evaluate(model, ds)",
    )


def _truth_rates(truth, images: np.ndarray, batch_size: int) -> np.ndarray:
    if hasattr(truth, "rates") and hasattr(truth, "params"):
        return np.asarray(truth.rates(images))
    return predict(_as_pair(truth), images, batch_size=batch_size)


def evaluate(
    model,
    ds: xr.Dataset,
    *,
    tier: str = "test",
    truth=None,
    batch_size: int = 256,
    min_fev: float = 0.15,
    eps: float = 1e-8,
    loss: str | None = None,
) -> xr.Dataset:
    """Evaluate a model per neuron.

    Args:
      model: a :class:`~jaxsel.train.FitResult`, a :class:`~jaxsel.models.ResponseModel`
        (e.g. from ``load_model``) or an in-silico pair ``(fn, params)``
        (``fn(params, raw_images) -> rates``, rates in the dataset's response units).
      ds: the dataset (its neurons must be the model's, in the same order).
      tier: the tier to evaluate (``"test"``: repeated images).
      truth: optional ground truth: a :class:`~jaxsel.data.Twin` or a pair
        ``(fn, params)`` with the true noise-free rates.
      batch_size: images per prediction call.
      min_fev: FEVE is reported only for neurons with FEV >= ``min_fev``.
      eps: added to rates inside the log-likelihood.
      loss: the observation model of ``loglik``: ``"poisson"`` or ``"zig"``; None: the
        loss the model was trained with where it is one of these, else ``"poisson"``.

    Returns:
      ``xr.Dataset`` over ``neuron`` (coords ``neuron_id`` and the dataset's neuron coords,
      ``kind`` with a twin) with the measures listed in the module docstring; attrs
      ``fraction_oracle``, ``tier``, ``n_images``, ``n_trials``, ``min_fev``, ``loss``.

    Raises:
      DataError: the tier is empty or the model's output does not match the neurons.
    """
    _check_args(ds, tier, batch_size, min_fev, eps)
    loss = _loglik_loss(model, loss)
    pair = _as_pair(model)
    sel = subset(ds, tiers=tier)
    if sel.sizes["trial"] == 0:
        raise DataError(f"no trials in tier '{tier}'", field="tier")
    imgs = unique_images(ds, tier)
    ids = imgs["image_id"].values
    n_neuron = sel.sizes["neuron"]
    pred_img = _predict_images(pair, imgs.values, ids, n_neuron, tier, batch_size)
    trial_img = np.searchsorted(ids, sel["image_id"].values)
    pred_trial = pred_img[trial_img]
    resp = sel["responses"].values.astype(np.float64)

    out = {
        "test_correlation": pearson(pred_trial, resp),
        "poisson_loglik": np.mean(
            resp * np.log(pred_trial + eps) - pred_trial - _log_factorial(resp), axis=0
        ),
    }
    if loss == "zig":
        out["zig_loglik"] = _zig_loglik(ds, tier, pred_trial, resp, eps)
    out["loglik"] = out[f"{loss}_loglik"]
    rep = repeats(ds, tier)
    mean_resp = np.nanmean(rep.values, axis=1)  # (image, neuron)
    out["average_correlation"] = pearson(pred_img, mean_resp)
    oracle, fev, feve = _reliability_measures(rep, pred_img, min_fev, n_neuron)
    out["oracle"] = oracle
    with np.errstate(invalid="ignore", divide="ignore"):
        out["fraction_oracle"] = out["test_correlation"] / oracle
    out["fev"] = fev
    out["feve"] = feve
    coords = {k: ("neuron", v.values) for k, v in sel.coords.items() if v.dims == ("neuron",)}
    if truth is not None:
        true_rates = _truth_rates(truth, imgs.values, batch_size)
        out["truth_correlation"] = pearson(pred_img, true_rates)
        if hasattr(truth, "kinds"):
            coords["kind"] = ("neuron", np.asarray(truth.kinds))
    slope = _oracle_slope(oracle, out["test_correlation"])
    return xr.Dataset(
        {k: ("neuron", np.asarray(v, np.float64)) for k, v in out.items()},
        coords=coords,
        attrs={
            "fraction_oracle": slope,
            "tier": tier,
            "n_images": len(ids),
            "n_trials": int(sel.sizes["trial"]),
            "min_fev": float(min_fev),
            "loss": loss,
        },
    )


def _loglik_loss(model, loss: str | None) -> str:
    """The observation model of ``loglik``: ``loss`` or the model's training loss."""
    if loss is None:
        cfg = getattr(model, "config", None)
        trained = getattr(getattr(cfg, "train", None), "loss", None)
        if trained is None and isinstance(getattr(model, "meta", None), dict):
            trained = model.meta.get("config", {}).get("train", {}).get("loss")
        return trained if trained in LOGLIK_LOSSES else "poisson"
    if loss not in LOGLIK_LOSSES:
        raise ConfigError(
            f"evaluate: loss = {loss!r}: expected one of {list(LOGLIK_LOSSES)} (or None: the "
            "model's training loss)"
        )
    return loss


def _zig_loglik(ds: xr.Dataset, tier: str, pred, resp, eps: float) -> np.ndarray:
    """Mean ZIG log-density per trial and neuron; parameters from the train tier (the
    evaluated tier where the dataset has no train trials)."""
    train = ds["responses"].values[ds["tier"].values == "train"]
    par = fit_zig_parameters(train if len(train) else resp)
    theta, q = zig_parameters(pred, par["zig_gate"], par["zig_shape"], par["zig_loc"], eps)
    ll = zig_loglik(resp, theta, par["zig_shape"], par["zig_loc"], q, eps)
    return np.mean(np.asarray(ll, np.float64), axis=0)


def _check_args(ds, tier, batch_size, min_fev, eps) -> None:
    """The argument checks of :func:`evaluate` (before any prediction)."""
    if not isinstance(ds, xr.Dataset):
        raise DataError(
            f"evaluate: ds is a {type(ds).__name__}",
            field="ds",
            expected="the dataset the model was fitted on (an xarray.Dataset with a "
            f"'{tier}' tier); call evaluate(model, ds)",
        )
    if not isinstance(tier, str):
        raise ConfigError(f"evaluate: tier = {tier!r}: expected a tier name such as 'test'")
    check_int("evaluate", "batch_size", batch_size, minimum=1)
    check_number("evaluate", "min_fev", min_fev)
    check_number("evaluate", "eps", eps, nonnegative=True)


def _predict_images(pair, images: np.ndarray, ids, n_neuron: int, tier: str, batch_size: int):
    """Predicted rates (image, neuron) on the tier's unique images, checked for shape and
    finiteness."""
    pred_img = predict(pair, images, batch_size=batch_size)  # (image, neuron)
    if pred_img.ndim != 2 or pred_img.shape[1] != n_neuron:
        raise DataError(
            f"the model predicts {pred_img.shape[-1]} neurons for a dataset with {n_neuron}",
            field="neuron",
            expected="a model fitted on these neurons (same order)",
        )
    bad = ~np.isfinite(pred_img)
    if bad.any():
        i, n = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(
            f"evaluate: the model predicts {int(bad.sum())} non-finite rates on the "
            f"'{tier}' images, the first for image_id {ids[i]}, neuron {n}",
            field="model",
            expected="finite predictions (a model whose training diverged has NaN "
            "parameters: use its best checkpoint)",
        )
    return pred_img


def _reliability_measures(rep, pred_img: np.ndarray, min_fev: float, n_neuron: int):
    """``(oracle, fev, feve)`` per neuron from the repeats (NaN without repeats)."""
    from jaxsel.measures import _reliability as rel

    has_repeats = bool((rep["n_repeats"].values >= 2).any())
    if has_repeats:
        oracle = rel.oracle_correlation(rep).values
        fev = rel.fev(rep).values
        feve = rel.feve(rep, pred_img, min_fev=min_fev).values
    else:
        oracle = fev = feve = np.full(n_neuron, np.nan)
    return oracle, fev, feve


def _oracle_slope(oracle: np.ndarray, test_correlation: np.ndarray) -> float:
    """The population fraction of oracle: the slope of a regression through the origin of
    test correlation on oracle (Lurz et al. 2021), NaN without finite pairs."""
    ok = np.isfinite(oracle) & np.isfinite(test_correlation)
    return (
        float(np.sum(oracle[ok] * test_correlation[ok]) / np.sum(oracle[ok] ** 2))
        if ok.any() and np.sum(oracle[ok] ** 2) > 0
        else float("nan")
    )


def _log_factorial(r):
    from scipy.special import gammaln  # scipy ships with jax

    return gammaln(np.asarray(r, np.float64) + 1.0)


def summarize(ev: xr.Dataset, groups: str | None = "kind") -> dict:
    """Medians of every measure (over finite values), overall and per group.

    Args:
      ev: the result of :func:`evaluate`.
      groups: a neuron coord to group by (e.g. ``"kind"`` on the twin); ignored if absent.

    Returns:
      ``{"all": {measure: median}, "<group>": {...}, ...}`` plus ``n`` counts.
    """

    def med(sub):
        res: dict[str, float] = {"n": int(sub.sizes["neuron"])}
        for k in sub.data_vars:
            v = sub[k].values
            v = v[np.isfinite(v)]
            res[str(k)] = float(np.median(v)) if v.size else float("nan")
        return res

    out = {"all": med(ev)}
    if groups and groups in ev.coords:
        for g in np.unique(ev[groups].values):
            out[str(g)] = med(ev.isel(neuron=np.flatnonzero(ev[groups].values == g)))
    return out


__all__ = ["evaluate", "pearson", "summarize"]
