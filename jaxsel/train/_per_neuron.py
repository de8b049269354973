"""A faster step for many models that see the same images (per-neuron CNNs, shared batches).

``jax.vmap`` of a single-model step turns every per-model convolution into a grouped
convolution (``feature_group_count = K``), which XLA runs slowly on CPU. When all models see
the same batch, the first layer is the same computation for every model up to its kernel:
all K first-layer kernels are concatenated into ONE ordinary convolution with K x channels
outputs (``fused`` first layer). The remaining layers run per model under ``vmap``, as XLA
convolutions (``conv="xla"``: grouped convolutions) or by one of the other implementations
of :func:`jaxsel.models.conv_implementation` (``"fft"``: batched FFTs; ``"shifted"``: batched dots).
The math is the single-model step of
:func:`jaxsel.train.make_train_step` (same loss, regularizer, Adam, constraints,
finite check), implemented by intercepting the Flax convolutions of the model, so results
equal the vmapped step up to float32 reordering (tested).

Example::

    step = jax.jit(make_per_neuron_step(model, cfg.train))
    params, state, opt_state, m = step(params, state, opt_state, images, responses, mask,
                                       rngs, hparams)   # images (B, C, H, W) shared
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from jax import lax

from jaxsel.models import Model, ModelConfig, conv_implementation, conv_padding, pooled_kernel
from jaxsel.train._step import loss_fn_for, make_optimizer


def choose_formulation(cfg: ModelConfig, *, shared_images: bool, n_models: int) -> str:
    """The formulation ``fit_many(formulation="auto")`` uses: ``"loop"`` on CPU, ``"vmap"``
    elsewhere.

    ``vmap`` over per-model convolution kernels becomes a grouped convolution, which XLA on
    CPU runs very slowly (measured, benchmarks/per_neuron_jax.py and the bench harness: 100
    per-neuron CNNs, vmap ~2-10x slower than calling the one-model step per model; grouped
    hidden convs of the "fused" step were slower still). With FFT convolutions (``conv=
    "fft"``) vmap has no grouped convolution, but the loop was still faster (4-channel
    per-neuron CNNs: 46 vs 30 model-steps/s): one model's maps stay in cache. On
    accelerators the vmapped step is one batched kernel launch per layer and is used.
    """
    del cfg, shared_images, n_models
    return "loop" if jax.default_backend() == "cpu" else "vmap"


def _fused_first_layer(cfg: ModelConfig, kernel, bias, x):
    """All models' first layer as one conv: kernel (K, kh, kw, Cin, C), x (B, H, W, Cin)
    -> (K, B, H', W', C), as the core's convolution layer (pooling included)."""
    k, kh, kw, cin, c = kernel.shape
    pool = cfg.pooling
    w = jnp.moveaxis(kernel, 0, -2).reshape(kh, kw, cin, k * c)  # (kh, kw, Cin, K*C)
    lo, hi = conv_padding(kh, "SAME" if cfg.pad_input else "VALID")
    y = lax.conv_general_dilated(
        x,
        pooled_kernel(w, pool),
        (pool, pool),
        ((lo, hi), (lo, hi)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    y = jnp.moveaxis(y.reshape(y.shape[:3] + (k, c)), 3, 0)
    if bias is not None:
        y = y + bias[:, None, None, None, :]
    return y


def make_per_neuron_step(
    model: Model,
    train,
    tx: optax.GradientTransformation | None = None,
    *,
    conv: str = "xla",
    fuse_first: bool = True,
):
    """The step of K models sharing one batch of images (stacked pytrees, one program).

    Args:
      model: the (single-model) :class:`~jaxsel.models.Model`.
      train: its :class:`~jaxsel.train.TrainConfig`.
      tx: the optimizer (default ``make_optimizer(train.lr)``; per-model learning rates
        live in the stacked optimizer state).
      conv: how the other convolutions are computed, one of
        ``"xla"``, ``"fft"``, ``"shifted"`` (``"xla"``: grouped convolutions under
        ``vmap``; ``"fft"``, ``"shifted"``).
      fuse_first: compute all first layers as one conv (CNN models).

    Returns:
      ``step(params, state, opt_state, images, responses, mask, rngs, hparams) ->
      (params, state, opt_state, metrics)`` with a leading model axis K on params, state,
      opt_state, responses (K, B, n), rngs (K,) and hparams leaves (K,); ``images``
      (B, C, H, W) and ``mask`` (B,) shared. Metrics are (K,) arrays as in
      :func:`~jaxsel.train.make_train_step`.
    """
    tx = tx or make_optimizer(train.lr)
    loss_fn = loss_fn_for(train)
    eps = train.eps
    cfg = model.config
    fuse = fuse_first and cfg.kind == "cnn"

    def one_model(p, s, first, images, resp, maskf, rng, hp):
        with conv_implementation(conv, replace=None if first is None else {"layer0_conv": first}):
            rates, new_state = model.apply(p, s, images, train=True, rng=rng)
        data = jnp.sum(loss_fn(rates, resp, eps) * maskf[:, None])
        reg = model.regularizer(p, hp)
        return hp["loss_scale"] * data + reg, (new_state, data, reg)

    def step(params, state, opt_state, images, responses, mask, rngs, hparams):
        maskf = mask.astype(jnp.float32)

        def objective(ps):
            if fuse:
                conv = ps["core"]["layer0_conv"]
                x = jnp.moveaxis(images, 1, -1)
                first = _fused_first_layer(cfg, conv["kernel"], conv.get("bias"), x)
                per = jax.vmap(one_model, in_axes=(0, 0, 0, None, 0, None, 0, 0))(
                    ps, state, first, images, responses, maskf, rngs, hparams
                )
            else:
                per = jax.vmap(lambda p, s, r, g, h: one_model(p, s, None, images, r, maskf, g, h))(
                    ps, state, responses, rngs, hparams
                )
            totals, aux = per
            return jnp.sum(totals), (totals, aux)

        (_, (totals, (new_state, data, reg))), grads = jax.value_and_grad(objective, has_aux=True)(
            params
        )
        updates, new_opt = jax.vmap(tx.update)(grads, opt_state, params)
        new_params = jax.vmap(model.constrain)(optax.apply_updates(params, updates))
        k = totals.shape[0]
        finite = jnp.isfinite(totals) & jnp.all(
            jnp.stack(
                [jnp.all(jnp.isfinite(g.reshape(k, -1)), axis=1) for g in jax.tree.leaves(grads)]
            ),
            axis=0,
        )

        def keep(new, old):
            return jax.tree.map(
                lambda a, b: jnp.where(finite.reshape((k,) + (1,) * (a.ndim - 1)), a, b), new, old
            )

        metrics = {
            "loss": totals,
            "data_loss": data,
            "reg": reg,
            "n": jnp.broadcast_to(jnp.sum(maskf), (k,)),
            "finite": finite,
        }
        return (keep(new_params, params), keep(new_state, state), keep(new_opt, opt_state), metrics)

    return step


__all__ = ["bench_config", "choose_formulation", "make_per_neuron_step"]


def bench_config():
    """The per-neuron CNN timed in ``benchmarks/per_neuron_jax.py`` (mirror it in PyTorch):
    2 conv layers x 8 channels, 9x9 then 5x5 kernels ('same'), avg-pool 2 after layer 0,
    BatchNorm + ELU, full Gaussian readout of 1 neuron, Poisson loss, Adam, batch 64 of
    1x36x64 images."""
    from jaxsel.models import ModelConfig
    from jaxsel.train._config import Config, TrainConfig

    return Config(
        "per_neuron_bench",
        ModelConfig(
            layers=2,
            hidden_channels=8,
            input_kern=9,
            hidden_kern=5,
            pooling=2,
            stack=None,
            gamma_input=0.1,
            gamma_readout=0.01,
            init_mu_range=0.3,
            init_sigma=0.1,
        ),
        TrainConfig(batch_size=64, progress=False),
    )
