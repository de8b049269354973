"""The epoch loop of :func:`jaxsel.fit` as named pieces: the initial state, resume,
one epoch of jitted steps, its history row, the loop with early stopping and checkpoints, and
the error of a non-finite step."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsel._errors import DataError, TrainingError
from jaxsel.data import iterate, n_batches
from jaxsel.models import Model
from jaxsel.train._checkpoint import checkpoint_dir
from jaxsel.train._config import Config
from jaxsel.train._epochs import Epochs, run_epochs
from jaxsel.train._fit_parts import (
    TrainData,
    check_resumable,
    initial_positions,
    resume_tree,
    source_grid,
)
from jaxsel.train._losses import masked_correlation
from jaxsel.train._schedule import PlateauState, plateau_init

_log = logging.getLogger("jaxsel.train._fit")


def initial_tree(model: Model, cfg: Config, data: TrainData, key, tx, standard) -> dict:
    """The checkpointed arrays before the first epoch (model init with ``fold_in(key, 0)``)."""
    params, state = model.init(
        jax.random.fold_in(key, 0),
        mean_response=data.r_train.mean(0),
        source_grid=source_grid(data.ds, cfg),
        positions=initial_positions(cfg.model, data.x_train, data.r_train),
    )
    return {
        "params": params,
        "state": state,
        "opt_state": tx.init(params),
        "best_params": params,
        "best_state": state,
        "schedule": plateau_init(cfg.train.lr)._asdict(),
        "standardizer": {k: jnp.asarray(v) for k, v in standard.items()},
    }


def resume_run(
    out_dir: Path, tree: dict, data: TrainData, cfg: Config, seed, *, resume: bool, overwrite: bool
):
    """``(tree, start_epoch, history rows)``: restored from ``out_dir``'s newest checkpoint
    when resuming (same data, config and seed), else ``tree`` unchanged from epoch 0."""
    fp = data.fingerprint

    def check(meta: dict) -> None:
        if meta.get("fingerprint") != fp:
            raise DataError(
                f"refusing to resume: the checkpoint in {checkpoint_dir(out_dir)} was "
                f"trained on data with fingerprint {meta.get('fingerprint')} "
                f"({meta.get('dataset_name')}), this dataset has {fp} "
                f"({data.ds.attrs.get('name')}); use a new out_dir or overwrite=True",
                field="dataset",
            )
        check_resumable(meta, cfg, seed)

    tree, start_epoch, rows = resume_tree(out_dir, tree, check, resume=resume, overwrite=overwrite)
    if start_epoch:
        _log.info("resuming %s after epoch %d", out_dir, start_epoch)
    return tree, start_epoch, rows


@dataclass
class FitRun:
    """What the epochs of one ``fit`` share (fixed for the run)."""

    cfg: Config
    data: TrainData
    seed: int
    key: jax.Array
    out_dir: Path | None
    step: Callable[..., Any]
    predict_fn: Callable[..., Any]
    hparams: dict
    bs: int

    @property
    def steps_per_epoch(self) -> int:
        return n_batches(self.data.n_train, self.bs)

    def meta(self, epoch: int, rows: list, sched: PlateauState, stopped: str | None) -> dict:
        """The JSON metadata of the checkpoint after ``epoch`` epochs."""
        data = self.data
        return {
            "epoch": epoch,
            "config": self.cfg.to_dict(),
            "config_name": self.cfg.name,
            "neuron_id": data.neuron_id.tolist(),
            "fingerprint": data.fingerprint,
            "seed": int(self.seed),
            "dataset_name": str(data.ds.attrs.get("name", "")),
            "image_shape": list(data.image_shape),
            "history": rows,
            "best_epoch": int(sched.best_epoch),
            "best_score": float(sched.best_score),
            "stopped": stopped,
        }


def train_epochs(run: FitRun, tree: dict, rows: list, start_epoch: int):
    """The epoch loop from ``start_epoch`` (:func:`run_epochs`). Appends to ``rows``;
    returns ``(best_params, best_state, sched, stopped, failure)``."""
    data, t = run.data, run.cfg.train

    def score(params, state):
        return val_score(
            run.predict_fn, params, state, data.x_val, data.r_val, t.eval_batch_size
        ), None

    def row(epoch, metrics, score, _extra, sched, t0, improved):
        return epoch_row(epoch, metrics, data.r_train.shape[1], score, sched.lr, t0, improved)

    loop = Epochs(
        train=t,
        name=run.cfg.name,
        out_dir=run.out_dir,
        epoch=lambda params, state, opt, epoch: train_epoch(run, params, state, opt, epoch),
        score=score,
        row=row,
        meta=run.meta,
    )
    tree, sched, stopped, failure = run_epochs(loop, tree, rows, start_epoch)
    return tree["best_params"], tree["best_state"], sched, stopped, failure


def train_epoch(run: FitRun, params, state, opt_state, epoch: int):
    """One epoch of steps. Returns ``(params, state, opt_state, metrics, failure)``;
    ``failure`` is ``(epoch, batch, global step, trials, metrics)`` of the first non-finite
    step (the epoch stops there), else None."""
    epoch_key = jax.random.fold_in(run.key, 1 + epoch)
    metrics, pending, failure = [], None, None
    for b, batch in enumerate(
        iterate(
            run.data.x_train, run.data.r_train, run.bs, shuffle=True, seed=run.seed, epoch=epoch
        )
    ):
        params, state, opt_state, m = run.step(
            params,
            state,
            opt_state,
            batch.images,
            batch.responses,
            batch.mask,
            jax.random.fold_in(epoch_key, b),
            run.hparams,
        )
        if pending is not None and not bool(pending[1]["finite"]):
            failure = pending
            break
        pending = (b, m, batch.trial)
        metrics.append(m)
    if failure is None and pending is not None and not bool(pending[1]["finite"]):
        failure = pending
    if failure is not None:
        fb, fm, ftrial = failure
        failure = (epoch, fb, epoch * run.steps_per_epoch + fb, ftrial[ftrial >= 0], fm)
    return params, state, opt_state, metrics, failure


def epoch_row(epoch: int, metrics: list, n_neurons: int, score, lr, t0: float, improved) -> dict:
    """The history row of an epoch from its step metrics."""
    ms = jax.device_get(metrics)
    n_real = sum(float(m["n"]) for m in ms)
    return {
        "epoch": epoch,
        "loss": sum(float(m["data_loss"]) for m in ms) / max(n_real * n_neurons, 1),
        "objective": float(np.mean([float(m["loss"]) for m in ms])),
        "reg": float(ms[-1]["reg"]),
        "val_correlation": float(score),
        "lr": float(lr),
        "seconds": time.perf_counter() - t0,
        "improved": bool(improved),
    }


def nonfinite_error(result, failure, run: FitRun) -> TrainingError:
    """The TrainingError of a non-finite step, carrying the best model so far."""
    epoch, fb, gstep, trials, fm = failure
    kept = (
        f"the best model (epoch {result.best_epoch}, validation correlation "
        f"{result.best_score:.4f}) is kept"
        if result.best_epoch >= 0
        else "no epoch improved on the initial model, which is returned"
    )
    where = f" in {checkpoint_dir(run.out_dir)}" if run.out_dir is not None else ""
    err = TrainingError(
        f"non-finite training objective ({float(fm['loss'])}) at epoch {epoch}, step "
        f"{gstep} (batch {fb} of {run.steps_per_epoch} in the epoch, train-tier trials "
        f"{trials[:8].tolist()}{' ...' if len(trials) > 8 else ''}); training stopped "
        f"and {kept}{where}. Lower train.lr or check the data of these trials."
    )
    err.result, err.epoch, err.step, err.batch = result, epoch, gstep, fb
    return err


def nan_validation_error(result, run: FitRun, params, state) -> TrainingError | None:
    """A TrainingError when no neuron's validation correlation was defined at any epoch
    (every score NaN or ~0 because each neuron's validation responses or predictions are
    constant, not finite or too large for float32): no epoch could be judged, so the "best"
    model would be an arbitrary one. None otherwise (an ordinary, maybe poor, fit)."""
    scores = np.asarray(result.history["val_correlation"].values, np.float64)
    if scores.size == 0 or np.any(np.isfinite(scores) & (np.abs(scores) > 1e-4)):
        return None
    t = run.cfg.train
    bs = min(t.eval_batch_size, run.data.x_val.shape[0])
    pred32 = np.concatenate(
        [
            np.asarray(run.predict_fn(params, state, b.images))[b.mask]
            for b in iterate(run.data.x_val, run.data.r_val, bs)
        ]
    )
    corr = np.asarray(masked_correlation(pred32, run.data.r_val))
    pred = pred32.astype(np.float64)
    resp = np.asarray(run.data.r_val, np.float64)
    bad = ~np.isfinite(pred)

    def flat(a):
        with np.errstate(invalid="ignore", over="ignore"):
            return ~(np.nanstd(a, axis=0) > 1e-6 * (1 + np.nanmean(np.abs(a), axis=0)))

    flat_resp = flat(resp)
    flat_pred = flat(np.where(bad, np.nan, pred))
    undefined = bad.any(0) | flat_resp | flat_pred | ~np.isfinite(corr) | (corr == 0)
    if not undefined.all():
        return None
    if bad.any():
        trial, neuron = (int(i) for i in np.argwhere(bad)[0])
        why = (
            f"the model's predictions on the validation tier are not finite ({int(bad.sum())} "
            f"NaN/inf values, the first at validation trial {trial}, neuron {neuron}) although "
            "the training loss is finite: check the images of the validation tier (far "
            "outside the training images' range?) or lower train.lr"
        )
    elif flat_resp.all():
        why = (
            "every neuron's validation responses are constant: put trials with varying "
            "responses in the validation tier (jaxsel.data.make_dataset tier=)"
        )
    elif (flat_resp | flat_pred).all():
        why = (
            "the model's predictions on the validation tier are constant for every neuron "
            "(a dead network): lower train.lr, or check the images (constant images?)"
        )
    else:
        why = (
            f"the model's predictions on the validation tier are too large to correlate in "
            f"float32 (up to {np.abs(pred).max():.3g}): check the images of the validation "
            "tier (far outside the training images' range?)"
        )
    err = TrainingError(
        f"fit: no validation correlation could be computed at any of the {scores.size} "
        f"epochs, so no epoch could be judged and the returned model would be arbitrary; "
        f"{why}."
    )
    err.result, err.epoch, err.step, err.batch = result, int(scores.size) - 1, -1, -1
    return err


def val_score(predict_fn, params, state, x_val, r_val, batch_size: int) -> float:
    preds = []
    bs = min(batch_size, x_val.shape[0])
    for batch in iterate(x_val, r_val, bs):
        preds.append(np.asarray(predict_fn(params, state, batch.images))[batch.mask])
    pred = np.concatenate(preds)
    return float(jnp.mean(masked_correlation(pred, r_val)))


__all__ = [
    "FitRun",
    "epoch_row",
    "initial_tree",
    "nan_validation_error",
    "nonfinite_error",
    "resume_run",
    "train_epoch",
    "train_epochs",
    "val_score",
]
