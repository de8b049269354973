"""Jitted pieces of multi-session training: one session's gradients, the optimizer update
over the whole parameter tree, and one session's prediction.

The gradient function takes one session's *view* (:meth:`jaxsel.models.MultiModel.view`),
so it compiles once per distinct session shape (neurons, image size); the update compiles
once for the whole tree. One optimizer step follows one round of the LongCycler (one batch
of every session, gradients summed), as neuralpredictors' trainer does by default
(``optim_step_count = number of sessions``).
"""

from __future__ import annotations

import math
from typing import cast

import jax
import jax.numpy as jnp
import optax

from jaxsel._compile_cache import cached
from jaxsel.models import ModelConfig, MultiModel
from jaxsel.train._fit_parts import step_key
from jaxsel.train._step import loss_fn_for, make_optimizer


def session_loss_scale(train, n_train: int) -> float:
    """``sqrt(n_train / batch_size)`` of one session when ``train.scale_loss`` (else 1)."""
    return math.sqrt(max(n_train, 1) / train.batch_size) if train.scale_loss else 1.0


def make_session_grads(model: MultiModel, train, *, frozen_core: bool):
    """``grads(trainable, fixed, state, images, responses, behavior, pupil, mask, rng, hparams)
    -> (grads, new_state, metrics)`` for one session view.

    ``trainable`` holds the view's ``session`` part, and ``core``/``shared`` unless
    ``frozen_core`` (then they are in ``fixed``). The objective is ``hparams['loss_scale'] *
    sum(mask * loss) + regularizer(view)`` (the core's penalties are left out when frozen).
    """
    loss_fn = loss_fn_for(train)
    eps = train.eps

    def grads(trainable, fixed, state, images, responses, behavior, pupil, mask, rng, hparams):
        maskf = mask.astype(jnp.float32)

        def objective(t):
            view = {**fixed, **t}
            rates, new_state = model.apply(
                view,
                state,
                images,
                behavior,
                pupil,
                train=True,
                rng=rng,
                train_core=not frozen_core,
            )
            data = jnp.sum(loss_fn(rates, responses, eps) * maskf[:, None])
            reg = model.regularizer(view, hparams, include_core=not frozen_core)
            return hparams["loss_scale"] * data + reg, (new_state, data, reg)

        (total, (new_state, data, reg)), g = jax.value_and_grad(objective, has_aux=True)(trainable)
        finite = jnp.isfinite(total) & jnp.all(
            jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(g)])
        )
        return (
            g,
            new_state,
            {"loss": total, "data_loss": data, "reg": reg, "n": jnp.sum(maskf), "finite": finite},
        )

    return grads


def make_update(model: MultiModel, tx: optax.GradientTransformation):
    """``update(trainable, opt_state, grads, finite) -> (trainable, opt_state)``: one Adam
    step over the trainable tree, the readout constraints, and no change when not finite."""

    def update(trainable, opt_state, grads, finite):
        updates, new_opt = tx.update(grads, opt_state, trainable)
        new = cast(dict, optax.apply_updates(trainable, updates))
        new = {**new, **model.constrain({"sessions": new["sessions"]})}

        def keep(a, b):
            return jax.tree.map(lambda x, y: jnp.where(finite, x, y), a, b)

        return keep(new, trainable), keep(new_opt, opt_state)

    return update


def make_session_predict(model: MultiModel):
    """``predict(view_params, view_state, images, behavior, pupil) -> rates`` (eval mode)."""

    def predict(params, state, images, behavior, pupil):
        return model.apply(params, state, images, behavior, pupil, train=False)[0]

    return predict


def compiled_multi(config: ModelConfig, train, *, frozen_core: bool):
    """``(grads, update, predict, tx)`` jitted, from the one compile cache (keyed by the model
    config, the step-relevant train fields and ``frozen_core``; each jitted function then
    compiles once per session shape)."""
    key = step_key(train)
    model = MultiModel(config, {})  # the functions never look at the session shapes

    def build():
        tx = make_optimizer(key.lr)
        grads = jax.jit(make_session_grads(model, key, frozen_core=frozen_core))
        update = jax.jit(make_update(model, tx), donate_argnums=(0, 1))
        return grads, update, jax.jit(make_session_predict(model)), tx

    return cached("multi_fit_step", (config, key, bool(frozen_core)), build)


__all__ = [
    "compiled_multi",
    "make_session_grads",
    "make_session_predict",
    "make_update",
    "session_loss_scale",
]
