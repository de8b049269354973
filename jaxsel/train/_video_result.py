"""The result of :func:`jaxsel.train.fit_video` (:class:`VideoFitResult`), its response
function, and :func:`load_video_fit` (the best model of a run, from its checkpoint)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from jaxsel._compile_cache import cached
from jaxsel.models import VideoModel, build_video_model
from jaxsel.train._checkpoint import read_meta, restore_checkpoint
from jaxsel.train._fit_parts import history_dataset
from jaxsel.train._schedule import plateau_init
from jaxsel.train._step import make_optimizer
from jaxsel.train._video_data import VideoConfig


@dataclass
class VideoFitResult:
    """A fitted video model.

    Attributes:
      config: the :class:`VideoConfig`.
      params, state: the best parameters and BatchNorm state.
      response_scale: (neuron,) model rates times this are rates in the data's units.
      history: ``xarray.Dataset`` over ``epoch`` (``loss`` per scored frame and neuron,
        ``objective``, ``reg``, ``val_correlation``, ``lr``, ``seconds``, ``improved``).
      best_epoch, best_score: epoch (0-based) and value of the best validation correlation.
      frame_shape: (channel, y, x).
      n_neurons: neurons modelled.
      fingerprint: the data's fingerprint.
      seed: the seed.
      stopped: ``"plateau"``, ``"max_epochs"`` or ``"nonfinite"``.
      out_dir: the run folder (None without checkpoints).
    """

    config: VideoConfig
    params: dict
    state: dict
    response_scale: np.ndarray
    history: xr.Dataset
    best_epoch: int
    best_score: float
    frame_shape: tuple
    n_neurons: int
    fingerprint: str
    seed: int
    stopped: str
    out_dir: Path | None = None

    @property
    def model(self) -> VideoModel:
        """The :class:`~jaxsel.models.VideoModel`."""
        return build_video_model(
            self.config.model, frame_shape=self.frame_shape, n_neurons=self.n_neurons
        )

    def response_fn(self):
        """``(fn, params)``: ``fn(params, videos (batch, C, T, y, x) standardized) -> rates
        (batch, T, neuron)`` in the data's units, eval mode; pure and jittable."""
        return video_response_function(self.model), {
            "params": self.params,
            "state": self.state,
            "response_scale": jnp.asarray(self.response_scale),
        }

    def predict(self, videos) -> list[np.ndarray]:
        """Rates (time, neuron) per trial for standardized videos (a sequence of (C, T, y, x)
        trials or one (trial, C, T, y, x) array)."""
        fn, params = self.response_fn()
        return [
            np.asarray(_jit_fn(fn)(params, jnp.asarray(v, jnp.float32)[None])[0]) for v in videos
        ]


def video_response_function(model: VideoModel):
    """``fn(params, videos) -> rates`` of a video model; ``params`` holds ``params``,
    ``state`` and ``response_scale`` (see :meth:`VideoFitResult.response_fn`)."""

    def fn(params, videos):
        rates, _ = model.apply(params["params"], params["state"], videos, train=False)
        return rates * params["response_scale"]

    return cached("video_response_fn", model, lambda: fn)


def _jit_fn(fn):
    return cached("video_response_jit", fn, lambda: jax.jit(fn))


def load_video_fit(out_dir: str | Path, epoch: int | None = None) -> VideoFitResult:
    """The best model of a :func:`fit_video` run from its checkpoint (default: newest)."""
    out_dir = Path(out_dir)
    meta = read_meta(out_dir, epoch)
    cfg = VideoConfig.from_dict(meta["config"])
    shape, n = tuple(meta["frame_shape"]), int(meta["n_neurons"])
    model = build_video_model(cfg.model, frame_shape=shape, n_neurons=n)
    params, state = model.init(jax.random.key(0))
    tx = make_optimizer(cfg.train.lr)
    like = {
        "params": params,
        "state": state,
        "opt_state": tx.init(params),
        "best_params": params,
        "best_state": state,
        "schedule": plateau_init(cfg.train.lr)._asdict(),
        "response_scale": jnp.zeros((n,), jnp.float32),
    }
    tree, meta = restore_checkpoint(out_dir, like, epoch)
    sched = tree["schedule"]
    return VideoFitResult(
        config=cfg,
        params=jax.device_get(tree["best_params"]),
        state=jax.device_get(tree["best_state"]),
        response_scale=np.asarray(tree["response_scale"]),
        history=history_dataset(list(meta.get("history", []))),
        best_epoch=int(sched["best_epoch"]),
        best_score=float(sched["best_score"]),
        frame_shape=shape,
        n_neurons=n,
        fingerprint=meta["fingerprint"],
        seed=int(meta["seed"]),
        stopped=meta.get("stopped") or ("plateau" if bool(sched["stopped"]) else "max_epochs"),
        out_dir=out_dir,
    )


__all__ = ["VideoFitResult", "load_video_fit", "video_response_function"]
