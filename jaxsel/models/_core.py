"""The stacked convolutional core (Lurz 2020 / Sensorium / seed 002), as a Flax Linen module.

Layer ``l``: conv (no bias when followed by BN) -> [avg-pool] -> [BatchNorm] -> ELU. The first
layer uses ``input_kern``; hidden layers use ``hidden_kern``, optionally depth-separable
(1x1 -> depthwise kxk -> 1x1). Parameters live under ``layer{l}_conv`` (``kernel`` (kh, kw,
in, out); depth-separable: ``in_depth``, ``spatial``, ``out_depth``) and ``layer{l}_bn``.
Conv + average pooling runs as one strided convolution (:class:`ConvPool`).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxsel.models._config import ModelConfig


def glorot_normal_flat(key, shape, dtype=jnp.float32):
    """Xavier/Glorot normal (truncated at 2 sd, as ``nn.initializers.glorot_normal``) for a
    (kh, kw, in, out) kernel, drawn as a flat vector and reshaped: XLA on CPU compiles
    random draws of small 4-D shapes very slowly (seconds per kernel)."""
    receptive = math.prod(shape[:-2])
    fan_in, fan_out = receptive * shape[-2], receptive * shape[-1]
    std = math.sqrt(2.0 / (fan_in + fan_out)) / 0.87962566103423978
    flat = jax.random.truncated_normal(key, -2.0, 2.0, (math.prod(shape),), dtype)
    return (flat * std).reshape(shape)


_conv_init = glorot_normal_flat


def pooled_kernel(kernel, pool: int) -> jax.Array:
    """The (k+P-1, k+P-1, in, out) kernel of "k x k conv, then P x P average pooling" as one
    stride-P convolution: ``kernel`` convolved (full) with a P x P box / P^2."""
    if pool == 1:
        return kernel
    k = kernel.shape[0]
    kp = jnp.pad(kernel, ((pool - 1, pool - 1), (pool - 1, pool - 1), (0, 0), (0, 0)))
    n = k + pool - 1
    total = sum(
        kp[pool - 1 - a : pool - 1 - a + n, pool - 1 - b : pool - 1 - b + n]
        for a in range(pool)
        for b in range(pool)
    )
    return jnp.asarray(total) / pool**2


def conv_padding(kernel_size: int, padding: str) -> tuple[int, int]:
    """(lo, hi) zero padding of one axis for ``"SAME"`` (XLA's convention: the extra pad of
    an even kernel goes after) or ``"VALID"``."""
    if padding == "SAME":
        return (kernel_size - 1) // 2, kernel_size // 2
    return 0, 0


class ConvPool(nn.Module):
    """A square conv (stride 1, 'SAME' or 'VALID') followed by P x P average pooling (stride
    P, floor), computed as a single stride-P convolution with :func:`pooled_kernel`: the same
    result with ~P^2 fewer multiply-adds (the first layer's conv is the costliest part of a
    small core on CPU). Parameters: ``kernel`` (k, k, in, out) [and ``bias``], exactly as
    ``nn.Conv``."""

    features: int
    kernel_size: int
    pool: int = 1
    padding: str = "SAME"
    use_bias: bool = False

    @nn.compact
    def __call__(self, x):
        k = self.kernel_size
        kernel = self.param("kernel", _conv_init, (k, k, x.shape[-1], self.features))
        lo, hi = conv_padding(k, self.padding)
        y = jax.lax.conv_general_dilated(
            x,
            pooled_kernel(kernel, self.pool).astype(x.dtype),
            (self.pool, self.pool),
            ((lo, hi), (lo, hi)),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
        return y


class DepthSeparableConv(nn.Module):
    """1x1 conv -> depthwise kxk conv -> 1x1 conv (neuralpredictors ``DepthSeparableConv2d``)."""

    features: int
    kernel: int
    dilation: int = 1
    use_bias: bool = False

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(
            self.features, (1, 1), use_bias=self.use_bias, kernel_init=_conv_init, name="in_depth"
        )(x)
        x = nn.Conv(
            self.features,
            (self.kernel, self.kernel),
            padding="SAME",
            kernel_dilation=self.dilation,
            feature_group_count=self.features,
            use_bias=self.use_bias,
            kernel_init=_conv_init,
            name="spatial",
        )(x)
        return nn.Conv(
            self.features, (1, 1), use_bias=self.use_bias, kernel_init=_conv_init, name="out_depth"
        )(x)


class StackedCore(nn.Module):
    """Stacked conv core; input NHWC standardized images, output NHWC feature map."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, x, train: bool, mask=None):
        """Args: x (batch, y, x, channel); train: BN batch statistics; mask: optional (batch,)
        bool, the trials BN statistics are computed from (padding excluded)."""
        cfg = self.cfg
        outs = []
        for layer in range(cfg.layers):
            if layer == 0:
                inp = x
            elif cfg.skip > 1:
                inp = jnp.concatenate(outs[-min(cfg.skip, layer) :], axis=-1)
            else:
                inp = outs[-1]
            pool = cfg.pooling if layer == 0 else cfg.hidden_pooling
            h = self._conv(layer, inp, pool)
            if cfg.batch_norm:
                h = nn.BatchNorm(
                    use_running_average=not train,
                    momentum=cfg.bn_momentum,
                    epsilon=1e-5,
                    name=f"layer{layer}_bn",
                )(h, mask=batchnorm_mask(mask, h) if train else None)
            last = layer == cfg.layers - 1
            if not cfg.linear and (not last or cfg.final_nonlinearity):
                h = nn.elu(h)
            outs.append(h)
        idx = range(cfg.layers) if cfg.stack is None else [s % cfg.layers for s in cfg.stack]
        return jnp.concatenate([outs[i] for i in idx], axis=-1)

    def _conv(self, layer: int, x, pool: int):
        """Conv of layer ``layer`` followed by ``pool`` x ``pool`` average pooling."""
        cfg = self.cfg
        bias = not cfg.batch_norm
        name = f"layer{layer}_conv"
        if layer == 0:
            return ConvPool(
                cfg.hidden_channels,
                cfg.input_kern,
                pool,
                "SAME" if cfg.pad_input else "VALID",
                bias,
                name=name,
            )(x)
        if cfg.depth_separable or cfg.hidden_dilation > 1:
            if cfg.depth_separable:
                h = DepthSeparableConv(
                    cfg.hidden_channels, cfg.hidden_kern, cfg.hidden_dilation, bias, name=name
                )(x)
            else:
                k = cfg.hidden_kern
                h = nn.Conv(
                    cfg.hidden_channels,
                    (k, k),
                    padding="SAME",
                    kernel_dilation=cfg.hidden_dilation,
                    use_bias=bias,
                    kernel_init=_conv_init,
                    name=name,
                )(x)
            return nn.avg_pool(h, (pool, pool), strides=(pool, pool)) if pool > 1 else h
        return ConvPool(cfg.hidden_channels, cfg.hidden_kern, pool, "SAME", bias, name=name)(x)


def batchnorm_mask(mask, h):
    """(batch,) trial mask -> BatchNorm mask of h's shape (None stays None)."""
    if mask is None:
        return None
    return jnp.broadcast_to(mask.reshape((-1,) + (1,) * (h.ndim - 1)), h.shape)


def first_layer_kernel(core_params: dict):
    """The (kh, kw, in, out) kernel of the first core layer."""
    return core_params["layer0_conv"]["kernel"]


def hidden_kernels(core_params: dict, cfg: ModelConfig) -> list:
    """The spatial (kh, kw, in, out) kernels of the hidden layers (depthwise ones if separable)."""
    out = []
    for layer in range(1, cfg.layers):
        p = core_params[f"layer{layer}_conv"]
        out.append(p["spatial"]["kernel"] if cfg.depth_separable else p["kernel"])
    return out


def output_channels(cfg: ModelConfig) -> int:
    """Channels of the core's output (the stacked layers)."""
    n = cfg.layers if cfg.stack is None else len(cfg.stack)
    return n * cfg.hidden_channels


def output_size(cfg: ModelConfig, height: int, width: int) -> tuple[int, int]:
    """Spatial size (H, W) of the core's output for an input of (height, width)."""
    h, w = height, width
    if not cfg.pad_input:
        h, w = h - cfg.input_kern + 1, w - cfg.input_kern + 1
    h, w = h // cfg.pooling, w // cfg.pooling
    for _ in range(1, cfg.layers):
        h, w = h // cfg.hidden_pooling, w // cfg.hidden_pooling
    return h, w


__all__ = [
    "ConvPool",
    "DepthSeparableConv",
    "StackedCore",
    "batchnorm_mask",
    "conv_padding",
    "first_layer_kernel",
    "hidden_kernels",
    "output_channels",
    "output_size",
    "pooled_kernel",
]
