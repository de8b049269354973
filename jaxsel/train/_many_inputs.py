"""Inputs of :func:`jaxsel.fit_many`: per-model seeds, hyperparameters and
targets (broadcast to K models), the stacked initial models and each epoch's batch indices."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxsel._errors import ConfigError, DataError
from jaxsel.data import n_batches
from jaxsel.models import build_model, elu1_inverse
from jaxsel.train._config import Config

REG_FIELDS = ("gamma_input", "gamma_hidden", "gamma_readout")
SCHEDULE_FIELDS = (
    "lr",
    "lr_decay_factor",
    "patience",
    "lr_decay_steps",
    "min_lr",
    "tolerance",
    "max_epochs",
)
INIT_FIELDS = ("init_mu_range", "init_sigma", "init_std")
PER_MODEL_FIELDS = REG_FIELDS + SCHEDULE_FIELDS + INIT_FIELDS
_INT_FIELDS = ("patience", "lr_decay_steps", "max_epochs")


def per_model(seeds, hparams, targets, n_neurons: int):
    """Resolve seeds (K,), hparams {name: (K,)} and targets (K, n_out) with broadcasting."""
    hparams = dict(hparams or {})
    bad = [k for k in hparams if k not in PER_MODEL_FIELDS]
    if bad:
        raise ConfigError(
            f"hparams {bad} cannot vary within one fit_many program (per-model "
            f"fields: {', '.join(PER_MODEL_FIELDS)}); fields that change shapes "
            f"or the architecture are swept by jaxsel.train.run_sweep, one program "
            f"per value"
        )
    if isinstance(targets, str):
        if targets != "per_neuron":
            raise ConfigError(
                f"targets = {targets!r}: use 'per_neuron', None (every model "
                f"predicts every neuron) or an int array (model, n_out)"
            )
        targets = np.arange(n_neurons)[:, None]
    lengths = {}
    seeds_a = np.atleast_1d(np.asarray(seeds, dtype=np.int64))
    if seeds_a.ndim != 1:
        raise ConfigError(f"seeds must be an int or a 1-D sequence (got shape {seeds_a.shape})")
    lengths["seeds"] = len(seeds_a)
    hp = {}
    for k, v in hparams.items():
        a = np.atleast_1d(np.asarray(v))
        if a.ndim != 1:
            raise ConfigError(f"hparams['{k}'] must be a scalar or a 1-D sequence")
        hp[k] = a
        lengths[f"hparams['{k}']"] = len(a)
    if targets is not None:
        t = np.asarray(targets)
        if t.ndim == 1:
            t = t[:, None]
        if t.ndim != 2 or not np.issubdtype(t.dtype, np.integer):
            raise ConfigError("targets must be an int array (model, n_out) of neuron indices")
        if t.size and (t.min() < 0 or t.max() >= n_neurons):
            raise DataError(f"target indices outside 0..{n_neurons - 1}", field="targets")
        lengths["targets"] = len(t)
    else:
        t = np.arange(n_neurons)[None]
    k = max(lengths.values())
    for name, n in lengths.items():
        if n not in (1, k):
            raise ConfigError(
                f"{name} has {n} models but others have {k}: give one value "
                f"(shared) or one per model"
            )
    rep = lambda a: np.repeat(a, k, 0) if len(a) == 1 and k > 1 else a  # noqa: E731
    return rep(seeds_a), {n: rep(a) for n, a in hp.items()}, rep(t), k


def per_model_values(cfg: Config, hp: dict, k: int) -> dict:
    """Every per-model field as a (K,) array (config default where not swept)."""
    out = {}
    for n in PER_MODEL_FIELDS:
        base = getattr(cfg.train, n) if hasattr(cfg.train, n) else getattr(cfg.model, n)
        a = hp.get(n, np.full(k, base))
        out[n] = np.asarray(a, np.int64 if n in _INT_FIELDS else np.float32)
    if np.any(out["lr"] <= 0):
        raise ConfigError("hparams['lr'] must be > 0")
    for n in REG_FIELDS:
        if np.any(out[n] < 0):
            raise ConfigError(f"hparams['{n}'] must be >= 0")
    return out


def init_models(
    cfg: Config, image_shape, n_out: int, seeds, vals, mean_resp, grids, positions=None
):
    """Stacked initial (params, state) as NumPy, model k equal to ``fit``'s init with seed k."""
    k = len(seeds)
    groups: dict[tuple, list[int]] = {}
    for i in range(k):
        groups.setdefault(tuple(float(vals[n][i]) for n in INIT_FIELDS), []).append(i)
    parts = [None] * k
    for key_vals, members in groups.items():
        mcfg = dataclasses.replace(cfg.model, **dict(zip(INIT_FIELDS, key_vals, strict=True)))
        model = build_model(mcfg, image_shape=image_shape, n_neurons=n_out)
        dummy = None if grids is None else np.asarray(grids[members[0]])
        keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(s), 0))(
            jnp.asarray(seeds[members], jnp.uint32)
        )
        pos = (
            None
            if positions is None  # (K, n_out, 2), as fit() sets them
            else jnp.asarray(np.asarray(positions)[members], jnp.float32)
        )
        p, st = jax.device_get(
            jax.vmap(lambda kk, pp: model.init(kk, source_grid=dummy, positions=pp))(keys, pos)
        )
        for j, i in enumerate(members):
            parts[i] = jax.tree.map(lambda a: np.asarray(a[j]), (p, st))
    params, state = jax.tree.map(lambda *a: np.stack(a), *parts)
    bias = np.stack([elu1_inverse(m) for m in mean_resp]) - cfg.model.elu_offset
    if cfg.model.kind == "ln":
        params["ln"]["linear"]["bias"] = bias.astype(np.float32)
    else:
        params["readout"]["bias"] = bias.astype(np.float32)
    if grids is not None:
        from jaxsel.models import normalize_source_grid

        gmp = cfg.model.grid_mean_predictor
        assert gmp is not None  # source grids are passed only to grid-mean-predictor readouts
        d = gmp.input_dimensions
        state["consts"]["readout"]["source_grid"] = np.stack(
            [normalize_source_grid(g[:, :d]) for g in grids]
        )
    return params, state


def epoch_indices(n: int, bs: int, seeds, order_seed, epoch: int):
    """Batch indices (steps, K, B) or (steps, B) (shared order) and the mask (steps, B)."""
    steps = n_batches(n, bs)

    def one(seed):
        order = np.random.default_rng([int(seed), epoch]).permutation(n)
        pad = np.full(steps * bs, -1, np.int64)
        pad[:n] = order
        idx = pad.reshape(steps, bs)
        first = idx[:, :1]
        return np.where(idx >= 0, idx, first)

    mask = (np.arange(steps * bs) < n).reshape(steps, bs)
    if order_seed is not None:
        return one(order_seed).astype(np.int32), mask
    return np.stack([one(s) for s in seeds], axis=1).astype(np.int32), mask


__all__ = [
    "INIT_FIELDS",
    "PER_MODEL_FIELDS",
    "REG_FIELDS",
    "SCHEDULE_FIELDS",
    "epoch_indices",
    "init_models",
    "per_model",
    "per_model_values",
]
