"""The set-up of :func:`jaxsel.fit_many` before its first epoch: argument checks, the
formulation, the stacked (padded, sharded) initial state and per-model constants, the
validation batches and the setup record a resume is checked against."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxsel._checks import check_int
from jaxsel._errors import ConfigError
from jaxsel.data import n_batches
from jaxsel.train import _sharding as S
from jaxsel.train._config import Config
from jaxsel.train._fit_parts import TrainData, initial_positions, source_grid
from jaxsel.train._many_inputs import REG_FIELDS, SCHEDULE_FIELDS, init_models
from jaxsel.train._schedule import plateau_init
from jaxsel.train._step import make_hparams, set_learning_rate


def check_seeds(seeds, order_seed) -> None:
    """``seeds``: an int or a 1-D sequence of ints; ``order_seed``: None or an int."""
    a = np.asarray(seeds) if not isinstance(seeds, (str, bytes)) else np.asarray([seeds])
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer) or a.ndim > 1 or a.size == 0:
        raise ConfigError(
            f"fit_many: seeds = {seeds!r}: expected an int or a non-empty 1-D sequence of ints"
        )
    if order_seed is not None:
        check_int("fit_many", "order_seed", order_seed)


def resolve_formulation(formulation: str, mesh, cfg: Config, shared: bool, k: int) -> str:
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


def initial_stack(cfg: Config, data: TrainData, seeds, vals: dict, targets, tx, kp: int, mesh):
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


def val_batches(x_val, r_val, batch_size: int, mesh):
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


def meta_setup(cfg, seeds, hp, targets) -> dict:
    return {
        "config": cfg.replace(max_epochs=1, progress=False).to_dict(),
        "seeds": np.asarray(seeds).tolist(),
        "hparams": {n: np.asarray(v).tolist() for n, v in hp.items()},
        "targets": np.asarray(targets).tolist(),
    }
