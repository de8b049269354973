"""``fit_video``: train one video model on random clips, early-stopping on the validation
correlation, with checkpoints and resume.

Reused from the image ``fit``: the optimizer (:func:`make_optimizer`, the learning rate set
per epoch with :func:`set_learning_rate`), the losses (``train.loss``), the plateau schedule
(:func:`plateau_update`: early stopping, learning-rate decay, best-parameter restore), the
checkpoint files (``save_checkpoint`` / ``restore_newest`` / ``open_run``: one orbax folder
per epoch, broken ones skipped), the history rows and dataset (``epoch_row``,
``history_dataset``), the progress bar and the compile cache. New here: clips drawn from
variable-length trials, the burn-in mask of the loss, and the Sensorium-2023 validation
score (per neuron, the correlation of predictions and single-trial responses over the
concatenated frames after burn-in of all validation trials, averaged over neurons).

Determinism: initialisation key ``fold_in(key(seed), 0)``; readout-sampling key of a step
``fold_in(fold_in(key(seed), 1 + epoch), batch)``; clips of an epoch from ``(seed, epoch)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsel._checks import check_int
from jaxsel._compile_cache import cached
from jaxsel._errors import ConfigError, DataError, TrainingError
from jaxsel.models import VideoModel, build_video_model, video_energy_positions, video_hparams
from jaxsel.train._checkpoint import (
    checkpoint_dir,
)
from jaxsel.train._epochs import Epochs, run_epochs
from jaxsel.train._fit_loop import epoch_row
from jaxsel.train._fit_parts import history_dataset, resume_tree
from jaxsel.train._losses import masked_correlation
from jaxsel.train._schedule import plateau_init
from jaxsel.train._step import loss_fn_for, make_optimizer
from jaxsel.train._video_data import (
    VideoConfig,
    VideoTrials,
    check_trials,
    clip_batches,
    epoch_clips,
    fingerprint,
    response_scale,
    scale_trials,
)
from jaxsel.train._video_result import VideoFitResult


def make_video_train_step(model: VideoModel, cfg: VideoConfig, tx: optax.GradientTransformation):
    """``step(params, state, opt_state, videos, responses, mask, rng, hparams)``: one update
    on a batch of clips; the loss sums over clips (masked), frames ``>= burn_in`` and
    neurons, times ``hparams["loss_scale"]``, plus the model's regularizer. A non-finite
    objective or gradient leaves everything unchanged (``metrics["finite"]`` False)."""
    loss_fn = loss_fn_for(cfg.train)
    eps, burn = cfg.train.eps, cfg.burn_in

    def step(params, state, opt_state, videos, responses, mask, rng, hparams):
        maskf = mask.astype(jnp.float32)

        def objective(p):
            rates, new_state = model.apply(p, state, videos, train=True, rng=rng, mask=mask)
            rates = jnp.asarray(rates)
            per = loss_fn(rates[:, burn:], responses[:, burn:], eps)  # (B, T - burn, N)
            data = jnp.sum(per * maskf[:, None, None])
            reg = model.regularizer(p, hparams)
            return hparams["loss_scale"] * data + reg, (new_state, data, reg)

        (total, (new_state, data, reg)), grads = jax.value_and_grad(objective, has_aux=True)(params)
        updates, new_opt = tx.update(grads, opt_state, params)
        new_params = model.constrain(optax.apply_updates(params, updates))
        finite = jnp.isfinite(total) & jnp.all(
            jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)])
        )

        def keep(new, old):
            return jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)

        n = jnp.sum(maskf) * (videos.shape[2] - burn)
        metrics = {"loss": total, "data_loss": data, "reg": reg, "n": n, "finite": finite}
        return keep(new_params, params), keep(new_state, state), keep(new_opt, opt_state), metrics

    return step


def _compiled(model: VideoModel, cfg: VideoConfig):
    t = cfg.train
    key = (model, t.loss, t.eps, t.lr, cfg.burn_in)

    def build():
        tx = make_optimizer(t.lr)
        step = jax.jit(make_video_train_step(model, cfg, tx), donate_argnums=(0, 1, 2))
        predict = jax.jit(lambda p, s, v: model.apply(p, s, v, train=False)[0])
        return step, predict, tx

    return cached("video_fit_step", key, build)


def video_val_score(predict, params, state, trials: VideoTrials, burn_in: int, bs: int) -> float:
    """Mean over neurons of the correlation of predictions and responses over the
    concatenated frames ``>= burn_in`` of all trials (trials of one length run together)."""
    preds: list = [None] * len(trials.videos)
    lengths = trials.lengths
    for length in np.unique(lengths):
        idx = np.flatnonzero(lengths == length)
        for s in range(0, len(idx), bs):
            sel = idx[s : s + bs]
            out = np.asarray(predict(params, state, np.stack([trials.videos[i] for i in sel])))
            for j, i in enumerate(sel):
                preds[i] = out[j, burn_in:]
    pred = np.concatenate(preds)
    resp = np.concatenate([r[burn_in:] for r in trials.responses])
    return float(np.mean(np.asarray(masked_correlation(pred, resp))))


def fit_video(
    config,
    videos,
    responses,
    val_videos,
    val_responses,
    *,
    seed: int = 0,
    out_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    max_epochs: int | None = None,
    progress: bool | None = None,
) -> VideoFitResult:
    """Train a video model on random clips of training trials, early-stopping on the
    validation trials.

    Args:
      config: a :class:`VideoConfig` or a dict (``VideoConfig.from_dict``).
      videos: training trials: a sequence of (channel, time, y, x) standardized videos
        (lengths may differ) or one (trial, channel, time, y, x) array; 30 Hz frames.
      responses: matching (time, neuron) responses per trial (e.g. spike counts per frame).
      val_videos, val_responses: validation trials, scored whole (after ``burn_in``).
      seed: random seed (initialisation, clips, readout samples).
      out_dir: run folder for checkpoints (None: none).
      resume: continue the newest checkpoint in ``out_dir`` (same data, config and seed).
      overwrite: start from scratch in an ``out_dir`` that holds checkpoints.
      max_epochs, progress: override ``config.train.max_epochs`` / ``progress``.

    Returns:
      A :class:`VideoFitResult` with the best parameters.

    Raises:
      ConfigError: a bad config or argument, or a resume with another config or seed.
      DataError: malformed trials (shapes, lengths, non-finite values, trials shorter than
        a clip, negative responses for the Poisson loss) or a resume on other data.
      TrainingError: a non-finite objective (``err.result`` holds the best model so far).
    """
    cfg, seed = _resolve(config, seed, max_epochs, progress)
    train, val = _checked_data(cfg, videos, responses, val_videos, val_responses)
    fp = fingerprint(train, val)
    scale = response_scale(train, cfg.train.scale_responses)
    train, val = scale_trials(train, scale), scale_trials(val, scale)
    model = build_video_model(cfg.model, frame_shape=train.frame_shape, n_neurons=train.n_neurons)
    step, predict, tx = _compiled(model, cfg)
    key = jax.random.key(seed)
    tree = _initial_tree(model, cfg, train, key, tx, scale)
    meta = {
        "config": cfg.to_dict(),
        "fingerprint": fp,
        "seed": seed,
        "frame_shape": list(train.frame_shape),
        "n_neurons": train.n_neurons,
    }
    rows: list[dict] = []
    start = 0
    if out_dir is not None:
        out_dir = Path(out_dir)
        tree, start, rows = _resume(out_dir, tree, meta, resume=resume, overwrite=overwrite)
    n_clips = len(train.videos) * cfg.clips_per_trial
    hparams = {
        **video_hparams(cfg.model),
        "loss_scale": jnp.float32(
            math.sqrt(n_clips / cfg.train.batch_size) if cfg.train.scale_loss else 1.0
        ),
    }
    loop = _Loop(cfg, step, hparams, train, key, seed)
    epochs = Epochs(
        train=cfg.train,
        name=cfg.name,
        out_dir=out_dir,
        epoch=loop.epoch,
        score=lambda params, state: (
            video_val_score(predict, params, state, val, cfg.burn_in, cfg.train.eval_batch_size),
            None,
        ),
        row=lambda epoch, metrics, score, _x, sched, t0, improved: epoch_row(
            epoch, metrics, train.n_neurons, score, sched.lr, t0, improved
        ),
        meta=lambda epoch, rows, _sched, stopped: {
            **meta,
            "epoch": epoch,
            "history": rows,
            "stopped": stopped,
        },
    )
    tree, _, stopped, failure = run_epochs(epochs, tree, rows, start)
    sched = tree["schedule"]
    result = VideoFitResult(
        config=cfg,
        params=jax.device_get(tree["best_params"]),
        state=jax.device_get(tree["best_state"]),
        response_scale=scale,
        history=history_dataset(rows),
        best_epoch=int(sched["best_epoch"]),
        best_score=float(sched["best_score"]),
        frame_shape=train.frame_shape,
        n_neurons=train.n_neurons,
        fingerprint=fp,
        seed=seed,
        stopped=stopped,
        out_dir=out_dir,
    )
    if failure is not None:
        err = TrainingError(
            f"fit_video: non-finite training objective at epoch {failure[0]}, batch "
            f"{failure[1]}; training stopped and the best model (epoch {result.best_epoch}) "
            "is kept. Lower train.lr or check the trials."
        )
        err.result, err.epoch, err.batch, err.step = result, failure[0], failure[1], -1
        raise err
    return result


def _checked_data(cfg: VideoConfig, videos, responses, val_videos, val_responses):
    """The training and validation trials, checked (DataError naming the argument)."""
    train = check_trials("fit_video", "videos", videos, responses, min_frames=cfg.clip_frames)
    val = check_trials(
        "fit_video", "val_videos", val_videos, val_responses, min_frames=cfg.burn_in + 2
    )
    if val.frame_shape != train.frame_shape or val.n_neurons != train.n_neurons:
        raise DataError(
            f"fit_video: validation frames {val.frame_shape} x {val.n_neurons} neurons differ "
            f"from training {train.frame_shape} x {train.n_neurons}",
            field="val_videos",
            expected="the training trials' frame shape and neurons",
        )
    if cfg.train.loss in ("poisson", "gamma") and any((r < 0).any() for r in train.responses):
        raise DataError(
            f"fit_video: negative responses cannot be fitted with the {cfg.train.loss} loss",
            field="responses",
            expected="non-negative responses, or VideoConfig(train=TrainConfig(loss='mse'))",
        )
    return train, val


def _initial_tree(model: VideoModel, cfg: VideoConfig, train: VideoTrials, key, tx, scale):
    """The checkpointed arrays before the first epoch (init key ``fold_in(key, 0)``)."""
    positions = None
    if cfg.model.readout_init == "energy":
        positions = video_energy_positions(
            train.videos, train.responses, window=cfg.model.input_kern_time
        )
    params, state = model.init(
        jax.random.fold_in(key, 0), np.concatenate(train.responses).mean(0), positions
    )
    return {
        "params": params,
        "state": state,
        "opt_state": tx.init(params),
        "best_params": params,
        "best_state": state,
        "schedule": plateau_init(cfg.train.lr)._asdict(),
        "response_scale": jnp.asarray(scale),
    }


def _resolve(config, seed, max_epochs, progress) -> tuple[VideoConfig, int]:
    if isinstance(config, dict):
        config = VideoConfig.from_dict(config)
    if not isinstance(config, VideoConfig):
        raise ConfigError(
            f"fit_video: config is a {type(config).__name__}; expected a VideoConfig or a dict"
        )
    seed = check_int("fit_video", "seed", seed)
    over = {}
    if max_epochs is not None:
        over["max_epochs"] = check_int("fit_video", "max_epochs", max_epochs, minimum=1)
    if progress is not None:
        over["progress"] = bool(progress)
    if over:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, **over))
    if config.train.max_epochs < 1:
        raise ConfigError("fit_video: train.max_epochs = 0 trains nothing; pass max_epochs=N")
    return config, seed


_RESUMABLE = ("max_epochs", "progress", "eval_batch_size")


def _resume(out_dir: Path, tree: dict, meta: dict, *, resume: bool, overwrite: bool):
    def check(saved: dict) -> None:
        if saved.get("fingerprint") != meta["fingerprint"]:
            raise DataError(
                f"refusing to resume: the checkpoint in {checkpoint_dir(out_dir)} was trained "
                f"on other trials (fingerprint {saved.get('fingerprint')}, now "
                f"{meta['fingerprint']}); use a new out_dir or overwrite=True",
                field="videos",
            )
        a, b = dict(saved.get("config", {})), dict(meta["config"])
        for d in (a, b):
            d["train"] = {k: v for k, v in d.get("train", {}).items() if k not in _RESUMABLE}
        if a != b or int(saved.get("seed", -1)) != meta["seed"]:
            raise ConfigError(
                f"refusing to resume {checkpoint_dir(out_dir)} with a different config or "
                "seed (only max_epochs, progress, eval_batch_size may change); use a new "
                "out_dir or overwrite=True"
            )

    return resume_tree(out_dir, tree, check, resume=resume, overwrite=overwrite)


@dataclass
class _Loop:
    """One epoch of random clips (the ``epoch`` of :class:`Epochs`)."""

    cfg: VideoConfig
    step: Callable[..., Any]
    hparams: dict
    train: VideoTrials
    key: jax.Array
    seed: int

    def epoch(self, params, state, opt, epoch: int):
        cfg = self.cfg
        clips = epoch_clips(self.train.lengths, cfg, self.seed, epoch)
        epoch_key = jax.random.fold_in(self.key, 1 + epoch)
        metrics = []
        bs = min(cfg.train.batch_size, len(clips))
        for b, (v, r, m) in enumerate(clip_batches(self.train, clips, cfg.clip_frames, bs)):
            rng = jax.random.fold_in(epoch_key, b)
            params, state, opt, met = self.step(params, state, opt, v, r, m, rng, self.hparams)
            if not bool(met["finite"]):
                return params, state, opt, metrics, (epoch, b)
            metrics.append(met)
        return params, state, opt, metrics, None


__all__ = ["fit_video", "make_video_train_step", "video_val_score"]
