"""``ManyResult``: what :func:`jaxsel.fit_many` returns (K models on a leading
model axis), and its history/summary datasets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import jax
import numpy as np
import xarray as xr

from jaxsel.models import Model, build_model
from jaxsel.train._config import Config
from jaxsel.train._fit import FitResult, response_function
from jaxsel.train._fit_parts import HISTORY_VARS


@dataclass
class ManyResult:
    """K fitted models (leading model axis on every array).

    Attributes:
      config: the base config (per-model values in ``hparams`` override it).
      params, state: best parameters and BN state, stacked (NumPy).
      standardizer: ``image_mean``, ``image_std`` (shared) and ``response_scale`` (K, n_out).
      history: ``xr.Dataset`` (model, epoch) with the variables of ``fit``'s history (NaN
        after a model stopped) and ``improved``.
      best_epoch, best_score: (K,) per model.
      stopped: (K,) ``"plateau"``, ``"max_epochs"`` or ``"nonfinite"``.
      seeds: (K,) seeds.
      hparams: ``{field: (K,) values}`` for every per-model field given.
      targets: (K, n_out) neuron indices into the dataset; ``neuron_id`` the same as ids.
      image_shape, fingerprint, out_dir: as in :class:`~jaxsel.FitResult`.
    """

    config: Config
    params: dict
    state: dict
    standardizer: dict
    history: xr.Dataset
    best_epoch: np.ndarray
    best_score: np.ndarray
    stopped: np.ndarray
    seeds: np.ndarray
    hparams: dict
    targets: np.ndarray
    neuron_id: np.ndarray
    image_shape: tuple
    fingerprint: str
    out_dir: Path | None = None
    _fn: Callable[..., Any] | None = field(default=None, repr=False, compare=False)

    @property
    def n_models(self) -> int:
        """K, the number of models."""
        return len(self.seeds)

    @cached_property
    def model(self) -> Model:
        """The (single-model) architecture shared by the K models."""
        return build_model(
            self.config.model, image_shape=self.image_shape, n_neurons=self.targets.shape[1]
        )

    def member_config(self, k: int) -> Config:
        """The config of model ``k`` (base config with its per-model values)."""
        return self.config.replace(**{n: _py(v[k]) for n, v in self.hparams.items()})

    def member(self, k: int) -> FitResult:
        """Model ``k`` as a :class:`~jaxsel.FitResult` (its own history)."""
        take = lambda t: jax.tree.map(lambda a: np.asarray(a)[k], t)  # noqa: E731
        h = self.history.isel(model=k).drop_vars([c for c in self.history.coords if c != "epoch"])
        h = h.isel(epoch=np.flatnonzero(np.isfinite(h["val_correlation"].values)))
        return FitResult(
            config=self.member_config(k),
            params=take(self.params),
            state=take(self.state),
            standardizer={
                "image_mean": self.standardizer["image_mean"],
                "image_std": self.standardizer["image_std"],
                "response_scale": self.standardizer["response_scale"][k],
            },
            history=h,
            best_epoch=int(self.best_epoch[k]),
            best_score=float(self.best_score[k]),
            neuron_id=self.neuron_id[k],
            image_shape=self.image_shape,
            fingerprint=self.fingerprint,
            seed=int(self.seeds[k]),
            stopped=str(self.stopped[k]),
            out_dir=self.out_dir,
        )

    def response_fn(self):
        """The stacked in-silico pair ``(fn, params)``: ``fn(params, raw_images)`` ->
        rates (model, batch, n_out) in the data's units (vmapped single-model functions)."""
        if self._fn is None:
            one = response_function(self.model)
            self._fn = jax.vmap(one, in_axes=(0, None))
        return self._fn, {
            "params": self.params,
            "state": self.state,
            "standardizer": {
                "image_mean": np.broadcast_to(
                    self.standardizer["image_mean"],
                    (self.n_models,) + np.shape(self.standardizer["image_mean"]),
                ),
                "image_std": np.broadcast_to(
                    self.standardizer["image_std"],
                    (self.n_models,) + np.shape(self.standardizer["image_std"]),
                ),
                "response_scale": self.standardizer["response_scale"],
            },
        }

    def response_model(self, which: str | int = "mean", *, dataset: xr.Dataset | None = None):
        """These models as one :class:`~jaxsel.models.ResponseModel` (rates (batch, n_out)).

        Args:
          which: ``"mean"``: the ensemble mean over the models (they must model the same
            neurons); an int ``k``: model ``k`` alone.
          dataset: optional training dataset whose per-neuron coords are attached.
        """
        from jaxsel.train._model_file import many_response_model

        return many_response_model(self, which, dataset=dataset)

    def summary(self) -> xr.Dataset:
        """Per-model outcome as ``xr.Dataset`` (model): ``best_score``, ``best_epoch``,
        ``epochs``, ``stopped``; coords ``seed`` and every per-model hyperparameter (in
        ``history`` a hyperparameter named like a history variable, e.g. ``lr``, is the
        coord ``hp_lr``)."""
        epochs = np.isfinite(self.history["val_correlation"].values).sum(1)
        return xr.Dataset(
            {
                "best_score": ("model", self.best_score),
                "best_epoch": ("model", self.best_epoch),
                "epochs": ("model", epochs),
                "stopped": ("model", self.stopped.astype(str)),
            },
            coords=_model_coords(self.seeds, self.hparams, self.targets, self.neuron_id),
        )


def _py(v):
    return v.item() if isinstance(v, np.generic) else v


def _model_coords(seeds, hparams, targets, neuron_id, avoid=()) -> dict:
    coords = {"model": np.arange(len(seeds)), "seed": ("model", np.asarray(seeds))}
    for k, v in hparams.items():
        coords[f"hp_{k}" if k in avoid else k] = ("model", np.asarray(v))
    if targets.shape[1] == 1:
        coords["neuron_id"] = ("model", neuron_id[:, 0])
    return coords


def many_history(rows, seeds, hp, targets, neuron_id) -> xr.Dataset:
    """History rows of K models as ``xr.Dataset`` (model, epoch)."""
    k = len(seeds)
    epochs = np.array([r["epoch"] for r in rows], np.int64)
    data = {
        n: (("model", "epoch"), np.array([r[n] for r in rows], np.float64).T.reshape(k, -1))
        for n in HISTORY_VARS
    }
    data["improved"] = (
        ("model", "epoch"),
        np.array([r["improved"] for r in rows], bool).T.reshape(k, -1),
    )
    return xr.Dataset(
        data,
        coords={
            "epoch": epochs,
            **_model_coords(seeds, hp, targets, neuron_id, avoid=HISTORY_VARS),
        },
    )


__all__ = ["ManyResult", "many_history"]
