"""``fit``: train one model on a dataset, with early stopping, checkpoints and resume.

``fit`` is a thin Python loop over epochs around the pure pieces in
:func:`jaxsel.train.make_train_step` (one jitted step per batch) and
:func:`jaxsel.train.plateau_update` (early stopping / learning-rate plateau), so issue-4
style vectorised training can reuse them.

Determinism: the initialisation key is ``fold_in(key(seed), 0)``; the readout-sampling key
of a step is ``fold_in(fold_in(key(seed), 1 + epoch), batch)``; the batch order of an epoch
depends only on ``(seed, epoch)``. A resumed run therefore repeats exactly what the
uninterrupted run would have done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from jaxsel._checks import check_int
from jaxsel.models import Model, ResponseModel, build_model, predict
from jaxsel.train._checkpoint import read_meta, restore_checkpoint
from jaxsel.train._config import Config
from jaxsel.train._fit_loop import (
    FitRun,
    initial_tree,
    nan_validation_error,
    nonfinite_error,
    resume_run,
    train_epochs,
)
from jaxsel.train._fit_parts import (
    HISTORY_VARS,  # noqa: F401  (its former home)
    check_fit_args,
    check_max_epochs,
    compiled_step,
    history_dataset,
    prepare_data,
    resolve_config,
    with_overrides,
)
from jaxsel.train._schedule import plateau_init
from jaxsel.train._step import make_hparams, make_optimizer


@dataclass
class FitResult:
    """A fitted model and how it got there.

    Attributes:
      config: the run config.
      params, state: the best parameters and BN/constant state (plain pytrees).
      standardizer: ``{"image_mean", "image_std", "response_scale"}`` arrays: raw images are
        z-scored with the first two; model outputs times ``response_scale`` are rates in the
        data's units.
      history: ``xarray.Dataset`` over ``epoch``: ``loss`` (mean training loss per trial and
        neuron), ``objective``, ``reg``, ``val_correlation`` (mean over neurons), ``lr``,
        ``seconds``.
      best_epoch: epoch (0-based) of the best validation correlation.
      best_score: that correlation.
      neuron_id: (neuron,) ids of the modelled neurons.
      image_shape: (channel, y, x) of the images.
      fingerprint: the training data's fingerprint.
      seed: the seed.
      stopped: why training ended: ``"plateau"``, ``"max_epochs"`` or ``"nonfinite"``.
      out_dir: run directory with the checkpoints (None if not saved).
    """

    config: Config
    params: dict
    state: dict
    standardizer: dict
    history: xr.Dataset
    best_epoch: int
    best_score: float
    neuron_id: np.ndarray
    image_shape: tuple
    fingerprint: str
    seed: int
    stopped: str
    out_dir: Path | None = None
    _fn: Callable[..., Any] | None = field(default=None, repr=False, compare=False)

    @cached_property
    def model(self) -> Model:
        return build_model(
            self.config.model, image_shape=self.image_shape, n_neurons=len(self.neuron_id)
        )

    def response_fn(self):
        """The in-silico pair ``(fn, params)``: ``fn(params, raw_images) -> rates``.

        ``raw_images`` are (batch, channel, y, x) (or (batch, y, x)) in the dataset's pixel
        units; rates (batch, neuron) are in the dataset's response units. The standardizer
        arrays travel inside ``params``; the model runs in eval mode (readout at its mean
        position, BatchNorm running statistics). ``fn`` is pure and jittable; the same
        function object is returned on every call (so jit caches it).
        """
        if self._fn is None:
            self._fn = response_function(self.model)
        return self._fn, {
            "params": self.params,
            "state": self.state,
            "standardizer": {k: jnp.asarray(v) for k, v in self.standardizer.items()},
        }

    def response_model(self, *, dataset: xr.Dataset | None = None) -> ResponseModel:
        """This model as a :class:`~jaxsel.models.ResponseModel` (pair + metadata).

        Args:
          dataset: optional training dataset: its per-neuron coords (``area``,
            ``session``, ...) are attached to the model.
        """
        from jaxsel.train._model_file import fit_response_model

        return fit_response_model(self, dataset=dataset)

    def predict(self, images, *, batch_size: int | None = None) -> np.ndarray:
        """Rates (batch, neuron) for raw images, as NumPy (see :func:`jaxsel.models.predict`)."""
        fn, params = self.response_fn()
        model = ResponseModel(
            fn, params, image_shape=tuple(self.image_shape), neuron_id=np.asarray(self.neuron_id)
        )
        return predict(model, images, batch_size=batch_size or self.config.train.eval_batch_size)


def response_function(model: Model):
    """``fn(params, raw_images) -> rates`` for a model (params: see ``FitResult.response_fn``)."""
    channels = model.image_shape[0]

    def fn(params, images):
        images = jnp.asarray(images, jnp.float32)
        if images.ndim == 3 and channels == 1:
            images = images[:, None]
        st = params["standardizer"]
        x = (images - st["image_mean"]) / st["image_std"]
        rates, _ = model.apply(params["params"], params["state"], x, train=False)
        return rates * st["response_scale"]

    # the (C, H, W) the model takes, so in-silico functions can check image_shape arguments
    fn.image_shape = tuple(int(s) for s in model.image_shape)  # type: ignore[attr-defined]
    return fn


def fit(
    config,
    dataset: xr.Dataset,
    *,
    seed: int = 0,
    out_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    max_epochs: int | None = None,
    progress: bool | None = None,
) -> FitResult:
    """Train one model on a dataset's train tier, early-stopping on the validation tier.

    Args:
      config: a :class:`~jaxsel.train.Config`, a named config (``"small"``, ...) or
        a dict (``Config.from_dict``).
      dataset: a validated dataset (``jaxsel.data.make_dataset``) with train and validation
        tiers; validated again here (non-finite responses are rejected naming the neuron and
        trial).
      seed: random seed (initialisation, readout sampling, batch order).
      out_dir: run directory; checkpoints go to ``out_dir/checkpoints/<epoch>``. None: no
        checkpoints (and no resume).
      resume: continue the newest checkpoint in ``out_dir`` (same data, config and seed;
        only ``max_epochs``/``progress``/``eval_batch_size`` may change). Without a
        checkpoint, training starts from scratch.
      overwrite: allow starting from scratch in an ``out_dir`` that holds checkpoints.
      max_epochs: override ``config.train.max_epochs``.
      progress: override ``config.train.progress``.

    Returns:
      A :class:`FitResult` holding the best parameters.

    Raises:
      DataError: invalid data (non-finite values, missing tiers or cortical coordinates), or
        a checkpoint made on a different dataset.
      ConfigError: invalid config or argument (``seed`` not an int, ``max_epochs`` < 1, ...),
        a resume with a different config or seed, or an existing checkpoint without
        ``resume``/``overwrite``.
      TrainingError: a non-finite loss; the message names the epoch, step and batch, the
        best checkpoint is kept on disk and ``err.result`` holds the best model so far;
        or a validation correlation that was NaN at every epoch (the message says why).
    """
    check_fit_args(
        "fit",
        dataset,
        max_epochs=max_epochs,
        progress=progress,
        out_dir=out_dir,
        resume=resume,
        overwrite=overwrite,
    )
    seed = check_int("fit", "seed", seed)
    cfg = with_overrides(resolve_config(config), max_epochs, progress)
    check_max_epochs("fit", cfg)
    data = prepare_data(dataset, cfg.train)
    model = build_model(cfg.model, image_shape=data.image_shape, n_neurons=len(data.neuron_id))
    key = jax.random.key(seed)
    step, predict_fn, tx = compiled_step(model, cfg.train)
    standard = data.standardizer_arrays()
    tree = initial_tree(model, cfg, data, key, tx, standard)
    rows: list[dict] = []
    start_epoch = 0
    if out_dir is not None:
        out_dir = Path(out_dir)
        tree, start_epoch, rows = resume_run(
            out_dir, tree, data, cfg, seed, resume=resume, overwrite=overwrite
        )
    run = FitRun(
        cfg=cfg,
        data=data,
        seed=seed,
        key=key,
        out_dir=out_dir,
        step=step,
        predict_fn=predict_fn,
        hparams=make_hparams(cfg, data.n_train, data.r_train),
        bs=min(cfg.train.batch_size, data.n_train),
    )
    best_params, best_state, sched, stopped, failure = train_epochs(run, tree, rows, start_epoch)
    # ``best_params`` start as the initial parameters, so a run that never completed an epoch
    # returns its initial model
    result = FitResult(
        config=cfg,
        params=jax.device_get(best_params),
        state=jax.device_get(best_state),
        standardizer=standard,
        history=history_dataset(rows),
        best_epoch=int(sched.best_epoch),
        best_score=float(sched.best_score),
        neuron_id=data.neuron_id,
        image_shape=data.image_shape,
        fingerprint=data.fingerprint,
        seed=int(seed),
        stopped=stopped,
        out_dir=out_dir,
    )
    if failure is not None:
        raise nonfinite_error(result, failure, run)
    nan_val = nan_validation_error(result, run, best_params, best_state)
    if nan_val is not None:
        raise nan_val
    return result


def load_fit(out_dir: str | Path, epoch: int | None = None) -> FitResult:
    """Rebuild the best model of a run from its checkpoint (default: the newest).

    Returns:
      A :class:`FitResult` (history, best parameters, standardizer, config).
    """
    out_dir = Path(out_dir)
    meta = read_meta(out_dir, epoch)
    cfg = Config.from_dict({**meta["config"], "name": meta.get("config_name", "custom")})
    image_shape = tuple(meta["image_shape"])
    neuron_id = np.asarray(meta["neuron_id"])
    model = build_model(cfg.model, image_shape=image_shape, n_neurons=len(neuron_id))
    src = None
    if cfg.model.grid_mean_predictor is not None and cfg.model.readout == "gaussian":
        src = np.zeros((len(neuron_id), cfg.model.grid_mean_predictor.input_dimensions), np.float32)
    params, state = model.init(jax.random.key(0), source_grid=src)
    tx = make_optimizer(cfg.train.lr)
    c, h, w = image_shape
    like = {
        "params": params,
        "state": state,
        "opt_state": tx.init(params),
        "best_params": params,
        "best_state": state,
        "schedule": plateau_init(cfg.train.lr)._asdict(),
        "standardizer": {
            "image_mean": jnp.zeros((c, h, w) if cfg.train.per_pixel else (), jnp.float32),
            "image_std": jnp.zeros((c, h, w) if cfg.train.per_pixel else (), jnp.float32),
            "response_scale": jnp.zeros((len(neuron_id),), jnp.float32),
        },
    }
    tree, meta = restore_checkpoint(out_dir, like, epoch)
    sched = tree["schedule"]
    rows = meta.get("history", [])
    stopped = meta.get("stopped") or ("plateau" if bool(sched["stopped"]) else "max_epochs")
    return FitResult(
        config=cfg,
        params=jax.device_get(tree["best_params"]),
        state=jax.device_get(tree["best_state"]),
        standardizer={k: np.asarray(v) for k, v in tree["standardizer"].items()},
        history=history_dataset(rows),
        best_epoch=int(sched["best_epoch"]),
        best_score=float(sched["best_score"]),
        neuron_id=neuron_id,
        image_shape=image_shape,
        fingerprint=meta["fingerprint"],
        seed=int(meta["seed"]),
        stopped=stopped,
        out_dir=out_dir,
    )


__all__ = ["FitResult", "fit", "load_fit", "response_function"]
