"""A faster step for many models that see the same images (per-neuron CNNs, shared batches).

``jax.vmap`` of a single-model step turns every per-model convolution into a grouped
convolution (``feature_group_count = K``), which XLA runs slowly on CPU. When all models see
the same batch, the first layer is the same computation for every model up to its kernel:
all K first-layer kernels are concatenated into ONE ordinary convolution with K x channels
outputs (``fused`` first layer). The remaining layers run per model under ``vmap``, either
as XLA convolutions (``hidden="conv"``: grouped convs) or as a sum over kernel offsets of
batched matmuls (``hidden="shifted"``: ``sum_{dy,dx} shift(x) @ W[dy, dx]``, plain batched
dots, no im2col buffer). The math is the single-model step of
:func:`jaxsel.train.step.make_train_step` (same loss, regularizer, Adam, constraints,
finite check), implemented by intercepting the Flax convolutions of the model, so results
equal the vmapped step up to float32 reordering (tested).

Example::

    step = jax.jit(make_per_neuron_step(model, cfg.train))
    params, state, opt_state, m = step(params, state, opt_state, images, responses, mask,
                                       rngs, hparams)   # images (B, C, H, W) shared
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax import lax

from jaxsel.models.config import ModelConfig
from jaxsel.models.model import Model
from jaxsel.train.step import _loss_fn, make_optimizer

HIDDEN_IMPLS = ("conv", "shifted")


def choose_formulation(cfg: ModelConfig, *, shared_images: bool, n_models: int) -> str:
    """The formulation ``fit_many(formulation="auto")`` uses: ``"loop"`` on CPU, ``"vmap"``
    elsewhere.

    ``vmap`` over per-model convolution kernels becomes a grouped convolution, which XLA on
    CPU runs very slowly (measured, benchmarks/per_neuron_jax.py and the bench harness: 100
    per-neuron CNNs, vmap ~2-10x slower than calling the one-model step per model; grouped
    hidden convs of the "fused" step were slower still). On accelerators the vmapped step is
    one batched kernel launch per layer and is used.
    """
    del cfg, shared_images, n_models
    return "loop" if jax.default_backend() == "cpu" else "vmap"


def shifted_conv(x, kernel, dilation: int = 1):
    """'SAME' stride-1 convolution as a sum over kernel offsets of matmuls.

    Args:
      x: (B, H, W, Cin) NHWC.
      kernel: (kh, kw, Cin, Cout) HWIO.

    Returns:
      (B, H, W, Cout), equal to ``lax.conv_general_dilated(..., padding="SAME")``.
    """
    kh, kw = kernel.shape[:2]
    eh, ew = (kh - 1) * dilation + 1, (kw - 1) * dilation + 1
    ph, pw = eh - 1, ew - 1
    xp = jnp.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    h, w = x.shape[1], x.shape[2]
    out = None
    for dy in range(kh):
        for dx in range(kw):
            sl = xp[:, dy * dilation:dy * dilation + h, dx * dilation:dx * dilation + w]
            term = jnp.einsum("bhwc,co->bhwo", sl, kernel[dy, dx])
            out = term if out is None else out + term
    return out


def _fused_first_layer(cfg: ModelConfig, kernel, bias, x):
    """All models' first layer as one conv: kernel (K, kh, kw, Cin, C), x (B, H, W, Cin)
    -> (K, B, H', W', C)."""
    k, kh, kw, cin, c = kernel.shape
    w = jnp.moveaxis(kernel, 0, -2).reshape(kh, kw, cin, k * c)        # (kh, kw, Cin, K*C)
    y = lax.conv_general_dilated(x, w, (1, 1), "SAME" if cfg.pad_input else "VALID",
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
    y = jnp.moveaxis(y.reshape(y.shape[:3] + (k, c)), 3, 0)
    if bias is not None:
        y = y + bias[:, None, None, None, :]
    return y


def _ones(v) -> bool:
    if v is None:
        return True
    return all(int(a) == 1 for a in (v if isinstance(v, (tuple, list)) else (v,)))


def _interceptor(first=None, hidden: str = "conv"):
    def intercept(next_fun, args, kwargs, context):
        mod = context.module
        if context.method_name != "__call__" or not isinstance(mod, nn.Conv):
            return next_fun(*args, **kwargs)
        if first is not None and mod.name == "layer0_conv":
            return first
        if (hidden == "shifted" and mod.feature_group_count == 1 and mod.padding == "SAME"
                and _ones(mod.strides)):
            x = args[0]
            kernel = mod.get_variable("params", "kernel")
            dil = mod.kernel_dilation
            dil = dil[0] if isinstance(dil, (tuple, list)) else (dil or 1)
            y = shifted_conv(x, kernel, int(dil))
            if mod.use_bias:
                y = y + mod.get_variable("params", "bias")
            return y
        return next_fun(*args, **kwargs)
    return intercept


def make_per_neuron_step(model: Model, train, tx: optax.GradientTransformation | None = None,
                         *, hidden: str = "conv", fuse_first: bool = True):
    """The step of K models sharing one batch of images (stacked pytrees, one program).

    Args:
      model: the (single-model) :class:`~jaxsel.models.model.Model`.
      train: its :class:`~jaxsel.train.config.TrainConfig`.
      tx: the optimizer (default ``make_optimizer(train.lr)``; per-model learning rates
        live in the stacked optimizer state).
      hidden: ``"conv"`` or ``"shifted"`` (see module docstring).
      fuse_first: compute all first layers as one conv (CNN models).

    Returns:
      ``step(params, state, opt_state, images, responses, mask, rngs, hparams) ->
      (params, state, opt_state, metrics)`` with a leading model axis K on params, state,
      opt_state, responses (K, B, n), rngs (K,) and hparams leaves (K,); ``images``
      (B, C, H, W) and ``mask`` (B,) shared. Metrics are (K,) arrays as in
      :func:`~jaxsel.train.step.make_train_step`.
    """
    if hidden not in HIDDEN_IMPLS:
        raise ValueError(f"hidden = {hidden!r}: use one of {HIDDEN_IMPLS}")
    tx = tx or make_optimizer(train.lr)
    loss_fn = _loss_fn(train)
    eps = train.eps
    cfg = model.config
    fuse = fuse_first and cfg.kind == "cnn"

    def one_model(p, s, first, images, resp, maskf, rng, hp):
        with nn.intercept_methods(_interceptor(first, hidden)):
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
                    ps, state, first, images, responses, maskf, rngs, hparams)
            else:
                per = jax.vmap(lambda p, s, r, g, h: one_model(p, s, None, images, r, maskf,
                                                               g, h))(
                    ps, state, responses, rngs, hparams)
            totals, aux = per
            return jnp.sum(totals), (totals, aux)

        (_, (totals, (new_state, data, reg))), grads = jax.value_and_grad(
            objective, has_aux=True)(params)
        updates, new_opt = jax.vmap(tx.update)(grads, opt_state, params)
        new_params = jax.vmap(model.constrain)(optax.apply_updates(params, updates))
        k = totals.shape[0]
        finite = jnp.isfinite(totals) & jnp.all(jnp.stack(
            [jnp.all(jnp.isfinite(g.reshape(k, -1)), axis=1) for g in jax.tree.leaves(grads)]),
            axis=0)

        def keep(new, old):
            return jax.tree.map(lambda a, b: jnp.where(
                finite.reshape((k,) + (1,) * (a.ndim - 1)), a, b), new, old)

        metrics = {"loss": totals, "data_loss": data, "reg": reg,
                   "n": jnp.broadcast_to(jnp.sum(maskf), (k,)), "finite": finite}
        return (keep(new_params, params), keep(new_state, state), keep(new_opt, opt_state),
                metrics)

    return step


__all__ = ["HIDDEN_IMPLS", "bench_config", "choose_formulation", "make_per_neuron_step",
           "shifted_conv"]


def bench_config():
    """The per-neuron CNN timed in ``benchmarks/per_neuron_jax.py`` (mirror it in PyTorch):
    2 conv layers x 8 channels, 9x9 then 5x5 kernels ('same'), avg-pool 2 after layer 0,
    BatchNorm + ELU, full Gaussian readout of 1 neuron, Poisson loss, Adam, batch 64 of
    1x36x64 images."""
    from jaxsel.models.config import ModelConfig
    from jaxsel.train.config import Config, TrainConfig
    return Config("per_neuron_bench", ModelConfig(
        layers=2, hidden_channels=8, input_kern=9, hidden_kern=5, pooling=2, stack=None,
        gamma_input=0.1, gamma_readout=0.01, init_mu_range=0.3, init_sigma=0.1),
        TrainConfig(batch_size=64, progress=False))
