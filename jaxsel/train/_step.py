"""The training step and prediction for ONE model, as pure functions of plain pytrees.

Designed to be ``jax.vmap``-ed over a leading model axis (ensembles, sweeps, per-neuron
models): every per-model quantity is an array argument — parameters, BN state, optimizer state
(with the learning rate inside, via ``optax.inject_hyperparams``) and ``hparams`` (regularizer
strengths and the loss scale).

Example (one model)::

    model = build_model(cfg.model, image_shape=(1, 36, 64), n_neurons=N)
    tx = make_optimizer(cfg.train.lr)
    step = jax.jit(make_train_step(model, cfg.train), donate_argnums=(0, 1, 2))
    params, state = model.init(key)
    opt_state = tx.init(params)
    hp = make_hparams(cfg, n_train=4000)
    params, state, opt_state, metrics = step(params, state, opt_state, x, r, mask, rng, hp)

Many models: ``jax.vmap(make_train_step(...), in_axes=(0, 0, 0, None, None, None, 0, 0))``.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import optax

from jaxsel._errors import ConfigError
from jaxsel.models import Model, conv_implementation, default_hparams
from jaxsel.train._config import Config, TrainConfig
from jaxsel.train._losses import LOSSES, fit_zig_parameters, gamma_loss

LOSS_PARAMETERS = ("zig_gate", "zig_shape", "zig_loc")
"""``hparams`` entries that are per-neuron parameters of the loss (passed to it by name)."""


def make_optimizer(lr: float) -> optax.GradientTransformation:
    """Adam with the learning rate as an injected (per-model settable) hyperparameter."""
    return optax.inject_hyperparams(optax.adam)(learning_rate=lr)


def set_learning_rate(opt_state, lr):
    """The optimizer state with its injected learning rate replaced by ``lr`` (pure)."""
    hp = dict(opt_state.hyperparams)
    # a fresh array: the optimizer state is donated to the step, ``lr`` must stay valid
    hp["learning_rate"] = jnp.array(lr, jnp.asarray(hp["learning_rate"]).dtype, copy=True)
    return opt_state._replace(hyperparams=hp)


def get_learning_rate(opt_state):
    return opt_state.hyperparams["learning_rate"]


def make_hparams(cfg: Config, n_train: int, responses=None) -> dict:
    """Per-model hyperparameters as float32 arrays: regularizer strengths and ``loss_scale``.

    ``loss_scale = sqrt(n_train / batch_size)`` if ``cfg.train.scale_loss`` else 1. With
    ``cfg.train.loss == "zig"`` also the loss's per-neuron parameters
    (:func:`~jaxsel.train.fit_zig_parameters` of ``responses``, the (trial, neuron) train
    responses in model units).
    """
    hp = default_hparams(cfg.model)
    t = cfg.train
    scale = math.sqrt(max(n_train, 1) / t.batch_size) if t.scale_loss else 1.0
    hp["loss_scale"] = jnp.float32(scale)
    if t.loss == "zig":
        if responses is None:
            raise ConfigError(
                "train.loss = 'zig' needs per-neuron loss parameters that only jaxsel.fit "
                "estimates; fit each model with fit, or use loss = 'poisson' with fit_many"
            )
        hp.update({k: jnp.asarray(v) for k, v in fit_zig_parameters(responses).items()})
    return hp


def loss_parameters(hparams: dict) -> dict:
    """The per-neuron loss parameters held in ``hparams`` (none for most losses)."""
    return {k: hparams[k] for k in LOSS_PARAMETERS if k in hparams}


def loss_fn_for(train: TrainConfig):
    if train.loss == "gamma":
        return partial(gamma_loss, shape=train.gamma_shape)
    return LOSSES[train.loss]


def make_train_step(
    model: Model,
    train: TrainConfig,
    tx: optax.GradientTransformation | None = None,
    *,
    mask_batchnorm: bool = False,
    conv: str = "xla",
):
    """The pure training step for one model.

    Returns ``step(params, state, opt_state, images, responses, mask, rng, hparams) ->
    (params, state, opt_state, metrics)`` where ``images`` (batch, channel, y, x) are
    standardized, ``responses`` (batch, neuron) in model units, ``mask`` (batch,) bool marks
    real trials. The objective is ``hparams['loss_scale'] * sum(mask * loss) +
    model.regularizer(params, hparams)``. If the objective or any gradient is not finite,
    parameters, state and optimizer state are returned unchanged and ``metrics['finite']`` is
    False. ``metrics``: ``loss`` (objective), ``data_loss`` (summed masked loss), ``reg``,
    ``n`` (real trials), ``finite``.

    ``mask_batchnorm=True`` also excludes the padding of a last batch from the BatchNorm
    batch statistics (``Model.apply(mask=...)``). Off by default so that every training
    path (``fit``, ``fit_many``, the fused per-neuron step) computes the same numbers.

    ``conv`` picks how the core's convolutions are computed (same results up to float32
    rounding): ``"xla"``, ``"fft"`` or ``"shifted"`` (:func:`jaxsel.models.conv_implementation`).
    """
    tx = tx or make_optimizer(train.lr)
    loss_fn = loss_fn_for(train)
    eps = train.eps

    def step(params, state, opt_state, images, responses, mask, rng, hparams):
        maskf = mask.astype(jnp.float32)

        def objective(p):
            with conv_implementation(conv):
                rates, new_state = model.apply(
                    p, state, images, train=True, rng=rng, mask=mask if mask_batchnorm else None
                )
            loss = loss_fn(rates, responses, eps, **loss_parameters(hparams))
            data = jnp.sum(loss * maskf[:, None])
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

        metrics = {
            "loss": total,
            "data_loss": data,
            "reg": reg,
            "n": jnp.sum(maskf),
            "finite": finite,
        }
        return (keep(new_params, params), keep(new_state, state), keep(new_opt, opt_state), metrics)

    return step


def make_predict(model: Model):
    """``predict(params, state, images) -> rates`` in eval mode (model units)."""

    def predict(params, state, images):
        return model.apply(params, state, images, train=False)[0]

    return predict


__all__ = [
    "get_learning_rate",
    "make_hparams",
    "make_optimizer",
    "make_predict",
    "make_train_step",
    "set_learning_rate",
]
