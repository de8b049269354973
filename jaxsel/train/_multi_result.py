"""A fitted multi-session model: :class:`MultiFitResult`, its per-session response models
and :func:`evaluate_sessions` (per-neuron correlation, labelled by session)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import xarray as xr

from jaxsel._compile_cache import cached
from jaxsel._errors import DataError
from jaxsel.data import as_images
from jaxsel.models import MultiModel, ResponseModel, SessionShape, build_multi_model
from jaxsel.train._config import Config
from jaxsel.train._losses import masked_correlation
from jaxsel.train._multi_data import check_trial_vars


@dataclass
class MultiFitResult:
    """A fitted multi-session model and how it got there.

    Attributes:
      config: the run config (``config.model.sessions`` set).
      params, state: the best parameters and state (see :class:`jaxsel.models.MultiModel`).
      standardizer: ``{session id: {"image_mean", "image_std", "response_scale"
        [, "behavior_mean", "behavior_std"] [, "pupil_mean", "pupil_std"]}}``.
      history: ``xarray.Dataset`` over ``epoch`` (and ``session``): ``loss`` and
        ``objective`` (epoch, session), ``val_correlation`` (epoch, session, mean over the
        session's neurons), ``val_correlation_mean`` (the early-stopping score: mean over
        sessions), ``lr``, ``seconds``, ``improved``.
      best_epoch, best_score: epoch (0-based) and score of the best mean validation
        correlation.
      neuron_id: ``{session id: (neuron,) ids}``.
      image_shape: ``{session id: (channel, y, x)}`` of the raw images.
      fingerprint: ``{session id: data fingerprint}``.
      seed: the seed.
      stopped: ``"plateau"``, ``"max_epochs"`` or ``"nonfinite"``.
      out_dir: the run directory (None if not saved).
      frozen_core: True for a readout-only fit (:func:`jaxsel.train.fit_readout`).
    """

    config: Config
    params: dict
    state: dict
    standardizer: dict
    history: xr.Dataset
    best_epoch: int
    best_score: float
    neuron_id: dict
    image_shape: dict
    fingerprint: dict
    seed: int
    stopped: str
    out_dir: Path | None = None
    frozen_core: bool = False

    @property
    def sessions(self) -> list[str]:
        """Session ids in order."""
        return list(self.neuron_id)

    @cached_property
    def model(self) -> MultiModel:
        shapes = {
            s: SessionShape(tuple(self.image_shape[s]), len(self.neuron_id[s]))  # type: ignore[arg-type]
            for s in self.sessions
        }
        return build_multi_model(self.config.model, shapes)

    def _check_session(self, session) -> str:
        if session not in self.neuron_id:
            raise DataError(
                f"unknown session {session!r}",
                field="session",
                expected=f"one of {self.sessions}",
            )
        return session

    def response_model(self, session: str, *, behavior=None, pupil_center=None) -> ResponseModel:
        """One session as a :class:`~jaxsel.models.ResponseModel` at a fixed behavioural state.

        Args:
          session: the session id.
          behavior: (n_behavior,) raw behaviour values (in ``config.model.sessions.behavior_vars``
            order) the model is evaluated at; None: the session's training mean.
          pupil_center: (2,) raw pupil centre; None: the training mean.

        Returns:
          A ResponseModel whose ``fn(params, raw_images)`` gives rates in the session's
          response units; the behaviour state travels in ``params`` (change it without
          recompiling); ``coords`` holds ``session`` per neuron.
        """
        sid = self._check_session(session)
        model = self.model
        st = self.standardizer[sid]
        view, vstate = MultiModel.view(self.params, self.state, sid)
        nb = model.n_behavior
        b = _state_value(behavior, st.get("behavior_mean"), nb, "behavior", sid)
        p = _state_value(
            pupil_center, st.get("pupil_mean"), 2 if model.scfg.shifter else 0, "pupil_center", sid
        )
        params = {
            "params": view,
            "state": vstate,
            "standardizer": {k: jnp.asarray(v) for k, v in st.items()},
            "behavior": jnp.asarray(b, jnp.float32),
            "pupil_center": jnp.asarray(p, jnp.float32),
        }
        fn = session_response_function(model.config, tuple(self.image_shape[sid]))
        n = len(self.neuron_id[sid])
        return ResponseModel(
            fn,
            params,
            image_shape=tuple(self.image_shape[sid]),
            neuron_id=np.asarray(self.neuron_id[sid]),
            coords={"session": np.full(n, sid)},
            meta={
                "config": self.config.to_dict(),
                "session": sid,
                "seed": self.seed,
                "best_epoch": self.best_epoch,
            },
        )

    def predict(
        self, session: str, images, *, behavior=None, pupil_center=None, batch_size: int = 256
    ) -> np.ndarray:
        """Rates (trial, neuron) of one session for raw images with per-trial raw behaviour
        (trial, n_behavior) and pupil centre (trial, 2) (None: the training means)."""
        sid = self._check_session(session)
        x = as_images(images, tuple(self.image_shape[sid]))
        n = x.shape[0]
        rm = self.response_model(sid)
        fn = per_trial_function(self.model.config, tuple(self.image_shape[sid]))
        b = _trials(behavior, rm.params["behavior"], n, "behavior", sid)
        p = _trials(pupil_center, rm.params["pupil_center"], n, "pupil_center", sid)
        from jaxsel._compile_cache import jit

        jfn = jit(fn, kind="predict_sessions")
        out = []
        bs = max(1, min(batch_size, n))
        for start in range(0, n, bs):
            idx = np.arange(start, min(start + bs, n))
            take = np.concatenate([idx, np.full(bs - len(idx), idx[0])])
            out.append(np.asarray(jfn(rm.params, x[take], b[take], p[take]))[: len(idx)])
        return np.concatenate(out) if out else np.zeros((0, len(self.neuron_id[sid])), np.float32)


def _state_value(value, mean, size: int, field: str, sid: str) -> np.ndarray:
    if size == 0:
        return np.zeros((0,), np.float32)
    if value is None:
        return np.asarray(mean, np.float32)
    v = np.asarray(value, np.float32).reshape(-1)
    if v.shape != (size,):
        raise DataError(
            f"session {sid!r}: {field} has shape {np.shape(value)}",
            field=field,
            expected=f"({size},) raw values",
        )
    return v


def _trials(value, default, n: int, field: str, sid: str) -> np.ndarray:
    d = np.asarray(default, np.float32)
    if value is None:
        return np.broadcast_to(d, (n,) + d.shape).copy()
    v = np.asarray(value, np.float32)
    if v.shape != (n,) + d.shape:
        raise DataError(
            f"session {sid!r}: {field} has shape {v.shape}",
            field=field,
            expected=f"{(n,) + d.shape} (trial, ...) raw values",
        )
    return v


def _standardize_inputs(params, images, behavior, pupil, channels):
    images = jnp.asarray(images, jnp.float32)
    if images.ndim == 3 and channels == 1:
        images = images[:, None]
    st = params["standardizer"]
    x = (images - st["image_mean"]) / st["image_std"]
    b = (behavior - st["behavior_mean"]) / st["behavior_std"] if "behavior_mean" in st else None
    p = (pupil - st["pupil_mean"]) / st["pupil_std"] if "pupil_mean" in st else None
    return x, b, p


def per_trial_function(config, image_shape: tuple):
    """``fn(params, raw_images, raw_behavior, raw_pupil) -> rates`` for one session
    (params as in :meth:`MultiFitResult.response_model`); one function per config."""

    def build():
        model = MultiModel(config, {})

        def fn(params, images, behavior, pupil):
            x, b, p = _standardize_inputs(params, images, behavior, pupil, image_shape[0])
            rates, _ = model.apply(params["params"], params["state"], x, b, p, train=False)
            return rates * params["standardizer"]["response_scale"]

        return fn

    return cached("multi_per_trial_fn", (config, image_shape[0]), build)


def session_response_function(config, image_shape: tuple):
    """``fn(params, raw_images) -> rates`` at the behavioural state stored in ``params``."""

    def build():
        inner = per_trial_function(config, image_shape)

        def fn(params, images):
            images = jnp.asarray(images)
            n = images.shape[0]
            b = jnp.broadcast_to(params["behavior"], (n,) + params["behavior"].shape)
            p = jnp.broadcast_to(params["pupil_center"], (n,) + params["pupil_center"].shape)
            return inner(params, images, b, p)

        fn.image_shape = tuple(int(s) for s in image_shape)  # type: ignore[attr-defined]
        return fn

    return cached("multi_response_fn", (config, tuple(image_shape)), build)


def evaluate_sessions(result: MultiFitResult, sessions: dict, *, tier: str = "test") -> xr.Dataset:
    """Per-neuron correlation of a multi-session model on one tier of every session.

    Each trial is predicted with its own behaviour and pupil centre (when the model uses
    them). Neurons of all sessions form one population: the ``neuron`` dim carries
    ``session`` and ``neuron_id`` coords.

    Args:
      result: a :class:`MultiFitResult`.
      sessions: ``{session id: dataset}`` (a subset of the model's sessions).
      tier: the tier to score (``"test"``, ``"validation"``, ...).

    Returns:
      ``xarray.Dataset`` with ``correlation`` (neuron): Pearson correlation over the tier's
      trials, with ``session`` and ``neuron_id`` coords on ``neuron``; per-session means:
      ``out.correlation.groupby("session").mean()``.
    """
    corr, sess, ids = [], [], []
    for sid, ds in sessions.items():
        result._check_session(sid)
        check_trial_vars(sid, ds, result.model.scfg)
        idx = np.flatnonzero(ds["tier"].values == tier)
        if len(idx) < 2:
            raise DataError(
                f"session {sid!r} has {len(idx)} trials in tier {tier!r}",
                field="tier",
                expected="at least 2 trials in the tier to score",
            )
        scfg = result.model.scfg
        b = None
        if result.model.n_behavior:
            b = ds["behavior"].sel(behavior_var=list(scfg.behavior_vars)).values[idx]
        p = ds["pupil_center"].values[idx] if scfg.shifter else None
        pred = result.predict(sid, ds["images"].values[idx], behavior=b, pupil_center=p)
        r = ds["responses"].values[idx].astype(np.float32)
        c = np.asarray(masked_correlation(pred, r))
        corr.append(c)
        sess.append(np.full(len(c), sid, dtype=object))
        ids.append(np.asarray(ds["neuron_id"].values))
    return xr.Dataset(
        {"correlation": ("neuron", np.concatenate(corr))},
        coords={
            "session": ("neuron", np.concatenate(sess).astype(str)),
            "neuron_id": ("neuron", np.concatenate(ids)),
        },
        attrs={"tier": tier, "units": "Pearson correlation over trials (dimensionless)"},
    )


def load_sessions_fit(out_dir: str | Path, epoch: int | None = None) -> MultiFitResult:
    """Rebuild the best model of a :func:`fit_sessions` / :func:`fit_readout` run from its
    checkpoint (default: the newest); no dataset needed.

    Raises:
      DataError: the folder holds a single-session run (use :func:`jaxsel.train.load_fit`).
    """
    import jax

    from jaxsel.train._checkpoint import read_meta, restore_checkpoint
    from jaxsel.train._multi_loop import history_dataset, split_trainable
    from jaxsel.train._schedule import plateau_init
    from jaxsel.train._step import make_optimizer

    out_dir = Path(out_dir)
    meta = read_meta(out_dir, epoch)
    if meta.get("kind") != "sessions":
        raise DataError(
            f"{out_dir} holds a single-session run",
            field="out_dir",
            expected="a fit_sessions run folder (single-session runs: jaxsel.train.load_fit)",
        )
    cfg = Config.from_dict({**meta["config"], "name": meta.get("config_name", "custom")})
    sids = list(meta["sessions"])
    shapes = {
        s: SessionShape(tuple(meta["image_shape"][s]), len(meta["neuron_id"][s]))  # type: ignore[arg-type]
        for s in sids
    }
    model = build_multi_model(cfg.model, shapes)
    gmp = cfg.model.grid_mean_predictor
    src = None
    if gmp is not None:
        src = {s: np.zeros((shapes[s].n_neurons, gmp.input_dimensions), np.float32) for s in sids}
    params, state = model.init(jax.random.key(0), source_grid=src)
    params.setdefault("shared", {})
    frozen = bool(meta.get("frozen_core", False))
    tx = make_optimizer(cfg.train.lr)
    like = {
        "params": params,
        "state": state,
        "opt_state": tx.init(split_trainable(params, frozen)[0]),
        "best_params": params,
        "best_state": state,
        "schedule": plateau_init(cfg.train.lr)._asdict(),
        "standardizer": {s: _standardizer_like(cfg, model, shapes[s]) for s in sids},
    }
    tree, meta = restore_checkpoint(out_dir, like, epoch)
    sched = tree["schedule"]
    return MultiFitResult(
        config=cfg,
        params=jax.device_get(tree["best_params"]),
        state=jax.device_get(tree["best_state"]),
        standardizer=jax.device_get(tree["standardizer"]),
        history=history_dataset(meta.get("history", []), sids),
        best_epoch=int(sched["best_epoch"]),
        best_score=float(sched["best_score"]),
        neuron_id={s: np.asarray(meta["neuron_id"][s]) for s in sids},
        image_shape={s: tuple(meta["image_shape"][s]) for s in sids},
        fingerprint=dict(meta["fingerprint"]),
        seed=int(meta["seed"]),
        stopped=meta.get("stopped") or ("plateau" if bool(sched["stopped"]) else "max_epochs"),
        out_dir=out_dir,
        frozen_core=frozen,
    )


def _standardizer_like(cfg: Config, model: MultiModel, shape: SessionShape) -> dict:
    c, h, w = shape.image_shape
    img = (c, h, w) if cfg.train.per_pixel else ()
    out = {
        "image_mean": jnp.zeros(img, jnp.float32),
        "image_std": jnp.zeros(img, jnp.float32),
        "response_scale": jnp.zeros((shape.n_neurons,), jnp.float32),
    }
    if model.n_behavior:
        out.update(
            behavior_mean=jnp.zeros((model.n_behavior,), jnp.float32),
            behavior_std=jnp.zeros((model.n_behavior,), jnp.float32),
        )
    if model.scfg.shifter:
        out.update(pupil_mean=jnp.zeros((2,), jnp.float32), pupil_std=jnp.zeros((2,), jnp.float32))
    return out


__all__ = [
    "MultiFitResult",
    "evaluate_sessions",
    "load_sessions_fit",
    "per_trial_function",
    "session_response_function",
]
