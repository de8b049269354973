"""``fit_sessions``: one core, many recordings; ``fit_readout``: a new session on a frozen core.

Determinism: model init uses ``fold_in(key(seed), 0)`` (session ``i`` folds in ``i`` more,
see :meth:`jaxsel.models.MultiModel.init`); the readout-sampling key of session ``i`` in
round ``r`` of an epoch is ``fold_in(fold_in(key(seed), 1 + epoch), r * n_sessions + i)``;
the batch order depends only on ``(seed, epoch, pass)``. With one session this is exactly
:func:`jaxsel.fit`'s schedule, and a resumed run repeats the uninterrupted one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp

from jaxsel._checks import check_int
from jaxsel._errors import ConfigError, DataError, TrainingError
from jaxsel.models import SessionModelConfig, SessionShape, build_multi_model, multi_hparams
from jaxsel.train._checkpoint import checkpoint_dir
from jaxsel.train._config import Config
from jaxsel.train._fit_parts import (
    check_fit_args,
    check_max_epochs,
    check_resumable,
    initial_positions,
    resolve_config,
    resume_tree,
    source_grid,
    with_overrides,
)
from jaxsel.train._multi_data import check_sessions, prepare_session
from jaxsel.train._multi_loop import MultiRun, history_dataset, split_trainable, train_epochs
from jaxsel.train._multi_result import MultiFitResult
from jaxsel.train._multi_step import compiled_multi, session_loss_scale
from jaxsel.train._schedule import plateau_init


def _session_config(config) -> Config:
    cfg = resolve_config(config)
    if cfg.model.sessions is None:
        cfg = dataclasses.replace(
            cfg, model=dataclasses.replace(cfg.model, sessions=SessionModelConfig())
        )
    return cfg


def fit_sessions(
    config,
    sessions,
    *,
    seed: int = 0,
    out_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    max_epochs: int | None = None,
    progress: bool | None = None,
) -> MultiFitResult:
    """Train one core shared by several recording sessions, each with its own readout.

    Every epoch interleaves all sessions' batches (neuralpredictors LongCycler: rounds =
    the largest session's batch count, each round one batch per session, the shorter
    sessions cycled); the gradients of a round are summed and make one Adam step. Loss of a
    session's batch: ``sqrt(n_train_session / batch_size) * sum(loss) + penalties(core +
    that session)`` (neuralpredictors' per-session ``scale_loss``; the core's penalties are
    thus counted once per session per step). Early stopping follows the mean over sessions
    of each session's mean validation correlation.

    Args:
      config: a Config, named config or dict; ``model.sessions`` (a
        :class:`~jaxsel.models.SessionModelConfig`, None for its defaults) sets the shifter,
        behaviour and feature sharing. Needs ``kind="cnn"``, ``readout="gaussian"``.
      sessions: ``{session id (str): dataset}`` in session order (or ``(id, dataset)``
        pairs); each a validated dataset with train and validation tiers, its own neurons
        and images; ``behavior`` / ``pupil_center`` per trial when the model uses them.
      seed, out_dir, resume, overwrite, max_epochs, progress: as :func:`jaxsel.fit`.

    Returns:
      A :class:`MultiFitResult`.

    Raises:
      DataError: a bad session (naming it and the field), duplicate ids, a checkpoint of
        other data. ConfigError: bad config or arguments. TrainingError: a non-finite loss
        (``err.result`` holds the best model so far).
    """
    return _run(
        "fit_sessions",
        config,
        sessions,
        seed,
        out_dir,
        resume,
        overwrite,
        max_epochs,
        progress,
        base=None,
    )


def fit_readout(
    result: MultiFitResult,
    sessions,
    *,
    seed: int = 0,
    out_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    max_epochs: int | None = None,
    progress: bool | None = None,
) -> MultiFitResult:
    """Transfer: fit new sessions' readouts (and shifters/modulators) on a frozen core.

    The core of ``result`` (parameters, BatchNorm running statistics and, for
    ``feature_sharing="lowrank"``, the shared feature basis) is kept bit-identical: it runs
    in eval mode and receives no updates; its penalties are left out of the objective.

    Args:
      result: a fitted :class:`MultiFitResult` (its config is used).
      sessions: ``{session id: dataset}`` of the new sessions (same image channels).
      seed, out_dir, resume, overwrite, max_epochs, progress: as :func:`fit_sessions`.

    Returns:
      A :class:`MultiFitResult` with the shared core and only the new sessions.
    """
    if not isinstance(result, MultiFitResult):
        raise ConfigError(
            f"fit_readout: result is a {type(result).__name__}; expected a MultiFitResult "
            "from fit_sessions"
        )
    return _run(
        "fit_readout",
        result.config,
        sessions,
        seed,
        out_dir,
        resume,
        overwrite,
        max_epochs,
        progress,
        base=result,
    )


def _run(where, config, sessions, seed, out_dir, resume, overwrite, max_epochs, progress, *, base):
    sessions = check_sessions(where, sessions)
    for sid, ds in sessions.items():
        try:
            check_fit_args(
                where,
                ds,
                max_epochs=max_epochs,
                progress=progress,
                out_dir=out_dir,
                resume=resume,
                overwrite=overwrite,
            )
        except DataError as err:
            raise DataError(f"session {sid!r}: {err}") from None
    seed = check_int(where, "seed", seed)
    cfg = with_overrides(_session_config(config), max_epochs, progress)
    check_max_epochs(where, cfg)
    frozen = base is not None
    data = {sid: prepare_session(sid, ds, cfg.model, cfg.train) for sid, ds in sessions.items()}
    shapes = {
        sid: SessionShape(sd.data.image_shape, len(sd.data.neuron_id)) for sid, sd in data.items()
    }
    model = build_multi_model(cfg.model, shapes)
    cfg = dataclasses.replace(cfg, model=model.config)
    key = jax.random.key(seed)
    grads, update, predict, tx = compiled_multi(model.config, cfg.train, frozen_core=frozen)
    params, state = model.init(
        jax.random.fold_in(key, 0),
        mean_response={s: sd.data.r_train.mean(0) for s, sd in data.items()},
        source_grid={s: source_grid(sd.data.ds, cfg) for s, sd in data.items()},
        positions={
            s: initial_positions(cfg.model, sd.data.x_train, sd.data.r_train)
            for s, sd in data.items()
        },
    )
    if base is not None:
        _check_transfer(base, model, shapes)
        params = {**params, "core": base.params["core"], "shared": base.params.get("shared", {})}
        state = {**state, "batch_stats": base.state["batch_stats"]}
    params.setdefault("shared", {})
    trainable, _ = split_trainable(params, frozen)
    standard = {
        s: {k: jnp.asarray(v) for k, v in sd.standardizer().items()} for s, sd in data.items()
    }
    tree = {
        "params": params,
        "state": state,
        "opt_state": tx.init(trainable),
        "best_params": params,
        "best_state": state,
        "schedule": plateau_init(cfg.train.lr)._asdict(),
        "standardizer": standard,
    }
    sids = list(data)
    fps = {s: sd.data.fingerprint for s, sd in data.items()}
    core_fp = None if base is None else _core_fingerprint(base)

    def meta_fn(epoch, rows, sched, stopped):
        return {
            "epoch": epoch,
            "kind": "sessions",
            "config": cfg.to_dict(),
            "config_name": cfg.name,
            "sessions": sids,
            "neuron_id": {s: data[s].data.neuron_id.tolist() for s in sids},
            "image_shape": {s: list(data[s].data.image_shape) for s in sids},
            "fingerprint": fps,
            "seed": int(seed),
            "frozen_core": frozen,
            "core_fingerprint": core_fp,
            "history": rows,
            "best_epoch": int(sched.best_epoch),
            "best_score": float(sched.best_score),
            "stopped": stopped,
        }

    rows: list = []
    start = 0
    if out_dir is not None:
        out_dir = Path(out_dir)
        tree, start, rows = _resume(
            out_dir, tree, cfg, seed, fps, core_fp, resume=resume, overwrite=overwrite
        )
    run = MultiRun(
        cfg=cfg,
        model=model,
        data=data,
        seed=seed,
        key=key,
        out_dir=out_dir,
        grads=grads,
        update=update,
        predict=predict,
        hparams={
            s: {
                **multi_hparams(cfg.model),
                "loss_scale": jnp.float32(session_loss_scale(cfg.train, data[s].n_train)),
            }
            for s in sids
        },
        frozen_core=frozen,
        meta_fn=meta_fn,
    )
    best_p, best_s, sched, stopped, failure = train_epochs(run, tree, rows, start)
    result = MultiFitResult(
        config=cfg,
        params=jax.device_get(best_p),
        state=jax.device_get(best_s),
        standardizer=jax.device_get(standard),
        history=history_dataset(rows, sids),
        best_epoch=int(sched.best_epoch),
        best_score=float(sched.best_score),
        neuron_id={s: data[s].data.neuron_id for s in sids},
        image_shape={s: tuple(data[s].data.image_shape) for s in sids},
        fingerprint=fps,
        seed=int(seed),
        stopped=stopped,
        out_dir=out_dir,
        frozen_core=frozen,
    )
    if failure is not None:
        epoch, r, sid = failure
        err = TrainingError(
            f"{where}: non-finite training objective at epoch {epoch}, round {r} (session "
            f"{sid!r}); training stopped and the best model (epoch {result.best_epoch}) is "
            "returned in err.result. Lower train.lr or check that session's data."
        )
        err.result, err.epoch, err.step, err.batch = result, epoch, r, r
        raise err
    return result


def _core_fingerprint(base: MultiFitResult) -> str:
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    for leaf in jax.tree.leaves({"core": base.params["core"], "bn": base.state["batch_stats"]}):
        h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return h.hexdigest()[:16]


def _check_transfer(base: MultiFitResult, model, shapes) -> None:
    c0 = next(iter(base.image_shape.values()))[0]
    for sid, s in shapes.items():
        if s.image_shape[0] != c0:
            raise DataError(
                f"session {sid!r} has {s.image_shape[0]} image channels, the trained core "
                f"takes {c0}",
                field="images",
                expected=f"{c0}-channel images",
            )


def _resume(out_dir, tree, cfg, seed, fps, core_fp, *, resume, overwrite):
    def check(meta: dict) -> None:
        if (
            meta.get("kind") != "sessions"
            or meta.get("fingerprint") != fps
            or meta.get("core_fingerprint") != core_fp
        ):
            raise DataError(
                f"refusing to resume: the checkpoint in {checkpoint_dir(out_dir)} was trained "
                "on other sessions (ids, order or data differ) or another core; use a new "
                "out_dir or overwrite=True",
                field="sessions",
            )
        check_resumable(meta, cfg, seed)

    return resume_tree(out_dir, tree, check, resume=resume, overwrite=overwrite)


__all__ = ["fit_readout", "fit_sessions"]
