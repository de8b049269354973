"""Ensembles in silico: any model object as an ``(fn, params)`` pair, the members of an
ensemble-mean model, and the per-neuron confidence of MEIs (:func:`mei_confidence`).

An ensemble-mean model (``ManyResult.response_model("mean")``, or a saved ensemble reloaded
with :func:`jaxsel.load_model`) is an ordinary pair whose ``fn`` averages the rates of a stack
of members (parameters with a leading member axis), so every in-silico optimiser runs on it
unchanged. :func:`mei_confidence` says how far to trust each MEI: how much the members
disagree about the ensemble MEI (each member's predicted rate to it) and, with several MEI
starts, how much the starts agree with each other.
"""

from __future__ import annotations

from typing import cast

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from jaxsel._compile_cache import cached
from jaxsel._errors import DataError
from jaxsel.models import ResponseModel, predict


def model_pair(model, params=None):
    """``(fn, params)`` of ``model``: a pair given as two arguments (returned as is), a
    :class:`~jaxsel.models.ResponseModel`, a ``FitResult`` or a ``ManyResult`` (its
    ensemble-mean model)."""
    if params is not None:
        return model, params
    if isinstance(model, ResponseModel) or (isinstance(model, tuple) and len(model) == 2):
        return model[0], model[1]
    make = getattr(model, "response_model", None)
    if callable(make):
        m = cast(ResponseModel, make())
        return m.fn, m.params
    raise DataError(
        f"model of type {type(model).__name__} without params",
        field="model",
        expected="fn, params; a ResponseModel; a FitResult or a ManyResult",
    )


def member_pair(ensemble):
    """``(member_fn, stacked params)`` of an ensemble: ``member_fn(params_k, images)`` is one
    member's rates, ``params`` has a leading member axis.

    Args:
      ensemble: a ``ManyResult``, or a :class:`~jaxsel.models.ResponseModel` of kind
        ``"ensemble_mean"`` (``ManyResult.response_model("mean")`` or a loaded saved
        ensemble).

    Raises:
      DataError: anything else (a single model has no members).
    """
    if hasattr(ensemble, "response_model") and hasattr(ensemble, "n_models"):
        ensemble = ensemble.response_model("mean")
    if not isinstance(ensemble, ResponseModel) or ensemble.meta.get("kind") != "ensemble_mean":
        raise DataError(
            f"model of type {type(ensemble).__name__} is not an ensemble",
            field="ensemble",
            expected="a ManyResult or its response_model('mean') (or a loaded saved ensemble)",
        )
    return _one_member_fn(ensemble.fn), ensemble.params


def _one_member_fn(mean_fn):
    """``fn(params_k, images)``: the ensemble-mean function applied to a stack of one member
    (the mean over one model is that model); one object per ``mean_fn`` (jit caches it)."""

    def build():
        def fn(params, images):
            return mean_fn(jax.tree.map(lambda a: a[None], params), images)

        return fn

    return cached("ensemble_member_fn", mean_fn, build)


def _members_fn(member_fn):
    """``g(stacked params, images) -> (batch, member, neuron)``."""

    def build():
        members = jax.vmap(member_fn, in_axes=(0, None))
        return lambda params, images: jnp.moveaxis(members(params, images), 0, 1)

    return cached("ensemble_members_batch_first", member_fn, build)


def member_predictions(ensemble, images, *, batch_size: int = 128) -> np.ndarray:
    """Every member's rates (member, image, neuron) for raw ``images`` (see
    :func:`member_pair` for ``ensemble``); their mean over members is the ensemble mean."""
    fn, params = member_pair(ensemble)
    return np.moveaxis(predict((_members_fn(fn), params), images, batch_size=batch_size), 0, 1)


def mei_confidence(result: xr.Dataset, ensemble=None) -> xr.Dataset:
    """How far to trust each MEI: member disagreement and agreement across MEI starts.

    Args:
      result: an :func:`optimize_meis` result of the ensemble-mean model (with its ``seed``
        axis, or after :func:`best_seed`); single-image MEIs (no ``variant`` axis).
      ensemble: the ensemble the MEIs were optimised on (see :func:`member_pair`); None
        gives the across-start measures only.

    Returns:
      ``xr.Dataset`` (neuron[, member]) with, given ``ensemble``:
      ``member_activation`` (neuron, member): each member's rate of the neuron for the
      (best-start) ensemble MEI; ``member_cv``: its std over members / mean (0 = the members
      agree; large = the MEI exploits what only some members learned);
      ``member_min_fraction``: the lowest member's rate / the ensemble-mean rate. Given a
      result with at least two starts: ``seed_image_corr``: the mean pairwise Pearson
      correlation of the starts' MEI images (1 = every start found the same image);
      ``seed_activation_ratio``: the worst start's final rate / the best one's.

    Raises:
      DataError: a result with variants, or an ensemble with other neurons than the MEIs'.
    """
    if "variant" in result.dims:
        raise DataError("MEIs with variants", field="result", expected="one MEI per neuron")
    out = {}
    best = result
    if "seed" in result.dims:
        if result.sizes["seed"] >= 2:
            out.update(_seed_agreement(result))
        from jaxsel.insilico._mei import best_seed

        best = best_seed(result)
    if ensemble is not None:
        out.update(_member_agreement(best, ensemble))
    coords = {k: ("neuron", best[k].values) for k in ("neuron_id", "neuron_index") if k in best}
    return xr.Dataset(out, coords=coords)


def _seed_agreement(result: xr.Dataset) -> dict:
    """Pairwise image correlation and activation ratio across the starts of each neuron."""
    x = result["mei"].values  # (neuron, seed, C, H, W)
    n, s = x.shape[:2]
    flat = x.reshape(n, s, -1)
    flat = flat - flat.mean(-1, keepdims=True)
    flat = flat / np.maximum(np.linalg.norm(flat, axis=-1, keepdims=True), 1e-12)
    c = np.einsum("nip,njp->nij", flat, flat)
    iu = np.triu_indices(s, 1)
    corr = c[:, iu[0], iu[1]].mean(-1)
    act = result["activation"].values
    ratio = act.min(1) / np.maximum(act.max(1), 1e-12)
    return {
        "seed_image_corr": (
            "neuron",
            corr,
            {"long_name": "mean pairwise correlation of the MEI starts", "units": "1"},
        ),
        "seed_activation_ratio": (
            "neuron",
            ratio,
            {"long_name": "worst start's rate / best start's rate", "units": "1"},
        ),
    }


def _member_agreement(best: xr.Dataset, ensemble) -> dict:
    """Each member's rate of each neuron for that neuron's ensemble MEI."""
    idx = best["neuron_index"].values
    r = member_predictions(ensemble, best["mei"].values)  # (member, neuron-MEI, model neuron)
    if r.shape[-1] <= int(idx.max()):
        raise DataError(
            f"the ensemble models {r.shape[-1]} neurons, the MEIs index neuron {int(idx.max())}",
            field="ensemble",
            expected="the ensemble the MEIs were optimised on",
        )
    act = r[:, np.arange(len(idx)), idx].T  # (neuron, member)
    mean = act.mean(1)
    safe = np.maximum(np.abs(mean), 1e-12)
    return {
        "member_activation": (
            ("neuron", "member"),
            act,
            {"long_name": "each member's rate for the ensemble MEI", "units": "model rate"},
        ),
        "member_cv": (
            "neuron",
            act.std(1) / safe,
            {"long_name": "std over members / mean of the rate for the MEI", "units": "1"},
        ),
        "member_min_fraction": (
            "neuron",
            act.min(1) / safe,
            {"long_name": "lowest member's rate / ensemble-mean rate", "units": "1"},
        ),
    }


__all__ = ["mei_confidence", "member_pair", "member_predictions", "model_pair"]
