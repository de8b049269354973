"""The compiled parts of :func:`jaxsel.fit_many`: the epoch of K models (one
jitted step looped in Python, per formulation), their validation scores and the per-model
end-of-epoch bookkeeping (early stopping, restore-best, learning-rate schedule)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jaxsel._errors import ConfigError
from jaxsel._tree import tree_where
from jaxsel.models import Model, compiler_options
from jaxsel.train._losses import masked_correlation
from jaxsel.train._schedule import plateau_update
from jaxsel.train._step import make_predict, make_train_step, set_learning_rate


def make_many_epoch(
    model: Model, train, tx, *, shared_images: bool, formulation: str = "vmap", conv: str = "xla"
):
    """The epoch of K models: a Python loop over one jitted step of all K models.

    (XLA on CPU ran the same step ~14x slower inside a ``lax.scan`` over the batches:
    measured with the ``small`` config, K = 2, batch 64, 8 steps, 54 s vs 3.8 s. A dispatch
    per step costs far less than a step.)

    Returns ``epoch_fn(params, state, opt_state, failed, active, x, r, idx, mask, cols,
    seeds, epoch, hparams) -> (params, state, opt_state, failed, metrics)`` where ``idx`` is
    (steps, K, B) or (steps, B) (shared order), ``mask`` (steps, B), ``cols`` (K, n_out)
    target neurons, ``active`` (K,) models still training; ``metrics`` (K,) sums of
    ``data_loss``, ``n``, ``objective``, ``steps`` and the last ``reg``. ``conv``: how the
    convolutions are computed (:func:`jaxsel.models.conv_implementation`).
    """
    vstep = _models_step(
        model, train, tx, shared_images=shared_images, formulation=formulation, conv=conv
    )
    jstep = jax.jit(
        _batch_step(vstep, shared_images),
        donate_argnums=(0, 1, 2, 4),
        compiler_options=compiler_options(conv),
    )
    jstart = jax.jit(_epoch_start)

    def epoch_fn(
        params, state, opt_state, failed, active, x, r, idx, mask, cols, seeds, epoch, hparams
    ):
        keys, acc = jstart(seeds, epoch)
        if formulation == "loop":
            return _epoch_model_loop(
                jstep,
                (params, state, opt_state, failed, acc),
                active,
                x,
                r,
                idx,
                mask,
                cols,
                keys,
                hparams,
                shared_images,
            )
        for b in range(idx.shape[0]):
            params, state, opt_state, failed, acc = jstep(
                params,
                state,
                opt_state,
                failed,
                acc,
                active,
                x,
                r,
                idx,
                mask,
                jnp.int32(b),
                cols,
                keys,
                hparams,
            )
        return params, state, opt_state, failed, acc

    return epoch_fn


def _models_step(model: Model, train, tx, *, shared_images: bool, formulation: str, conv: str):
    """The training step of all K models at once for ``formulation`` (unjitted):
    ``vstep(params, state, opt_state, imgs, resp, mask, rngs, hparams)``."""
    if formulation == "fused":
        if not shared_images:
            raise ConfigError(
                "formulation='fused' needs one batch order for all models "
                "(order_seed or equal seeds)"
            )
        from jaxsel.train._per_neuron import make_per_neuron_step

        vstep = make_per_neuron_step(model, train, tx, conv=conv)
    elif formulation in ("vmap", "loop"):  # loop: the same step on one model at a time
        vstep = jax.vmap(
            make_train_step(model, train, tx, conv=conv),
            in_axes=(0, 0, 0, None if shared_images else 0, 0, None, 0, 0),
        )
    else:
        raise ConfigError(f"formulation = {formulation!r}: use 'vmap', 'loop' or 'fused'")
    return vstep


def _batch_step(vstep, shared_images: bool):
    """``step_fn``: batch ``b`` of the epoch for all models through ``vstep``; models not
    active (or failed) keep their state, non-finite steps mark a model failed, and the
    metrics of the good steps are summed into ``acc``."""

    def step_fn(
        params, state, opt_state, failed, acc, active, x, r, idx, mask, b, cols, keys, hparams
    ):
        ib = lax.dynamic_index_in_dim(idx, b, keepdims=False)
        mb = lax.dynamic_index_in_dim(mask, b, keepdims=False)
        imgs = x[ib]  # (B, ...) or (K, B, ...)
        if shared_images:
            resp = jnp.moveaxis(jnp.take(r[ib], cols, axis=1), 1, 0)
        else:
            resp = jax.vmap(lambda i, c: jnp.take(r[i], c, axis=1))(ib, cols)
        rngs = jax.vmap(lambda kk: jax.random.fold_in(kk, b))(keys)
        p2, s2, o2, m = vstep(params, state, opt_state, imgs, resp, mb, rngs, hparams)
        alive = active & ~failed
        params = tree_where(alive, p2, params)
        state = tree_where(alive, s2, state)
        opt_state = tree_where(alive, o2, opt_state)
        ok = alive & m["finite"]
        failed = failed | (alive & ~m["finite"])
        f = ok.astype(jnp.float32)
        acc = {
            "data_loss": acc["data_loss"] + f * jnp.where(ok, m["data_loss"], 0.0),
            "n": acc["n"] + f * m["n"],
            "objective": acc["objective"] + f * jnp.where(ok, m["loss"], 0.0),
            "steps": acc["steps"] + f,
            "reg": jnp.where(ok, m["reg"], acc["reg"]),
        }
        return params, state, opt_state, failed, acc

    return step_fn


def _epoch_start(seeds, epoch):
    """Per-model random keys of ``epoch`` and zeroed metric sums."""
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(s), 1 + epoch))(seeds)
    zero = jnp.zeros(seeds.shape, jnp.float32)
    return keys, {"data_loss": zero, "n": zero, "objective": zero, "steps": zero, "reg": zero}


def _epoch_model_loop(
    jstep, carry, active, x, r, idx, mask, cols, keys, hparams, shared_images: bool
):
    """The epoch with the step of each model called on its own (a model axis of size 1, so
    every convolution is an ordinary one): the models are split once per epoch and stacked
    again at its end. On CPU the models are dealt to :func:`loop_threads` dispatch threads
    (the models are independent, so the numbers do not depend on the interleaving)."""
    k = keys.shape[0]
    one = lambda t, i: jax.tree.map(lambda a: a[i : i + 1], t)  # noqa: E731
    models = [list(one(carry, i)) for i in range(k)]
    fixed = [one((active, cols, keys, hparams), i) for i in range(k)]
    idxs = [idx if shared_images else idx[:, i : i + 1] for i in range(k)]
    steps = [jnp.int32(b) for b in range(idx.shape[0])]

    def train(ids):
        for bb in steps:
            for i in ids:
                act, col, key, hp = fixed[i]
                models[i] = list(jstep(*models[i], act, x, r, idxs[i], mask, bb, col, key, hp))
        if ids:
            jax.block_until_ready(models[ids[-1]])

    n = min(loop_threads(), k)
    if n <= 1:
        train(list(range(k)))
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(n) as pool:
            list(pool.map(train, [list(range(j, k, n)) for j in range(n)]))
    return tuple(
        jax.tree.map(lambda *a: jnp.concatenate(a), *[m[j] for m in models]) for j in range(5)
    )


def loop_threads() -> int:
    """Threads that dispatch the per-model steps of ``formulation="loop"``: 2 on CPU with
    >= 2 cores, else 1. XLA on CPU runs one small program at a time per dispatching thread
    without filling the cores; two threads gave 53 vs 46 model-steps/s on 2 cores (the
    4-channel per-neuron CNN of ``benchmarks/``)."""
    import os

    return 2 if jax.default_backend() == "cpu" and (os.cpu_count() or 1) >= 2 else 1


def make_many_scores(model: Model):
    """``scores(params, state, xv, rv, maskv, cols) -> (K,)`` mean validation correlation
    per model; ``xv`` (steps, B, C, H, W) padded batches, ``rv`` (steps*B, N), ``maskv``
    (steps*B,). One jitted prediction per batch, looped in Python (see
    :func:`make_many_epoch` for why not ``lax.map``)."""
    predict = jax.vmap(make_predict(model), in_axes=(0, 0, None))

    @jax.jit
    def predict_batch(params, state, xv, i):
        return predict(params, state, lax.dynamic_index_in_dim(xv, i, keepdims=False))

    @jax.jit
    def correlate(preds, rv, maskv, cols):
        preds = jnp.concatenate(preds, axis=1)  # (K, steps*B, n)
        resp = jnp.moveaxis(jnp.take(rv, cols, axis=1), 1, 0)  # (K, steps*B, n)
        corr = jax.vmap(masked_correlation, in_axes=(0, 0, None))(preds, resp, maskv)
        return jnp.mean(corr, axis=-1)

    def scores(params, state, xv, rv, maskv, cols):
        preds = [predict_batch(params, state, xv, jnp.int32(i)) for i in range(xv.shape[0])]
        return correlate(preds, rv, maskv, cols)

    return scores


def end_epoch(params, state, opt_state, best_params, best_state, sched, failed, score, epoch, sv):
    active = ~sched.stopped & ~failed & (epoch < sv["max_epochs"])
    new, ev = plateau_update(
        sched,
        score,
        epoch,
        patience=sv["patience"],
        factor=sv["lr_decay_factor"],
        min_lr=sv["min_lr"],
        decay_steps=sv["lr_decay_steps"],
        tolerance=sv["tolerance"],
    )
    new = tree_where(active, new, sched)
    improved, restore = ev.improved & active, ev.restore & active
    best_params = tree_where(improved, params, best_params)
    best_state = tree_where(improved, state, best_state)
    params = tree_where(restore, best_params, params)
    state = tree_where(restore, best_state, state)
    opt_state = set_learning_rate(opt_state, new.lr)
    return params, state, opt_state, best_params, best_state, new, improved, active


end_epoch_jit = jax.jit(end_epoch, donate_argnums=(0, 1, 2, 3, 4))


__all__ = ["end_epoch", "end_epoch_jit", "loop_threads", "make_many_epoch", "make_many_scores"]
