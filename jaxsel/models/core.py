"""The stacked convolutional core (Lurz 2020 / Sensorium / seed 002), as a Flax Linen module.

Layer ``l``: conv (no bias when followed by BN) -> [avg-pool] -> [BatchNorm] -> ELU. The first
layer uses ``input_kern``; hidden layers use ``hidden_kern``, optionally depth-separable
(1x1 -> depthwise kxk -> 1x1). Parameters live under ``layer{l}/conv`` (or
``layer{l}/in_depth``, ``spatial``, ``out_depth``) and ``layer{l}/bn``.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxsel.models.config import ModelConfig


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


class DepthSeparableConv(nn.Module):
    """1x1 conv -> depthwise kxk conv -> 1x1 conv (neuralpredictors ``DepthSeparableConv2d``)."""

    features: int
    kernel: int
    dilation: int = 1
    use_bias: bool = False

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(self.features, (1, 1), use_bias=self.use_bias, kernel_init=_conv_init,
                    name="in_depth")(x)
        x = nn.Conv(self.features, (self.kernel, self.kernel), padding="SAME",
                    kernel_dilation=self.dilation, feature_group_count=self.features,
                    use_bias=self.use_bias, kernel_init=_conv_init, name="spatial")(x)
        return nn.Conv(self.features, (1, 1), use_bias=self.use_bias, kernel_init=_conv_init,
                       name="out_depth")(x)


class StackedCore(nn.Module):
    """Stacked conv core; input NHWC standardized images, output NHWC feature map."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, x, train: bool):
        cfg = self.cfg
        outs = []
        for layer in range(cfg.layers):
            if layer == 0:
                inp = x
            elif cfg.skip > 1:
                inp = jnp.concatenate(outs[-min(cfg.skip, layer):], axis=-1)
            else:
                inp = outs[-1]
            h = self._conv(layer, inp)
            pool = cfg.pooling if layer == 0 else cfg.hidden_pooling
            if pool > 1:
                h = nn.avg_pool(h, (pool, pool), strides=(pool, pool))
            if cfg.batch_norm:
                h = nn.BatchNorm(use_running_average=not train, momentum=cfg.bn_momentum,
                                 epsilon=1e-5, name=f"layer{layer}_bn")(h)
            last = layer == cfg.layers - 1
            if not cfg.linear and (not last or cfg.final_nonlinearity):
                h = nn.elu(h)
            outs.append(h)
        idx = range(cfg.layers) if cfg.stack is None else [s % cfg.layers for s in cfg.stack]
        return jnp.concatenate([outs[i] for i in idx], axis=-1)

    def _conv(self, layer: int, x):
        cfg = self.cfg
        bias = not cfg.batch_norm
        if layer == 0:
            k = cfg.input_kern
            return nn.Conv(cfg.hidden_channels, (k, k),
                           padding="SAME" if cfg.pad_input else "VALID", use_bias=bias,
                           kernel_init=_conv_init, name=f"layer{layer}_conv")(x)
        if cfg.depth_separable:
            return DepthSeparableConv(cfg.hidden_channels, cfg.hidden_kern, cfg.hidden_dilation,
                                      bias, name=f"layer{layer}_conv")(x)
        k = cfg.hidden_kern
        return nn.Conv(cfg.hidden_channels, (k, k), padding="SAME",
                       kernel_dilation=cfg.hidden_dilation, use_bias=bias,
                       kernel_init=_conv_init, name=f"layer{layer}_conv")(x)


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


__all__ = ["DepthSeparableConv", "StackedCore", "first_layer_kernel", "hidden_kernels",
           "output_channels", "output_size"]
