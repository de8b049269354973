"""The epochs of :func:`jaxsel.fit_many`: what a run shares (``ManyRun``), resuming from a
checkpoint, the epoch loop with its history rows and checkpoints, and the final
:class:`ManyResult`."""

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
from jax.sharding import Mesh

from jaxsel._errors import ConfigError, DataError
from jaxsel.train import _sharding as S
from jaxsel.train._checkpoint import checkpoint_dir, save_checkpoint
from jaxsel.train._config import Config
from jaxsel.train._fit_parts import TrainData, resume_tree
from jaxsel.train._many_inputs import epoch_indices
from jaxsel.train._many_result import ManyResult, many_history
from jaxsel.train._many_steps import end_epoch_jit
from jaxsel.train._schedule import PlateauState

# the logger fit_many has always reported its epochs under
_log = logging.getLogger("jaxsel.train._many")


def resume_run(out_dir: Path, tree: dict, fp: str, setup: dict, *, resume: bool, overwrite: bool):
    """``(tree, start_epoch, rows)`` restored from ``out_dir`` when resuming the same setup on
    the same data, else ``tree`` unchanged from epoch 0."""

    def check(meta: dict) -> None:
        if meta.get("fingerprint") != fp:
            raise DataError(
                f"refusing to resume: {checkpoint_dir(out_dir)} was trained on "
                f"other data (fingerprint {meta.get('fingerprint')} != {fp})",
                field="dataset",
            )
        if meta.get("setup") != setup:
            raise ConfigError(
                f"refusing to resume {out_dir}: config, seeds, hparams or "
                f"targets differ from the checkpoint (use a new out_dir or "
                f"overwrite=True)"
            )

    return resume_tree(
        out_dir,
        tree,
        check,
        resume=resume,
        overwrite=overwrite,
        hint="pass resume=True or overwrite=True",
    )


@dataclass
class ManyRun:
    """What the epochs of one ``fit_many`` share (fixed for the run)."""

    cfg: Config
    data: TrainData
    k: int
    kp: int
    n_out: int
    seeds: np.ndarray
    order_seed: int | None
    shared: bool
    bs: int
    mesh: Mesh | None
    per: dict
    epoch_fn: Callable[..., Any]
    scores_fn: Callable[..., Any]
    train_xr: tuple
    val: tuple
    out_dir: Path | None
    setup: dict
    log: bool

    def meta(self, epoch: int, rows: list) -> dict:
        """The JSON metadata of the checkpoint after ``epoch`` epochs."""
        return {
            "epoch": epoch,
            "fingerprint": self.data.fingerprint,
            "history": rows,
            "setup": self.setup,
            "config": self.cfg.to_dict(),
            "config_name": self.cfg.name,
            "image_shape": list(self.data.image_shape),
        }


def many_epochs(run: ManyRun, tree: dict, rows: list, start: int, total: int) -> dict:
    """The epoch loop: one compiled epoch of all models, their scores and schedules, a
    history row and a checkpoint per epoch. Appends to ``rows``; returns the final tree."""
    tree = {**tree, "schedule": PlateauState(**tree["schedule"])}
    x_dev, r_dev = run.train_xr
    per = run.per
    for epoch in range(start, total):
        sched, failed = tree["schedule"], tree["failed"]
        active = ~sched.stopped & ~failed & (epoch < per["sched"]["max_epochs"])
        if not S.to_host(active).any():
            break
        t0 = time.perf_counter()
        idx, mask = epoch_indices(run.data.n_train, run.bs, run.seeds, run.order_seed, epoch)
        if not run.shared:
            idx = S.pad_models(np.moveaxis(idx, 1, 0), run.kp).swapaxes(0, 1)
        idx_d, mask_d = S.replicate((idx, mask), run.mesh)
        params, state, opt_state, failed, acc = run.epoch_fn(
            tree["params"],
            tree["state"],
            tree["opt_state"],
            failed,
            active,
            x_dev,
            r_dev,
            idx_d,
            mask_d,
            per["cols"],
            per["seeds"],
            jnp.int32(epoch),
            per["hparams"],
        )
        score = run.scores_fn(params, state, *run.val, per["cols"])
        (params, state, opt_state, best_params, best_state, sched, improved, active) = (
            end_epoch_jit(
                params,
                state,
                opt_state,
                tree["best_params"],
                tree["best_state"],
                sched,
                failed,
                score,
                jnp.int32(epoch),
                per["sched"],
            )
        )
        tree = {
            "params": params,
            "state": state,
            "opt_state": opt_state,
            "best_params": best_params,
            "best_state": best_state,
            "schedule": sched,
            "failed": failed,
        }
        h = S.to_host(
            {
                "acc": acc,
                "score": score,
                "lr": sched.lr,
                "improved": improved,
                "active": active,
                "failed": failed,
            }
        )
        row = _many_row(run, epoch, h, t0)
        rows.append({n: (v.tolist() if isinstance(v, np.ndarray) else v) for n, v in row.items()})
        if run.out_dir is not None:
            save_checkpoint(
                run.out_dir,
                epoch + 1,
                {**tree, "schedule": sched._asdict()},
                run.meta(epoch + 1, rows),
            )
    return tree


def _many_row(run: ManyRun, epoch: int, h: dict, t0: float) -> dict:
    """The history row of an epoch (NaN for models not training), logged with ``progress``."""
    k = run.k
    ok = h["active"][:k]
    nan = lambda a: np.where(ok, a, np.nan)  # noqa: E731
    a = h["acc"]
    row = {
        "epoch": epoch,
        "loss": nan(a["data_loss"][:k] / np.maximum(a["n"][:k] * run.n_out, 1)),
        "objective": nan(a["objective"][:k] / np.maximum(a["steps"][:k], 1)),
        "reg": nan(a["reg"][:k]),
        "val_correlation": nan(h["score"][:k]),
        "lr": nan(h["lr"][:k]),
        "seconds": nan(np.full(k, time.perf_counter() - t0)),
        "improved": h["improved"][:k] & ok,
    }
    if run.log:
        _log.warning(
            "fit_many epoch %d: %d/%d models training, mean val corr %.4f",
            epoch,
            int(ok.sum()),
            k,
            float(np.nanmean(row["val_correlation"])) if ok.any() else float("nan"),
        )
    return row


def many_result(run: ManyRun, tree: dict, rows: list, hp: dict, targets) -> ManyResult:
    """The :class:`ManyResult`: best parameters per model (the last ones where no epoch
    improved), the first K of the padded models."""
    k = run.k
    out = S.to_host(
        {
            "params": tree["params"],
            "state": tree["state"],
            "best_params": tree["best_params"],
            "best_state": tree["best_state"],
            "sched": tree["schedule"]._asdict(),
            "failed": tree["failed"],
        }
    )
    cut = lambda tr: jax.tree.map(lambda a: a[:k], tr)  # noqa: E731
    sc = cut(out["sched"])
    has_best = sc["best_epoch"] >= 0
    pick = lambda b, p: np.where(  # noqa: E731
        has_best.reshape((k,) + (1,) * (b.ndim - 1)), b, p
    )  # host-side tree_where
    best_p = jax.tree.map(pick, cut(out["best_params"]), cut(out["params"]))
    best_s = jax.tree.map(pick, cut(out["best_state"]), cut(out["state"]))
    stopped = np.where(
        out["failed"][:k], "nonfinite", np.where(sc["stopped"], "plateau", "max_epochs")
    )
    st = run.data.standardizer
    neuron_id = run.data.ds["neuron_id"].values[targets]
    return ManyResult(
        config=run.cfg,
        params=best_p,
        state=best_s,
        standardizer={
            "image_mean": np.asarray(st.image_mean, np.float32),
            "image_std": np.asarray(st.image_std, np.float32),
            "response_scale": np.asarray(st.response_scale[targets], np.float32),
        },
        history=many_history(rows, run.seeds, hp, targets, neuron_id),
        best_epoch=sc["best_epoch"].astype(int),
        best_score=sc["best_score"].astype(float),
        stopped=stopped,
        seeds=run.seeds,
        hparams=hp,
        targets=targets,
        neuron_id=neuron_id,
        image_shape=run.data.image_shape,
        fingerprint=run.data.fingerprint,
        out_dir=run.out_dir,
    )
