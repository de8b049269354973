"""``fit``: train one model on a dataset, with early stopping, checkpoints and resume.

``fit`` is a thin Python loop over epochs around the pure pieces in
:mod:`jaxsel.train.step` (one jitted step per batch) and :mod:`jaxsel.train.schedule`
(early stopping / learning-rate plateau), so issue-4 style vectorised training can reuse them.

Determinism: the initialisation key is ``fold_in(key(seed), 0)``; the readout-sampling key
of a step is ``fold_in(fold_in(key(seed), 1 + epoch), batch)``; the batch order of an epoch
depends only on ``(seed, epoch)``. A resumed run therefore repeats exactly what the
uninterrupted run would have done.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from jaxsel.data.batches import iterate, n_batches, tier_arrays
from jaxsel.data.dataset import fingerprint as data_fingerprint
from jaxsel.data.dataset import validate, with_statistics
from jaxsel.data.transforms import standardizer as make_standardizer
from jaxsel.errors import ConfigError, DataError, TrainingError
from jaxsel.models import ResponseModel, predict
from jaxsel.models.model import Model, build_model
from jaxsel.train.checkpoint import (checkpoint_dir, latest_epoch, read_meta,
                                     restore_checkpoint, save_checkpoint)
from jaxsel.train.config import RESUMABLE_FIELDS, Config, named_config
from jaxsel.train.losses import masked_correlation
from jaxsel.train.schedule import PlateauState, plateau_init, plateau_update
from jaxsel.train.step import (make_hparams, make_optimizer, make_predict, make_train_step,
                               set_learning_rate)

_log = logging.getLogger(__name__)
HISTORY_VARS = ("loss", "objective", "reg", "val_correlation", "lr", "seconds")


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
    _fn: object = field(default=None, repr=False, compare=False)

    @cached_property
    def model(self) -> Model:
        return build_model(self.config.model, image_shape=self.image_shape,
                           n_neurons=len(self.neuron_id))

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
        return self._fn, {"params": self.params, "state": self.state,
                          "standardizer": {k: jnp.asarray(v)
                                           for k, v in self.standardizer.items()}}

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
        model = ResponseModel(fn, params, image_shape=tuple(self.image_shape),
                              neuron_id=np.asarray(self.neuron_id))
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

    return fn


def _resolve_config(config) -> Config:
    if isinstance(config, Config):
        return config
    if isinstance(config, str):
        return named_config(config)
    if isinstance(config, dict):
        return Config.from_dict(config)
    raise ConfigError(f"config must be a Config, a named config or a dict (got "
                      f"{type(config).__name__})")


def _source_grid(ds: xr.Dataset, cfg: Config):
    gmp = cfg.model.grid_mean_predictor
    if gmp is None or cfg.model.kind != "cnn" or cfg.model.readout != "gaussian":
        return None
    names = ["cortex_x", "cortex_y", "cortex_z"][: gmp.input_dimensions]
    missing = [n for n in names if n not in ds.coords]
    if missing:
        raise DataError(f"the grid_mean_predictor needs cortical coordinates {names}; "
                        f"missing {missing}", field="cortex_xyz",
                        expected="cortical positions per neuron, or model.grid_mean_predictor "
                                 "= null")
    return np.stack([ds[n].values for n in names], axis=1).astype(np.float32)


def _config_diff(saved: dict, cfg: Config) -> list[str]:
    now = cfg.to_dict()
    diffs = []
    for part in ("model", "train"):
        a, b = saved.get(part, {}), now[part]
        for k in sorted(set(a) | set(b)):
            if part == "train" and k in RESUMABLE_FIELDS:
                continue
            if a.get(k, "<missing>") != b.get(k, "<missing>"):
                diffs.append(f"{part}.{k}: checkpoint {a.get(k, '<missing>')!r} != "
                             f"now {b.get(k, '<missing>')!r}")
    return diffs


def _history_dataset(rows: list[dict]) -> xr.Dataset:
    epochs = np.array([r["epoch"] for r in rows], dtype=np.int64)
    data = {k: ("epoch", np.array([r[k] for r in rows], dtype=np.float64)) for k in HISTORY_VARS}
    data["improved"] = ("epoch", np.array([bool(r["improved"]) for r in rows], dtype=bool))
    return xr.Dataset(data, coords={"epoch": epochs})


def initial_positions(mcfg, x_train, r_train):
    """(neuron, 2) data-driven initial readout positions when ``mcfg.readout_init ==
    "energy"`` (a CNN without a grid-mean predictor), else None."""
    if (mcfg.readout_init != "energy" or mcfg.kind != "cnn"
            or mcfg.grid_mean_predictor is not None):
        return None
    from jaxsel.models.readout_init import energy_positions
    return energy_positions(x_train, r_train)


def fit(config, dataset: xr.Dataset, *, seed: int = 0, out_dir: str | Path | None = None,
        resume: bool = False, overwrite: bool = False, max_epochs: int | None = None,
        progress: bool | None = None) -> FitResult:
    """Train one model on a dataset's train tier, early-stopping on the validation tier.

    Args:
      config: a :class:`~jaxsel.train.config.Config`, a named config (``"small"``, ...) or
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
      ConfigError: invalid config, a resume with a different config or seed, or an existing
        checkpoint without ``resume``/``overwrite``.
      TrainingError: a non-finite loss; the message names the epoch, step and batch, the
        best checkpoint is kept on disk and ``err.result`` holds the best model so far.
    """
    cfg = _resolve_config(config)
    overrides = {}
    if max_epochs is not None:
        overrides["max_epochs"] = int(max_epochs)
    if progress is not None:
        overrides["progress"] = bool(progress)
    if overrides:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **overrides))
    t = cfg.train

    ds = dataset
    validate(ds, require_tiers=("train", "validation"), require_repeats=False)
    if "response_std" not in ds:
        ds = with_statistics(ds)
    fp = data_fingerprint(ds)
    st = make_standardizer(ds, per_pixel=t.per_pixel, scale_responses=t.scale_responses)
    x_train, r_train = tier_arrays(ds, "train")
    x_val, r_val = tier_arrays(ds, "validation")
    x_train = np.asarray(st.images(x_train), np.float32)
    x_val = np.asarray(st.images(x_val), np.float32)
    r_train = np.asarray(st.responses(r_train), np.float32)
    r_val = np.asarray(st.responses(r_val), np.float32)
    image_shape = tuple(ds.sizes[d] for d in ("channel", "y", "x"))
    neuron_id = ds["neuron_id"].values
    n_train = x_train.shape[0]
    bs = min(t.batch_size, n_train)

    model = build_model(cfg.model, image_shape=image_shape, n_neurons=len(neuron_id))
    key = jax.random.key(seed)
    params, state = model.init(jax.random.fold_in(key, 0), mean_response=r_train.mean(0),
                               source_grid=_source_grid(ds, cfg),
                               positions=initial_positions(cfg.model, x_train, r_train))
    tx = _compiled(model, _step_key(t))[2]
    standard = {"image_mean": np.asarray(st.image_mean, np.float32),
                "image_std": np.asarray(st.image_std, np.float32),
                "response_scale": np.asarray(st.response_scale, np.float32)}
    tree = {"params": params, "state": state, "opt_state": tx.init(params),
            "best_params": params, "best_state": state,
            "schedule": plateau_init(t.lr)._asdict(),
            "standardizer": {k: jnp.asarray(v) for k, v in standard.items()}}
    rows: list[dict] = []
    start_epoch = 0
    stopped_reason = None

    if out_dir is not None:
        out_dir = Path(out_dir)
        last = latest_epoch(out_dir)
        if last is not None and resume:
            meta = read_meta(out_dir, last)
            if meta.get("fingerprint") != fp:
                raise DataError(
                    f"refusing to resume: the checkpoint in {checkpoint_dir(out_dir)} was "
                    f"trained on data with fingerprint {meta.get('fingerprint')} "
                    f"({meta.get('dataset_name')}), this dataset has {fp} "
                    f"({ds.attrs.get('name')}); use a new out_dir or overwrite=True",
                    field="dataset")
            diffs = _config_diff(meta.get("config", {}), cfg)
            if diffs:
                raise ConfigError("refusing to resume with a different config: "
                                  + "; ".join(diffs) + " (use a new out_dir or overwrite=True)")
            if int(meta.get("seed", seed)) != int(seed):
                raise ConfigError(f"refusing to resume: the checkpoint used seed "
                                  f"{meta.get('seed')}, this call seed {seed}")
            tree, meta = restore_checkpoint(out_dir, tree, last)
            start_epoch = int(meta["epoch"])
            rows = list(meta.get("history", []))
            _log.info("resuming %s after epoch %d", out_dir, start_epoch)
        elif last is not None and not overwrite:
            raise ConfigError(f"{checkpoint_dir(out_dir)} already holds a checkpoint (epoch "
                              f"{last}); pass resume=True to continue it or overwrite=True "
                              f"to start again")
        elif last is not None:
            import shutil
            shutil.rmtree(checkpoint_dir(out_dir))

    def run_meta(epoch: int, stopped: str | None) -> dict:
        sched = tree["schedule"]
        return {"epoch": epoch, "config": cfg.to_dict(), "config_name": cfg.name,
                "neuron_id": neuron_id.tolist(), "fingerprint": fp, "seed": int(seed),
                "dataset_name": str(ds.attrs.get("name", "")), "image_shape": list(image_shape),
                "history": rows, "best_epoch": int(sched["best_epoch"]),
                "best_score": float(sched["best_score"]), "stopped": stopped}

    step, predict_fn, _ = _compiled(model, _step_key(t))
    hparams = make_hparams(cfg, n_train)
    params, state, opt_state = tree["params"], tree["state"], tree["opt_state"]
    best_params, best_state = tree["best_params"], tree["best_state"]
    sched = PlateauState(**{k: jnp.asarray(v) for k, v in tree["schedule"].items()})
    copy = lambda x: jax.tree.map(jnp.copy, x)       # noqa: E731  (no aliasing with donated)
    params, state, opt_state = copy(params), copy(state), copy(opt_state)
    steps_per_epoch = n_batches(n_train, bs)
    bar = _progress(t.progress, t.max_epochs, start_epoch, cfg.name)
    failure = None
    try:
        for epoch in range(start_epoch, t.max_epochs):
            if bool(sched.stopped):
                break
            t0 = time.perf_counter()
            epoch_key = jax.random.fold_in(key, 1 + epoch)
            metrics, pending = [], None
            for b, batch in enumerate(iterate(x_train, r_train, bs, shuffle=True, seed=seed,
                                              epoch=epoch)):
                params, state, opt_state, m = step(
                    params, state, opt_state, batch.images, batch.responses, batch.mask,
                    jax.random.fold_in(epoch_key, b), hparams)
                if pending is not None and not bool(pending[1]["finite"]):
                    failure = pending
                    break
                pending = (b, m, batch.trial)
                metrics.append(m)
            if failure is None and pending is not None and not bool(pending[1]["finite"]):
                failure = pending
            if failure is not None:
                fb, fm, ftrial = failure
                failure = (epoch, fb, epoch * steps_per_epoch + fb, ftrial[ftrial >= 0], fm)
                break
            score = _val_score(predict_fn, params, state, x_val, r_val, t.eval_batch_size)
            sched, event = plateau_update(
                sched, score, epoch, patience=t.patience, factor=t.lr_decay_factor,
                min_lr=t.min_lr, decay_steps=t.lr_decay_steps, tolerance=t.tolerance)
            if bool(event.improved):
                best_params, best_state = copy(params), copy(state)
            if bool(event.restore):
                params, state = copy(best_params), copy(best_state)
            opt_state = set_learning_rate(opt_state, sched.lr)
            ms = jax.device_get(metrics)
            n_real = sum(float(m["n"]) for m in ms)
            rows.append({"epoch": epoch,
                         "loss": sum(float(m["data_loss"]) for m in ms)
                         / max(n_real * r_train.shape[1], 1),
                         "objective": float(np.mean([float(m["loss"]) for m in ms])),
                         "reg": float(ms[-1]["reg"]), "val_correlation": float(score),
                         "lr": float(sched.lr), "seconds": time.perf_counter() - t0,
                         "improved": bool(event.improved)})
            if bool(sched.stopped):
                stopped_reason = "plateau"
            tree = {"params": params, "state": state, "opt_state": opt_state,
                    "best_params": best_params, "best_state": best_state,
                    "schedule": sched._asdict(), "standardizer": tree["standardizer"]}
            if out_dir is not None:
                save_checkpoint(out_dir, epoch + 1, tree, run_meta(epoch + 1, stopped_reason))
            bar.update(1)
            bar.set_postfix(loss=f"{rows[-1]['loss']:.4f}", val_corr=f"{score:.4f}",
                            lr=f"{float(sched.lr):.2g}")
    finally:
        bar.close()

    if stopped_reason is None:
        stopped_reason = "plateau" if bool(sched.stopped) else "max_epochs"
    if failure is not None:
        stopped_reason = "nonfinite"
    # ``best_params`` start as the initial parameters, so a run that never completed an epoch
    # returns its initial model
    result = FitResult(
        config=cfg, params=jax.device_get(best_params), state=jax.device_get(best_state),
        standardizer=standard, history=_history_dataset(rows), best_epoch=int(sched.best_epoch),
        best_score=float(sched.best_score), neuron_id=neuron_id, image_shape=image_shape,
        fingerprint=fp, seed=int(seed), stopped=stopped_reason, out_dir=out_dir)
    if failure is not None:
        epoch, fb, gstep, trials, fm = failure
        kept = (f"the best model (epoch {result.best_epoch}, validation correlation "
                f"{result.best_score:.4f}) is kept" if result.best_epoch >= 0
                else "no epoch improved on the initial model, which is returned")
        where = f" in {checkpoint_dir(out_dir)}" if out_dir is not None else ""
        err = TrainingError(
            f"non-finite training objective ({float(fm['loss'])}) at epoch {epoch}, step "
            f"{gstep} (batch {fb} of {steps_per_epoch} in the epoch, train-tier trials "
            f"{trials[:8].tolist()}{' ...' if len(trials) > 8 else ''}); training stopped "
            f"and {kept}{where}. Lower train.lr or check the data of these trials.")
        err.result, err.epoch, err.step, err.batch = result, epoch, gstep, fb
        raise err
    return result


def _step_key(t):
    """The training-config fields the compiled step depends on (others may change freely)."""
    return dataclasses.replace(t, max_epochs=1, progress=False, eval_batch_size=1,
                               batch_size=1, patience=1, lr_decay_steps=1, tolerance=0.0,
                               lr_decay_factor=1.0, min_lr=0.0)


@functools.lru_cache(maxsize=16)
def _compiled(model: Model, train):
    """Jitted train step and predict for a (model, train config): cached, so repeated fits
    of one configuration (resume, seeds, benchmarks) compile once."""
    tx = make_optimizer(train.lr)
    step = jax.jit(make_train_step(model, train, tx), donate_argnums=(0, 1, 2))
    return step, jax.jit(make_predict(model)), tx


def _val_score(predict_fn, params, state, x_val, r_val, batch_size: int) -> float:
    preds = []
    bs = min(batch_size, x_val.shape[0])
    for batch in iterate(x_val, r_val, bs):
        preds.append(np.asarray(predict_fn(params, state, batch.images))[batch.mask])
    pred = np.concatenate(preds)
    return float(jnp.mean(masked_correlation(pred, r_val)))


class _NoBar:
    def update(self, *_):
        pass

    def set_postfix(self, **_):
        pass

    def close(self):
        pass


def _progress(enabled: bool, total: int, initial: int, name: str):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, desc=f"fit {name}", unit="epoch")


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
        src = np.zeros((len(neuron_id), cfg.model.grid_mean_predictor.input_dimensions),
                       np.float32)
    params, state = model.init(jax.random.key(0), source_grid=src)
    tx = make_optimizer(cfg.train.lr)
    c, h, w = image_shape
    like = {"params": params, "state": state, "opt_state": tx.init(params),
            "best_params": params, "best_state": state,
            "schedule": plateau_init(cfg.train.lr)._asdict(),
            "standardizer": {"image_mean": jnp.zeros((c, h, w) if cfg.train.per_pixel else (),
                                                     jnp.float32),
                             "image_std": jnp.zeros((c, h, w) if cfg.train.per_pixel else (),
                                                    jnp.float32),
                             "response_scale": jnp.zeros((len(neuron_id),), jnp.float32)}}
    tree, meta = restore_checkpoint(out_dir, like, epoch)
    sched = tree["schedule"]
    rows = meta.get("history", [])
    stopped = meta.get("stopped") or ("plateau" if bool(sched["stopped"]) else "max_epochs")
    return FitResult(
        config=cfg, params=jax.device_get(tree["best_params"]),
        state=jax.device_get(tree["best_state"]),
        standardizer={k: np.asarray(v) for k, v in tree["standardizer"].items()},
        history=_history_dataset(rows), best_epoch=int(sched["best_epoch"]),
        best_score=float(sched["best_score"]), neuron_id=neuron_id, image_shape=image_shape,
        fingerprint=meta["fingerprint"], seed=int(meta["seed"]), stopped=stopped,
        out_dir=out_dir)


__all__ = ["FitResult", "fit", "load_fit", "response_function"]
