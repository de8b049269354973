"""The epoch loop of multi-session training (:func:`jaxsel.train.fit_sessions`).

An epoch is one LongCycler pass: ``rounds`` = the largest session's batch count; each round
takes one batch of every session (shorter sessions are cycled), sums their gradients and
makes one optimizer step. After each epoch every session's validation correlation is
computed; early stopping and the learning-rate plateau (:func:`plateau_update`) follow the
mean over sessions of the per-session mean correlation (every session weighs the same).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from jaxsel.models import MultiModel
from jaxsel.train._config import Config
from jaxsel.train._epochs import Epochs, run_epochs
from jaxsel.train._losses import masked_correlation
from jaxsel.train._multi_data import SessionData, long_cycler


@dataclass
class MultiRun:
    """What the epochs of one multi-session run share."""

    cfg: Config
    model: MultiModel
    data: dict  # {sid: SessionData}
    seed: int
    key: jax.Array
    out_dir: Path | None
    grads: Callable[..., Any]
    update: Callable[..., Any]
    predict: Callable[..., Any]
    hparams: dict  # {sid: hparams}
    frozen_core: bool
    meta_fn: Callable[..., dict]

    @property
    def bs(self) -> int:
        """Trials per batch: ``train.batch_size``, at most the largest session's train tier
        (as ``fit`` does for one dataset)."""
        return min(self.cfg.train.batch_size, max(sd.n_train for sd in self.data.values()))


def split_trainable(params: dict, frozen_core: bool) -> tuple[dict, dict]:
    """``(trainable, fixed)`` parts of the full parameter tree."""
    if frozen_core:
        return {"sessions": params["sessions"]}, {
            "core": params["core"],
            "shared": params.get("shared", {}),
        }
    return dict(params), {}


def join(trainable: dict, fixed: dict) -> dict:
    out = {**fixed, **trainable}
    out.setdefault("shared", {})
    return out


def train_epoch(run: MultiRun, params: dict, state: dict, opt_state, epoch: int):
    """One LongCycler epoch. Returns ``(params, state, opt_state, per-session metrics,
    failure)``; ``failure`` is ``(epoch, round, session)`` of a non-finite round, else None."""
    sids = list(run.data)
    epoch_key = jax.random.fold_in(run.key, 1 + epoch)
    sizes = [run.data[s].n_train for s in sids]
    trainable, fixed = split_trainable(params, run.frozen_core)
    metrics: dict = {s: [] for s in sids}
    failure = None
    for r, batches in enumerate(long_cycler(sizes, run.bs, run.seed, epoch)):
        total = None
        finite = jnp.bool_(True)
        for i, (sid, (take, trial)) in enumerate(zip(sids, batches, strict=True)):
            sd: SessionData = run.data[sid]
            full = join(trainable, fixed)
            view, vstate = MultiModel.view(full, state, sid)
            t_view = {"session": view["session"]}
            f_view = {}
            if run.frozen_core:
                f_view = {"core": view["core"], "shared": view["shared"]}
            else:
                t_view.update(core=view["core"], shared=view["shared"])
            g, new_vstate, m = run.grads(
                t_view,
                f_view,
                vstate,
                sd.data.x_train[take],
                sd.data.r_train[take],
                None if sd.b_train is None else sd.b_train[take],
                None if sd.p_train is None else sd.p_train[take],
                trial >= 0,
                jax.random.fold_in(epoch_key, r * len(sids) + i),
                run.hparams[sid],
            )
            state = {**state, "batch_stats": new_vstate["batch_stats"]}
            finite = finite & m["finite"]
            metrics[sid].append(m)
            total = _accumulate(total, g, sid, trainable)
        trainable, opt_state = run.update(trainable, opt_state, total, finite)
        if not bool(finite):
            bad = next(s for s in sids if not bool(metrics[s][-1]["finite"]))
            failure = (epoch, r, bad)
            break
    return join(trainable, fixed), state, opt_state, metrics, failure


def _accumulate(total, g: dict, sid: str, trainable: dict) -> dict:
    """Add one session's view gradients into the full trainable-tree gradient."""
    if total is None:
        total = jax.tree.map(jnp.zeros_like, trainable)
    total = dict(total)
    total["sessions"] = {
        **total["sessions"],
        sid: jax.tree.map(jnp.add, total["sessions"][sid], g["session"]),
    }
    for part in ("core", "shared"):
        if part in g and part in total:
            total[part] = jax.tree.map(jnp.add, total[part], g[part])
    return total


def session_scores(run: MultiRun, params, state, tier: str = "validation") -> dict:
    """``{sid: (neuron,) correlation}`` of every session's predictions on the validation tier."""
    out = {}
    for sid, sd in run.data.items():
        view, vstate = MultiModel.view(params, state, sid)
        x, r = sd.data.x_val, sd.data.r_val
        pred = predict_tier(
            run.predict, view, vstate, x, sd.b_val, sd.p_val, run.cfg.train.eval_batch_size
        )
        out[sid] = np.asarray(masked_correlation(pred, r))
    return out


def predict_tier(predict, view, vstate, x, b, p, batch_size: int) -> np.ndarray:
    """Predictions (n, neuron) of one session in fixed-size batches (last one padded)."""
    n = x.shape[0]
    bs = max(1, min(batch_size, n))
    preds = []
    for start in range(0, n, bs):
        idx = np.arange(start, min(start + bs, n))
        take = np.concatenate([idx, np.full(bs - len(idx), idx[0])])
        out = predict(
            view, vstate, x[take], None if b is None else b[take], None if p is None else p[take]
        )
        preds.append(np.asarray(out)[: len(idx)])
    return np.concatenate(preds)


def epoch_row(run: MultiRun, epoch, metrics, scores, sched, t0, improved) -> dict:
    """The history row of an epoch: per-session loss and validation correlation lists (in
    session order) and the run's scalars."""
    sids = list(run.data)
    loss, objective = [], []
    for sid in sids:
        ms = jax.device_get(metrics[sid])
        n_real = sum(float(m["n"]) for m in ms)
        n_neurons = run.data[sid].data.r_train.shape[1]
        loss.append(sum(float(m["data_loss"]) for m in ms) / max(n_real * n_neurons, 1))
        objective.append(float(np.mean([float(m["loss"]) for m in ms])))
    val = [float(np.mean(scores[s])) for s in sids]
    return {
        "epoch": epoch,
        "loss": loss,
        "objective": objective,
        "val_correlation": val,
        "val_correlation_mean": float(np.mean(val)),
        "lr": float(sched.lr),
        "seconds": time.perf_counter() - t0,
        "improved": bool(improved),
    }


def train_epochs(run: MultiRun, tree: dict, rows: list, start_epoch: int):
    """The epoch loop (:func:`run_epochs`): the schedule follows the mean over sessions of
    each session's mean validation correlation. Returns ``(best_params, best_state, sched,
    stopped, failure)``."""

    def score(params, state):
        scores = session_scores(run, params, state)
        return float(np.mean([np.mean(v) for v in scores.values()])), scores

    def row(epoch, metrics, _score, scores, sched, t0, improved):
        return epoch_row(run, epoch, metrics, scores, sched, t0, improved)

    loop = Epochs(
        train=run.cfg.train,
        name=run.cfg.name,
        out_dir=run.out_dir,
        epoch=lambda params, state, opt, epoch: train_epoch(run, params, state, opt, epoch),
        score=score,
        row=row,
        meta=run.meta_fn,
    )
    tree, sched, stopped, failure = run_epochs(loop, tree, rows, start_epoch)
    return tree["best_params"], tree["best_state"], sched, stopped, failure


def history_dataset(rows: list, sids: list):
    """A multi-session run's history rows as ``xr.Dataset`` over ``epoch`` and ``session``."""
    epochs = np.array([r["epoch"] for r in rows], dtype=np.int64)
    per = {
        k: (
            ("epoch", "session"),
            np.array([r[k] for r in rows], np.float64).reshape(len(rows), len(sids)),
        )
        for k in ("loss", "objective", "val_correlation")
    }
    scal = {
        k: ("epoch", np.array([r[k] for r in rows], np.float64))
        for k in ("val_correlation_mean", "lr", "seconds")
    }
    return xr.Dataset(
        {**per, **scal, "improved": ("epoch", np.array([bool(r["improved"]) for r in rows], bool))},
        coords={"epoch": epochs, "session": list(sids)},
    )


__all__ = [
    "MultiRun",
    "epoch_row",
    "history_dataset",
    "join",
    "predict_tier",
    "session_scores",
    "split_trainable",
    "train_epoch",
    "train_epochs",
]
