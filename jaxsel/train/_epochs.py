"""The epoch loop shared by :func:`jaxsel.fit`, :func:`jaxsel.fit_sessions` and
:func:`jaxsel.train.fit_video`: train an epoch, score it on the validation tier, follow the
plateau schedule (early stopping, learning-rate decay, best-parameter restore), append the
history row, checkpoint, report progress, and say how far a Ctrl-C got.

What differs between the three is passed in as functions (:class:`Epochs`): how one epoch of
steps runs, how the validation tier is scored, what the history row and the checkpoint's
metadata hold.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from jaxsel.train._checkpoint import all_epochs, save_checkpoint
from jaxsel.train._config import TrainConfig
from jaxsel.train._fit_parts import progress_bar
from jaxsel.train._schedule import PlateauState, plateau_update
from jaxsel.train._step import set_learning_rate


@dataclass
class Epochs:
    """One run's epoch protocol.

    Attributes:
      train: the run's training settings (epochs, schedule, progress).
      name: the config name shown on the progress bar.
      out_dir: where each epoch is checkpointed (None: no checkpoints).
      epoch: ``(params, state, opt_state, epoch) -> (params, state, opt_state, metrics,
        failure)``; ``failure`` is None or what the caller's error needs about the first
        non-finite step (the loop stops there).
      score: ``(params, state) -> (score, extra)``; ``score`` is the float the schedule
        follows, ``extra`` goes to ``row``.
      row: ``(epoch, metrics, score, extra, sched, t0, improved) -> dict``, the history row.
      meta: ``(epoch, rows, sched, stopped) -> dict``, the checkpoint's JSON metadata.
    """

    train: TrainConfig
    name: str
    out_dir: Path | None
    epoch: Callable[..., Any]
    score: Callable[..., Any]
    row: Callable[..., dict]
    meta: Callable[..., dict]


def _copy(tree):
    return jax.tree.map(jnp.copy, tree)  # no aliasing with donated buffers


def run_epochs(loop: Epochs, tree: dict, rows: list, start_epoch: int):
    """The epoch loop from ``start_epoch``; appends to ``rows``.

    ``tree`` holds ``params``, ``state``, ``opt_state``, ``best_params``, ``best_state`` and
    ``schedule`` (a :class:`PlateauState` as a dict); any other entries (a standardizer) are
    checkpointed unchanged.

    Returns:
      ``(tree, sched, stopped, failure)``: the last tree (its ``best_*`` entries the best
      epoch's), the schedule, why training stopped (``"plateau"``, ``"max_epochs"`` or
      ``"nonfinite"``) and the failure of a non-finite epoch (else None).
    """
    t = loop.train
    params, state, opt = _copy(tree["params"]), _copy(tree["state"]), _copy(tree["opt_state"])
    best_p, best_s = tree["best_params"], tree["best_state"]
    sched = PlateauState(**{k: jnp.asarray(v) for k, v in tree["schedule"].items()})
    bar = progress_bar(t.progress, t.max_epochs, start_epoch, loop.name)
    stopped, failure = None, None
    done = start_epoch  # epochs completed (and checkpointed, with an out_dir)
    try:
        for epoch in range(start_epoch, t.max_epochs):
            if bool(sched.stopped):
                break
            t0 = time.perf_counter()
            params, state, opt, metrics, failure = loop.epoch(params, state, opt, epoch)
            if failure is not None:
                break
            score, extra = loop.score(params, state)
            sched, event = plateau_update(
                sched,
                score,
                epoch,
                patience=t.patience,
                factor=t.lr_decay_factor,
                min_lr=t.min_lr,
                decay_steps=t.lr_decay_steps,
                tolerance=t.tolerance,
            )
            if bool(event.improved):
                best_p, best_s = _copy(params), _copy(state)
            if bool(event.restore):
                params, state = _copy(best_p), _copy(best_s)
            opt = set_learning_rate(opt, sched.lr)
            rows.append(loop.row(epoch, metrics, score, extra, sched, t0, event.improved))
            if bool(sched.stopped):
                stopped = "plateau"
            tree = {
                **tree,
                "params": params,
                "state": state,
                "opt_state": opt,
                "best_params": best_p,
                "best_state": best_s,
                "schedule": sched._asdict(),
            }
            if loop.out_dir is not None:
                info = loop.meta(epoch + 1, rows, sched, stopped)
                save_checkpoint(loop.out_dir, epoch + 1, tree, info)
            done = epoch + 1
            bar.update(1)
            bar.set_postfix(**_postfix(rows[-1], score, sched))
    except KeyboardInterrupt as err:
        # one line for the command line: how far the run got (a rerun resumes from there)
        if not hasattr(err, "jaxsel_where"):
            if loop.out_dir is not None:  # a Ctrl-C held during a save arrives after it
                done = max(all_epochs(loop.out_dir), default=done)
            err.jaxsel_where = f"after epoch {done}"  # type: ignore[attr-defined]
        raise
    finally:
        bar.close()
    tree = {**tree, "best_params": best_p, "best_state": best_s, "schedule": sched._asdict()}
    if failure is not None:
        return tree, sched, "nonfinite", failure
    return tree, sched, stopped or ("plateau" if bool(sched.stopped) else "max_epochs"), None


def _postfix(row: dict, score: float, sched) -> dict:
    out = {"val_corr": f"{score:.4f}", "lr": f"{float(sched.lr):.2g}"}
    if isinstance(row.get("loss"), float):
        out = {"loss": f"{row['loss']:.4f}", **out}
    return out


__all__ = ["Epochs", "run_epochs"]
