"""``fit_many``: K independent models trained as ONE compiled program.

Per-neuron models (seed 002), ensemble members (seed 004) and hyperparameter-sweep points
(seed 001) are the same thing here: a leading **model axis** on parameters, BN state,
optimizer state and early-stopping state. What differs per model is an array along that axis:

* ``seeds`` — initialisation, readout sampling and (by default) batch order, exactly as in
  :func:`jaxsel.train.fit.fit` with that seed;
* ``hparams`` — per-model values of ``lr``, ``gamma_input``, ``gamma_hidden``,
  ``gamma_readout`` (regularizers), ``lr_decay_factor``, ``patience``, ``lr_decay_steps``,
  ``min_lr``, ``tolerance``, ``max_epochs`` (schedule) and ``init_mu_range``, ``init_sigma``,
  ``init_std`` (initialisation);
* ``targets`` — which neurons each model predicts (``"per_neuron"``: one model per neuron).

Each model early-stops on its own validation curve (the schedule of
:mod:`jaxsel.train.schedule` runs elementwise on (K,) arrays); a stopped model is frozen by a
``where`` inside the same compiled step (nothing is retraced), and its best parameters are
restored per model. One epoch is a Python loop over one jitted step of all models.
Optionally the model axis is sharded over ``jax.devices()`` (all hosts): see
:mod:`jaxsel.train.sharding`. With
``out_dir`` the whole stack is one orbax checkpoint per epoch (resumable).

Equivalence: model k of ``fit_many(cfg, ds, seeds=S, hparams=H)`` reproduces
``fit(cfg.replace(**H[k]), ds, seed=S[k])`` up to float32 reordering (tested). For
per-neuron targets the responses are scaled by the population's train-tier std (as in a fit
on all neurons); this equals a single-neuron ``fit`` unless the neuron's std is below 1 % of
the population mean (the standardizer's floor).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from jaxsel.data.batches import n_batches, tier_arrays
from jaxsel.data.dataset import fingerprint as data_fingerprint
from jaxsel.data.dataset import validate, with_statistics
from jaxsel.data.transforms import standardizer as make_standardizer
from jaxsel.errors import ConfigError, DataError
from jaxsel.models.conv_impl import CONV_IMPLS
from jaxsel.models.model import Model, build_model, elu1_inverse
from jaxsel.train import sharding as S
from jaxsel.train.checkpoint import (checkpoint_dir, latest_epoch, read_meta,
                                     restore_checkpoint, save_checkpoint)
from jaxsel.train.config import Config
from jaxsel.train.fit import (HISTORY_VARS, FitResult, _resolve_config, initial_positions,
                              _source_grid, response_function)
from jaxsel.train.schedule import PlateauState, plateau_init
from jaxsel.train.many_steps import cached, end_epoch_jit, make_many_epoch, make_many_scores
from jaxsel.train.step import make_hparams, make_optimizer, set_learning_rate

_log = logging.getLogger(__name__)

REG_FIELDS = ("gamma_input", "gamma_hidden", "gamma_readout")
SCHEDULE_FIELDS = ("lr", "lr_decay_factor", "patience", "lr_decay_steps", "min_lr",
                   "tolerance", "max_epochs")
INIT_FIELDS = ("init_mu_range", "init_sigma", "init_std")
PER_MODEL_FIELDS = REG_FIELDS + SCHEDULE_FIELDS + INIT_FIELDS
_INT_FIELDS = ("patience", "lr_decay_steps", "max_epochs")


# --------------------------------------------------------------------------- the result

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
      image_shape, fingerprint, out_dir: as in :class:`~jaxsel.train.fit.FitResult`.
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
    _fn: object = field(default=None, repr=False, compare=False)

    @property
    def n_models(self) -> int:
        return int(len(self.seeds))

    @cached_property
    def model(self) -> Model:
        return build_model(self.config.model, image_shape=self.image_shape,
                           n_neurons=self.targets.shape[1])

    def member_config(self, k: int) -> Config:
        """The config of model ``k`` (base config with its per-model values)."""
        return self.config.replace(**{n: _py(v[k]) for n, v in self.hparams.items()})

    def member(self, k: int) -> FitResult:
        """Model ``k`` as a :class:`~jaxsel.train.fit.FitResult` (its own history)."""
        take = lambda t: jax.tree.map(lambda a: np.asarray(a)[k], t)     # noqa: E731
        h = self.history.isel(model=k).drop_vars(
            [c for c in self.history.coords if c != "epoch"])
        h = h.isel(epoch=np.flatnonzero(np.isfinite(h["val_correlation"].values)))
        return FitResult(
            config=self.member_config(k), params=take(self.params), state=take(self.state),
            standardizer={"image_mean": self.standardizer["image_mean"],
                          "image_std": self.standardizer["image_std"],
                          "response_scale": self.standardizer["response_scale"][k]},
            history=h, best_epoch=int(self.best_epoch[k]), best_score=float(self.best_score[k]),
            neuron_id=self.neuron_id[k], image_shape=self.image_shape,
            fingerprint=self.fingerprint, seed=int(self.seeds[k]), stopped=str(self.stopped[k]),
            out_dir=self.out_dir)

    def response_fn(self):
        """The stacked in-silico pair ``(fn, params)``: ``fn(params, raw_images)`` ->
        rates (model, batch, n_out) in the data's units (vmapped single-model functions)."""
        if self._fn is None:
            one = response_function(self.model)
            self._fn = jax.vmap(one, in_axes=(0, None))
        return self._fn, {"params": self.params, "state": self.state,
                          "standardizer": {
                              "image_mean": np.broadcast_to(
                                  self.standardizer["image_mean"],
                                  (self.n_models,) + np.shape(self.standardizer["image_mean"])),
                              "image_std": np.broadcast_to(
                                  self.standardizer["image_std"],
                                  (self.n_models,) + np.shape(self.standardizer["image_std"])),
                              "response_scale": self.standardizer["response_scale"]}}

    def response_model(self, which="mean", *, dataset: xr.Dataset | None = None):
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
            {"best_score": ("model", self.best_score), "best_epoch": ("model", self.best_epoch),
             "epochs": ("model", epochs), "stopped": ("model", self.stopped.astype(str))},
            coords=_model_coords(self.seeds, self.hparams, self.targets, self.neuron_id))


def _py(v):
    return v.item() if isinstance(v, np.generic) else v


def _model_coords(seeds, hparams, targets, neuron_id, avoid=()) -> dict:
    coords = {"model": np.arange(len(seeds)), "seed": ("model", np.asarray(seeds))}
    for k, v in hparams.items():
        coords[f"hp_{k}" if k in avoid else k] = ("model", np.asarray(v))
    if targets.shape[1] == 1:
        coords["neuron_id"] = ("model", neuron_id[:, 0])
    return coords


# --------------------------------------------------------------------------- inputs

def _per_model(seeds, hparams, targets, n_neurons: int):
    """Resolve seeds (K,), hparams {name: (K,)} and targets (K, n_out) with broadcasting."""
    hparams = dict(hparams or {})
    bad = [k for k in hparams if k not in PER_MODEL_FIELDS]
    if bad:
        raise ConfigError(f"hparams {bad} cannot vary within one fit_many program (per-model "
                          f"fields: {', '.join(PER_MODEL_FIELDS)}); fields that change shapes "
                          f"or the architecture are swept by jaxsel.train.sweep, one program "
                          f"per value")
    if isinstance(targets, str):
        if targets != "per_neuron":
            raise ConfigError(f"targets = {targets!r}: use 'per_neuron', None (every model "
                              f"predicts every neuron) or an int array (model, n_out)")
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
            raise ConfigError(f"{name} has {n} models but others have {k}: give one value "
                              f"(shared) or one per model")
    rep = lambda a: np.repeat(a, k, 0) if len(a) == 1 and k > 1 else a   # noqa: E731
    return rep(seeds_a), {n: rep(a) for n, a in hp.items()}, rep(t), k


def _values(cfg: Config, hp: dict, k: int) -> dict:
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


def _init_models(cfg: Config, image_shape, n_out: int, seeds, vals, mean_resp, grids,
                 positions=None):
    """Stacked initial (params, state) as NumPy, model k equal to ``fit``'s init with seed k."""
    k = len(seeds)
    groups: dict[tuple, list[int]] = {}
    for i in range(k):
        groups.setdefault(tuple(float(vals[n][i]) for n in INIT_FIELDS), []).append(i)
    parts = [None] * k
    for key_vals, members in groups.items():
        mcfg = dataclasses.replace(cfg.model, **dict(zip(INIT_FIELDS, key_vals)))
        model = build_model(mcfg, image_shape=image_shape, n_neurons=n_out)
        dummy = None if grids is None else np.asarray(grids[members[0]])
        keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(s), 0))(
            jnp.asarray(seeds[members], jnp.uint32))
        pos = (None if positions is None                # (K, n_out, 2), as fit() sets them
               else jnp.asarray(np.asarray(positions)[members], jnp.float32))
        p, st = jax.device_get(jax.vmap(
            lambda kk, pp: model.init(kk, source_grid=dummy, positions=pp))(keys, pos))
        for j, i in enumerate(members):
            parts[i] = jax.tree.map(lambda a: np.asarray(a[j]), (p, st))
    params, state = jax.tree.map(lambda *a: np.stack(a), *parts)
    bias = np.stack([elu1_inverse(m) for m in mean_resp]) - cfg.model.elu_offset
    if cfg.model.kind == "ln":
        params["ln"]["linear"]["bias"] = bias.astype(np.float32)
    else:
        params["readout"]["bias"] = bias.astype(np.float32)
    if grids is not None:
        from jaxsel.models.readouts import normalize_source_grid
        d = cfg.model.grid_mean_predictor.input_dimensions
        state["consts"]["readout"]["source_grid"] = np.stack(
            [normalize_source_grid(g[:, :d]) for g in grids])
    return params, state


def _epoch_indices(n: int, bs: int, seeds, order_seed, epoch: int):
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


# --------------------------------------------------------------------------- fit_many

def fit_many(config, dataset: xr.Dataset, *, seeds=0, hparams: dict | None = None,
             targets=None, order_seed: int | None = None, mesh=None,
             formulation: str = "auto", conv: str = "auto", out_dir: str | Path | None = None,
             resume: bool = False, overwrite: bool = False, max_epochs: int | None = None,
             progress: bool | None = None) -> ManyResult:
    """Train K independent models in one compiled program, each early-stopping on its own.

    Args:
      config: base config (a :class:`~jaxsel.train.config.Config`, a named config or dict).
      dataset: dataset with train and validation tiers (see ``fit``).
      seeds: one seed (shared) or one per model.
      hparams: ``{field: value or (K,) values}`` for fields in :data:`PER_MODEL_FIELDS`.
      targets: None (every model predicts every neuron), ``"per_neuron"`` (model k predicts
        neuron k) or an int array (K, n_out) of neuron indices.
      order_seed: one batch order for every model (from this seed); default: each model's
        own seed (as ``fit``), which is shared automatically when all seeds are equal.
      mesh: a :func:`jaxsel.train.sharding.model_mesh` (or ``True`` for all devices) to shard
        the model axis; None runs on the default device.
      formulation: ``"vmap"`` (vmapped single-model step), ``"loop"`` (the same step
        called for one model at a time inside each batch step: ordinary convolutions, the
        fastest form on CPU), ``"fused"`` (the per-neuron
        formulation of :mod:`jaxsel.train.per_neuron`; needs a shared batch order) or
        ``"auto"`` (``"vmap"`` when sharded over a mesh, else
        :func:`jaxsel.train.per_neuron.choose_formulation`).
      conv: how the core's convolutions are computed, one of
        :data:`~jaxsel.models.conv_impl.CONV_IMPLS`; ``"auto"``: on CPU by FFT where that
        is faster (few channels, large kernels: 3x faster for the 4-channel per-neuron CNN
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
    if conv not in CONV_IMPLS:
        raise ConfigError(f"conv = {conv!r}: use one of {CONV_IMPLS}")
    cfg = _resolve_config(config)
    if max_epochs is not None:
        cfg = cfg.replace(max_epochs=int(max_epochs))
    t = cfg.train
    ds = dataset
    validate(ds, require_tiers=("train", "validation"), require_repeats=False)
    if "response_std" not in ds:
        ds = with_statistics(ds)
    n_neurons = ds.sizes["neuron"]
    seeds, hp, targets, k = _per_model(seeds, hparams, targets, n_neurons)
    vals = _values(cfg, hp, k)
    if max_epochs is not None:
        vals["max_epochs"] = np.minimum(vals["max_epochs"], int(max_epochs))
    fp = data_fingerprint(ds)
    st = make_standardizer(ds, per_pixel=t.per_pixel, scale_responses=t.scale_responses)
    x_train, r_train = tier_arrays(ds, "train")
    x_val, r_val = tier_arrays(ds, "validation")
    x_train = np.asarray(st.images(x_train), np.float32)
    x_val = np.asarray(st.images(x_val), np.float32)
    r_train = np.asarray(st.responses(r_train), np.float32)
    r_val = np.asarray(st.responses(r_val), np.float32)
    image_shape = tuple(ds.sizes[d] for d in ("channel", "y", "x"))
    n_out = targets.shape[1]
    n_train = x_train.shape[0]
    bs = min(t.batch_size, n_train)
    if order_seed is None and np.all(seeds == seeds[0]):
        order_seed = int(seeds[0])
    shared = order_seed is not None
    if formulation == "auto":
        from jaxsel.train.per_neuron import choose_formulation
        # a sharded model axis needs the one vmapped program; else the fastest per backend
        formulation = ("vmap" if mesh is not None and mesh is not False else
                       choose_formulation(cfg.model, shared_images=shared, n_models=k))

    if formulation not in ("vmap", "loop", "fused"):
        raise ConfigError(f"formulation = {formulation!r}: use 'auto', 'vmap', 'loop' or "
                          "'fused'")
    if formulation == "fused" and not shared:
        raise ConfigError("formulation='fused' needs one batch order for all models "
                          "(order_seed, or equal seeds)")
    if mesh is True:
        mesh = S.model_mesh()
    kp = S.padded_size(k, mesh)
    model = build_model(cfg.model, image_shape=image_shape, n_neurons=n_out)
    grid = _source_grid(ds, cfg)
    grids = None if grid is None else grid[targets]
    mean_resp = r_train.mean(0)[targets]
    pos = initial_positions(cfg.model, x_train, r_train)
    params, state = _init_models(cfg, image_shape, n_out, seeds, vals, mean_resp, grids,
                                 None if pos is None else pos[targets])
    tx = make_optimizer(t.lr)
    opt_state = jax.device_get(jax.vmap(tx.init)(params))
    opt_state = set_learning_rate(opt_state, vals["lr"])
    hp_base = make_hparams(cfg, n_train)
    hparams_arr = {n: np.full(k, np.float32(v), np.float32) for n, v in hp_base.items()}
    for n in REG_FIELDS:
        hparams_arr[n] = vals[n].astype(np.float32)
    sched = plateau_init(vals["lr"])._asdict()
    sched["stopped"] = np.arange(kp) >= k if kp > k else np.zeros(k, bool)
    host = {"params": params, "state": state, "opt_state": opt_state,
            "best_params": params, "best_state": state}
    host = S.pad_models(jax.device_get(host), kp)
    sched = {n: np.asarray(v) if n == "stopped" else S.pad_models(np.asarray(v), kp)
             for n, v in sched.items()}
    tree = S.shard_models({**host, "schedule": sched, "failed": np.zeros(kp, bool)}, mesh)
    per = S.shard_models(S.pad_models({
        "hparams": hparams_arr, "cols": targets.astype(np.int32),
        "seeds": seeds.astype(np.uint32),
        "sched": {n: vals[n] for n in SCHEDULE_FIELDS if n != "lr"}}, kp), mesh)
    per["sched"] = {**per["sched"],
                    **{n: per["sched"][n].astype(jnp.float32)
                       for n in ("lr_decay_factor", "min_lr", "tolerance")}}
    rows: list[dict] = []
    start = 0
    resp_scale = st.response_scale[targets]

    if out_dir is not None:
        out_dir = Path(out_dir)
        last = latest_epoch(out_dir)
        if last is not None and resume:
            meta = read_meta(out_dir, last)
            if meta.get("fingerprint") != fp:
                raise DataError(f"refusing to resume: {checkpoint_dir(out_dir)} was trained on "
                                f"other data (fingerprint {meta.get('fingerprint')} != {fp})",
                                field="dataset")
            now = _meta_setup(cfg, seeds, hp, targets)
            if meta.get("setup") != now:
                raise ConfigError(f"refusing to resume {out_dir}: config, seeds, hparams or "
                                  f"targets differ from the checkpoint (use a new out_dir or "
                                  f"overwrite=True)")
            tree, meta = restore_checkpoint(out_dir, tree, last)
            start, rows = int(meta["epoch"]), list(meta.get("history", []))
        elif last is not None and not overwrite:
            raise ConfigError(f"{checkpoint_dir(out_dir)} already holds a checkpoint (epoch "
                              f"{last}); pass resume=True or overwrite=True")
        elif last is not None:
            import shutil
            shutil.rmtree(checkpoint_dir(out_dir))

    x_dev, r_dev = S.replicate((x_train, r_train), mesh)
    vb = min(t.eval_batch_size, x_val.shape[0])
    vsteps = n_batches(x_val.shape[0], vb)
    pad = vsteps * vb - x_val.shape[0]
    xv = np.concatenate([x_val, np.repeat(x_val[:1], pad, 0)]).reshape(
        (vsteps, vb) + x_val.shape[1:])
    rv = np.concatenate([r_val, np.repeat(r_val[:1], pad, 0)])
    maskv = np.arange(vsteps * vb) < x_val.shape[0]
    xv, rv, maskv = S.replicate((xv, rv, maskv), mesh)

    epoch_fn = cached("epoch", (model, t.loss, t.eps, t.gamma_shape, shared, formulation,
                                 conv),
                       lambda: make_many_epoch(model, t, tx, shared_images=shared,
                                               formulation=formulation, conv=conv))
    scores_fn = cached("scores", model, lambda: make_many_scores(model))
    params, state, opt_state = tree["params"], tree["state"], tree["opt_state"]
    best_params, best_state = tree["best_params"], tree["best_state"]
    failed = tree["failed"]
    sched = PlateauState(**tree["schedule"])
    total = int(vals["max_epochs"].max()) if k else 0
    for epoch in range(start, total):
        active = ~sched.stopped & ~failed & (epoch < per["sched"]["max_epochs"])
        if not S.to_host(active).any():
            break
        t0 = time.perf_counter()
        idx, mask = _epoch_indices(n_train, bs, seeds, order_seed, epoch)
        if not shared:
            idx = S.pad_models(np.moveaxis(idx, 1, 0), kp).swapaxes(0, 1)
        idx_d, mask_d = S.replicate((idx, mask), mesh)
        params, state, opt_state, failed, acc = epoch_fn(
            params, state, opt_state, failed, active, x_dev, r_dev, idx_d, mask_d,
            per["cols"], per["seeds"], jnp.int32(epoch), per["hparams"])
        score = scores_fn(params, state, xv, rv, maskv, per["cols"])
        (params, state, opt_state, best_params, best_state, sched, improved,
         active) = end_epoch_jit(params, state, opt_state, best_params, best_state, sched,
                                  failed, score, jnp.int32(epoch), per["sched"])
        h = S.to_host({"acc": acc, "score": score, "lr": sched.lr, "improved": improved,
                       "active": active, "failed": failed})
        ok = h["active"][:k]
        nan = lambda a: np.where(ok, a, np.nan)                           # noqa: E731
        a = h["acc"]
        row = {"epoch": epoch,
               "loss": nan(a["data_loss"][:k] / np.maximum(a["n"][:k] * n_out, 1)),
               "objective": nan(a["objective"][:k] / np.maximum(a["steps"][:k], 1)),
               "reg": nan(a["reg"][:k]), "val_correlation": nan(h["score"][:k]),
               "lr": nan(h["lr"][:k]), "seconds": nan(np.full(k, time.perf_counter() - t0)),
               "improved": h["improved"][:k] & ok}
        rows.append({n: (v.tolist() if isinstance(v, np.ndarray) else v)
                     for n, v in row.items()})
        if progress if progress is not None else t.progress:
            _log.warning("fit_many epoch %d: %d/%d models training, mean val corr %.4f",
                         epoch, int(ok.sum()), k, float(np.nanmean(row["val_correlation"]))
                         if ok.any() else float("nan"))
        if out_dir is not None:
            tree = {"params": params, "state": state, "opt_state": opt_state,
                    "best_params": best_params, "best_state": best_state,
                    "schedule": sched._asdict(), "failed": failed}
            save_checkpoint(out_dir, epoch + 1, tree, {
                "epoch": epoch + 1, "fingerprint": fp, "history": rows,
                "setup": _meta_setup(cfg, seeds, hp, targets),
                "config": cfg.to_dict(), "config_name": cfg.name,
                "image_shape": list(image_shape)})

    out = S.to_host({"params": params, "state": state, "best_params": best_params,
                     "best_state": best_state, "sched": sched._asdict(), "failed": failed})
    cut = lambda tr: jax.tree.map(lambda a: a[:k], tr)                   # noqa: E731
    sc = cut(out["sched"])
    failed_h = out["failed"][:k]
    has_best = sc["best_epoch"] >= 0
    best_p = jax.tree.map(lambda b, p: np.where(
        has_best.reshape((k,) + (1,) * (b.ndim - 1)), b, p), cut(out["best_params"]),
        cut(out["params"]))
    best_s = jax.tree.map(lambda b, p: np.where(
        has_best.reshape((k,) + (1,) * (b.ndim - 1)), b, p), cut(out["best_state"]),
        cut(out["state"]))
    stopped = np.where(failed_h, "nonfinite", np.where(sc["stopped"], "plateau", "max_epochs"))
    return ManyResult(
        config=cfg, params=best_p, state=best_s,
        standardizer={"image_mean": np.asarray(st.image_mean, np.float32),
                      "image_std": np.asarray(st.image_std, np.float32),
                      "response_scale": np.asarray(resp_scale, np.float32)},
        history=_history(rows, seeds, hp, targets, ds["neuron_id"].values[targets]),
        best_epoch=sc["best_epoch"].astype(int), best_score=sc["best_score"].astype(float),
        stopped=stopped, seeds=seeds, hparams=hp, targets=targets,
        neuron_id=ds["neuron_id"].values[targets], image_shape=image_shape,
        fingerprint=fp, out_dir=out_dir)


def _meta_setup(cfg, seeds, hp, targets) -> dict:
    return {"config": cfg.replace(max_epochs=1, progress=False).to_dict(),
            "seeds": np.asarray(seeds).tolist(),
            "hparams": {n: np.asarray(v).tolist() for n, v in hp.items()},
            "targets": np.asarray(targets).tolist()}


def _history(rows, seeds, hp, targets, neuron_id) -> xr.Dataset:
    k = len(seeds)
    epochs = np.array([r["epoch"] for r in rows], np.int64)
    data = {n: (("model", "epoch"), np.array([r[n] for r in rows], np.float64).T.reshape(k, -1))
            for n in HISTORY_VARS}
    data["improved"] = (("model", "epoch"),
                        np.array([r["improved"] for r in rows], bool).T.reshape(k, -1))
    return xr.Dataset(data, coords={"epoch": epochs,
                                    **_model_coords(seeds, hp, targets, neuron_id,
                                                   avoid=HISTORY_VARS)})


__all__ = ["INIT_FIELDS", "ManyResult", "PER_MODEL_FIELDS", "REG_FIELDS", "SCHEDULE_FIELDS",
           "fit_many", "make_many_epoch", "make_many_scores"]
