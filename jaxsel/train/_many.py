"""``fit_many``: K independent models trained as ONE compiled program.

Per-neuron models (seed 002), ensemble members (seed 004) and hyperparameter-sweep points
(seed 001) are the same thing here: a leading **model axis** on parameters, BN state,
optimizer state and early-stopping state. What differs per model is an array along that axis:

* ``seeds`` — initialisation, readout sampling and (by default) batch order, exactly as in
  :func:`jaxsel.fit` with that seed;
* ``hparams`` — per-model values of ``lr``, ``gamma_input``, ``gamma_hidden``,
  ``gamma_readout`` (regularizers), ``lr_decay_factor``, ``patience``, ``lr_decay_steps``,
  ``min_lr``, ``tolerance``, ``max_epochs`` (schedule) and ``init_mu_range``, ``init_sigma``,
  ``init_std`` (initialisation);
* ``targets`` — which neurons each model predicts (``"per_neuron"``: one model per neuron).

Each model early-stops on its own validation curve (the schedule of
:func:`jaxsel.train.plateau_update` runs elementwise on (K,) arrays); a stopped model is frozen by a
``where`` inside the same compiled step (nothing is retraced), and its best parameters are
restored per model. One epoch is a Python loop over one jitted step of all models.
Optionally the model axis is sharded over ``jax.devices()`` (all hosts): see
:func:`jaxsel.train.model_mesh` and :func:`jaxsel.train.shard_models`. With
``out_dir`` the whole stack is one orbax checkpoint per epoch (resumable).

Equivalence: model k of ``fit_many(cfg, ds, seeds=S, hparams=H)`` reproduces
``fit(cfg.replace(**H[k]), ds, seed=S[k])`` up to float32 reordering (tested). For
per-neuron targets the responses are scaled by the population's train-tier std (as in a fit
on all neurons); this equals a single-neuron ``fit`` unless the neuron's std is below 1 % of
the population mean (the standardizer's floor).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax.sharding import Mesh

from jaxsel._checks import check_int
from jaxsel._compile_cache import cached
from jaxsel._errors import ConfigError, DataError
from jaxsel.data import n_batches
from jaxsel.models import CONV_IMPLS, build_model
from jaxsel.train import _sharding as S
from jaxsel.train._checkpoint import checkpoint_dir, restore_checkpoint, save_checkpoint
from jaxsel.train._config import Config
from jaxsel.train._fit_parts import (
    TrainData,
    check_fit_args,
    check_max_epochs,
    initial_positions,
    open_run,
    prepare_data,
    resolve_config,
    source_grid,
)
from jaxsel.train._many_inputs import (
    INIT_FIELDS,
    PER_MODEL_FIELDS,
    REG_FIELDS,
    SCHEDULE_FIELDS,
    epoch_indices,
    init_models,
    per_model,
    per_model_values,
)
from jaxsel.train._many_result import ManyResult, many_history
from jaxsel.train._many_steps import end_epoch_jit, make_many_epoch, make_many_scores
from jaxsel.train._schedule import PlateauState, plateau_init
from jaxsel.train._step import make_hparams, make_optimizer, set_learning_rate

_log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- fit_many


def fit_many(
    config,
    dataset: xr.Dataset,
    *,
    seeds: int | Sequence[int] | np.ndarray = 0,
    hparams: dict | None = None,
    targets=None,
    order_seed: int | None = None,
    mesh=None,
    formulation: str = "auto",
    conv: str = "auto",
    out_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    max_epochs: int | None = None,
    progress: bool | None = None,
) -> ManyResult:
    """Train K independent models in one compiled program, each early-stopping on its own.

    Args:
      config: base config (a :class:`~jaxsel.train.Config`, a named config or dict).
      dataset: dataset with train and validation tiers (see ``fit``).
      seeds: one seed (shared) or one per model.
      hparams: ``{field: value or (K,) values}`` for fields in :data:`PER_MODEL_FIELDS`.
      targets: None (every model predicts every neuron), ``"per_neuron"`` (model k predicts
        neuron k) or an int array (K, n_out) of neuron indices.
      order_seed: one batch order for every model (from this seed); default: each model's
        own seed (as ``fit``), which is shared automatically when all seeds are equal.
      mesh: a :func:`jaxsel.train.model_mesh` (or ``True`` for all devices) to shard
        the model axis; None runs on the default device.
      formulation: ``"vmap"`` (vmapped single-model step), ``"loop"`` (the same step
        called for one model at a time inside each batch step: ordinary convolutions, the
        fastest form on CPU), ``"fused"`` (the per-neuron
        formulation of :func:`jaxsel.train.make_per_neuron_step`; needs a shared batch order) or
        ``"auto"`` (``"vmap"`` when sharded over a mesh, else ``"loop"`` on CPU and
        ``"vmap"`` elsewhere).
      conv: how the core's convolutions are computed, ``"xla"``, ``"fft"`` or ``"shifted"``
        (:func:`jaxsel.models.conv_implementation`); ``"auto"``: on CPU by FFT where that is
        faster (few channels, large kernels: 3x faster for the 4-channel per-neuron CNN
        of ``benchmarks/``), else XLA's. Results agree to float32 rounding.
      out_dir: run directory for one orbax checkpoint of the whole stack per epoch.
      resume, overwrite: as in ``fit``.
      max_epochs: override ``config.train.max_epochs`` (and any per-model value above it).
      progress: log one line per epoch.

    Returns:
      A :class:`ManyResult`.

    Raises:
      ConfigError: per-model lengths that disagree, fields that cannot vary per model,
        a resume with a different setup.
      DataError: invalid data or target indices.
    """
    check_fit_args(
        "fit_many",
        dataset,
        max_epochs=max_epochs,
        progress=progress,
        out_dir=out_dir,
        resume=resume,
        overwrite=overwrite,
    )
    _check_seeds(seeds, order_seed)
    if conv not in CONV_IMPLS:
        raise ConfigError(f"conv = {conv!r}: use one of {CONV_IMPLS}")
    cfg = resolve_config(config)
    if max_epochs is not None:
        cfg = cfg.replace(max_epochs=int(max_epochs))
    check_max_epochs("fit_many", cfg)
    t = cfg.train
    data = prepare_data(dataset, t)
    seeds, hp, targets, k = per_model(seeds, hparams, targets, data.ds.sizes["neuron"])
    vals = per_model_values(cfg, hp, k)
    if max_epochs is not None:
        vals["max_epochs"] = np.minimum(vals["max_epochs"], int(max_epochs))
    if order_seed is None and np.all(seeds == seeds[0]):
        order_seed = int(seeds[0])
    shared = order_seed is not None
    formulation = _formulation(formulation, mesh, cfg, shared, k)
    if mesh is True:
        mesh = S.model_mesh()
    kp = S.padded_size(k, mesh)
    model = build_model(cfg.model, image_shape=data.image_shape, n_neurons=targets.shape[1])
    tx = make_optimizer(t.lr)
    tree, per = _initial_stack(cfg, data, seeds, vals, targets, tx, kp, mesh)
    setup = _meta_setup(cfg, seeds, hp, targets)
    rows: list[dict] = []
    start = 0
    if out_dir is not None:
        out_dir = Path(out_dir)
        tree, start, rows = _resume(
            out_dir, tree, data.fingerprint, setup, resume=resume, overwrite=overwrite
        )
    run = _ManyRun(
        cfg=cfg,
        data=data,
        k=k,
        kp=kp,
        n_out=targets.shape[1],
        seeds=seeds,
        order_seed=order_seed,
        shared=shared,
        bs=min(t.batch_size, data.n_train),
        mesh=mesh,
        per=per,
        epoch_fn=cached(
            "many_epoch",
            (model, t.loss, t.eps, t.gamma_shape, shared, formulation, conv),
            lambda: make_many_epoch(
                model, t, tx, shared_images=shared, formulation=formulation, conv=conv
            ),
        ),
        scores_fn=cached("many_scores", model, lambda: make_many_scores(model)),
        train_xr=S.replicate((data.x_train, data.r_train), mesh),
        val=_val_batches(data.x_val, data.r_val, t.eval_batch_size, mesh),
        out_dir=out_dir,
        setup=setup,
        log=progress if progress is not None else t.progress,
    )
    tree = _many_epochs(run, tree, rows, start, int(vals["max_epochs"].max()) if k else 0)
    return _many_result(run, tree, rows, hp, targets)


def _check_seeds(seeds, order_seed) -> None:
    """``seeds``: an int or a 1-D sequence of ints; ``order_seed``: None or an int."""
    a = np.asarray(seeds) if not isinstance(seeds, (str, bytes)) else np.asarray([seeds])
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer) or a.ndim > 1 or a.size == 0:
        raise ConfigError(
            f"fit_many: seeds = {seeds!r}: expected an int or a non-empty 1-D sequence of ints"
        )
    if order_seed is not None:
        check_int("fit_many", "order_seed", order_seed)


def _formulation(formulation: str, mesh, cfg: Config, shared: bool, k: int) -> str:
    """The formulation ``"auto"`` resolves to, checked against the batch order."""
    if formulation == "auto":
        from jaxsel.train._per_neuron import choose_formulation

        # a sharded model axis needs the one vmapped program; else the fastest per backend
        formulation = (
            "vmap"
            if mesh is not None and mesh is not False
            else choose_formulation(cfg.model, shared_images=shared, n_models=k)
        )
    if formulation not in ("vmap", "loop", "fused"):
        raise ConfigError(f"formulation = {formulation!r}: use 'auto', 'vmap', 'loop' or 'fused'")
    if formulation == "fused" and not shared:
        raise ConfigError(
            "formulation='fused' needs one batch order for all models (order_seed, or equal seeds)"
        )
    return formulation


def _initial_stack(cfg: Config, data: TrainData, seeds, vals: dict, targets, tx, kp: int, mesh):
    """``(tree, per)``: the stacked training state (padded to ``kp`` models and sharded) and
    the per-model constants (hyperparameters, target columns, seeds, schedule values)."""
    k = len(seeds)
    grid = source_grid(data.ds, cfg)
    pos = initial_positions(cfg.model, data.x_train, data.r_train)
    params, state = init_models(
        cfg,
        data.image_shape,
        targets.shape[1],
        seeds,
        vals,
        data.r_train.mean(0)[targets],
        None if grid is None else grid[targets],
        None if pos is None else pos[targets],
    )
    opt_state = jax.device_get(jax.vmap(tx.init)(params))
    opt_state = set_learning_rate(opt_state, vals["lr"])
    hparams_arr = {
        n: np.full(k, np.float32(v), np.float32) for n, v in make_hparams(cfg, data.n_train).items()
    }
    for n in REG_FIELDS:
        hparams_arr[n] = vals[n].astype(np.float32)
    sched = plateau_init(vals["lr"])._asdict()
    sched["stopped"] = np.arange(kp) >= k if kp > k else np.zeros(k, bool)
    host = {
        "params": params,
        "state": state,
        "opt_state": opt_state,
        "best_params": params,
        "best_state": state,
    }
    host = S.pad_models(jax.device_get(host), kp)
    sched = {
        n: np.asarray(v) if n == "stopped" else S.pad_models(np.asarray(v), kp)
        for n, v in sched.items()
    }
    tree = S.shard_models({**host, "schedule": sched, "failed": np.zeros(kp, bool)}, mesh)
    per = S.shard_models(
        S.pad_models(
            {
                "hparams": hparams_arr,
                "cols": targets.astype(np.int32),
                "seeds": seeds.astype(np.uint32),
                "sched": {n: vals[n] for n in SCHEDULE_FIELDS if n != "lr"},
            },
            kp,
        ),
        mesh,
    )
    per["sched"] = {
        **per["sched"],
        **{
            n: per["sched"][n].astype(jnp.float32)
            for n in ("lr_decay_factor", "min_lr", "tolerance")
        },
    }
    return tree, per


def _resume(out_dir: Path, tree: dict, fp: str, setup: dict, *, resume: bool, overwrite: bool):
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

    last = open_run(
        out_dir,
        resume=resume,
        overwrite=overwrite,
        check=check,
        hint="pass resume=True or overwrite=True",
    )
    if last is None:
        return tree, 0, []
    tree, meta = restore_checkpoint(out_dir, tree, last)
    return tree, int(meta["epoch"]), list(meta.get("history", []))


def _val_batches(x_val, r_val, batch_size: int, mesh):
    """Validation images as padded batches (steps, B, ...), responses and mask (replicated)."""
    vb = min(batch_size, x_val.shape[0])
    vsteps = n_batches(x_val.shape[0], vb)
    pad = vsteps * vb - x_val.shape[0]
    xv = np.concatenate([x_val, np.repeat(x_val[:1], pad, 0)]).reshape(
        (vsteps, vb) + x_val.shape[1:]
    )
    rv = np.concatenate([r_val, np.repeat(r_val[:1], pad, 0)])
    maskv = np.arange(vsteps * vb) < x_val.shape[0]
    return S.replicate((xv, rv, maskv), mesh)


@dataclass
class _ManyRun:
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


def _many_epochs(run: _ManyRun, tree: dict, rows: list, start: int, total: int) -> dict:
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


def _many_row(run: _ManyRun, epoch: int, h: dict, t0: float) -> dict:
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


def _many_result(run: _ManyRun, tree: dict, rows: list, hp: dict, targets) -> ManyResult:
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


def _meta_setup(cfg, seeds, hp, targets) -> dict:
    return {
        "config": cfg.replace(max_epochs=1, progress=False).to_dict(),
        "seeds": np.asarray(seeds).tolist(),
        "hparams": {n: np.asarray(v).tolist() for n, v in hp.items()},
        "targets": np.asarray(targets).tolist(),
    }


__all__ = [
    "INIT_FIELDS",
    "PER_MODEL_FIELDS",
    "REG_FIELDS",
    "SCHEDULE_FIELDS",
    "ManyResult",
    "fit_many",
    "make_many_epoch",
    "make_many_scores",
]
