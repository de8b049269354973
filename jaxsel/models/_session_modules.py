"""Flax modules of multi-session models: the shifted Gaussian readout, the core + readout
encoder of one session, and the small MLPs of shifters and modulators."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxsel.models._config import ModelConfig
from jaxsel.models._core import StackedCore
from jaxsel.models._model import elu1
from jaxsel.models._readouts import GaussianReadout, sample_grid
from jaxsel.models._sampling import bilinear_sample


class SessionReadout(GaussianReadout):
    """:class:`~jaxsel.models.GaussianReadout` with a per-trial position shift and optional
    low-rank feature weights (``coeffs @ basis``). Parameters are created in the parent's
    order with the parent's initializers (``coeffs`` replaces ``features`` when low-rank)."""

    feature_rank: int = 0

    @nn.compact
    def __call__(self, features, train: bool, shift=None, basis=None):  # pyright: ignore[reportIncompatibleMethodOverride]
        cfg, n = self.cfg, self.n_neurons
        b, c = features.shape[0], features.shape[-1]
        mu = self.positions()
        if cfg.gauss_type == "full":
            sigma = self.param("sigma", uniform_init(-cfg.init_sigma, cfg.init_sigma), (n, 2, 2))
        else:
            sigma = self.param("sigma", nn.initializers.constant(cfg.init_sigma), (n, 1))
        if self.feature_rank:
            coeffs = self.param(
                "coeffs", normal_init(1.0 / math.sqrt(self.feature_rank)), (n, self.feature_rank)
            )
            assert basis is not None, "a low-rank readout needs the shared feature basis"
            weights = coeffs @ basis
        else:
            weights = self.param("features", nn.initializers.constant(1.0 / c), (n, c))
        bias = self.param("bias", nn.initializers.zeros, (n,))
        if train:
            z = jax.random.normal(self.make_rng("sample"), (b * n * 2,), features.dtype).reshape(
                b, n, 2
            )
        else:
            z = jnp.zeros((b, n, 2), features.dtype)
        if train or shift is not None:
            grid = sample_grid(mu, sigma, z, cfg.gauss_type)
            if shift is not None:
                grid = jnp.clip(grid + shift[:, None, :], -1.0, 1.0)
        else:
            grid = mu
        if cfg.positive_features:
            weights = jnp.maximum(weights, 0.0)
        v = bilinear_sample(features, grid)  # (b, n, c)
        return jnp.einsum("bnc,nc->bn", v, weights) + bias


class SessionEncoder(nn.Module):
    """Core + session readout: standardized NCHW images -> positive rates (before the gain).

    The submodules are named ``core`` and ``readout`` as in :class:`~jaxsel.models.Encoder`,
    so parameters and readout samples match the single-session model."""

    cfg: ModelConfig
    n_neurons: int
    feature_rank: int = 0

    @nn.compact
    def __call__(
        self, images, train: bool = False, mask=None, shift=None, basis=None, core_train=None
    ):
        x = jnp.moveaxis(images, 1, -1)  # NCHW -> NHWC
        f = StackedCore(self.cfg, name="core")(x, train if core_train is None else core_train, mask)
        ro = SessionReadout(self.cfg, self.n_neurons, self.feature_rank, name="readout")
        return elu1(ro(f, train, shift, basis) + self.cfg.elu_offset)


class MLP(nn.Module):
    """Dense layers with an activation between them; the last layer starts at zero (so a
    shifter starts at no shift and a modulator at gain 1)."""

    hidden_layers: int
    hidden_features: int
    out_features: int
    activation: str  # "tanh" or "elu"

    @nn.compact
    def __call__(self, x):
        act = jnp.tanh if self.activation == "tanh" else nn.elu
        for i in range(self.hidden_layers):
            x = act(nn.Dense(self.hidden_features, name=f"hidden{i}")(x))
        return nn.Dense(
            self.out_features,
            kernel_init=nn.initializers.zeros,
            bias_init=nn.initializers.zeros,
            name="out",
        )(x)


def uniform_init(lo: float, hi: float):
    def init(key, shape, dtype=jnp.float32):  # flat draw: fast XLA compile on CPU
        return jax.random.uniform(key, (math.prod(shape),), dtype, lo, hi).reshape(shape)

    return init


def normal_init(std: float):
    def init(key, shape, dtype=jnp.float32):
        return (std * jax.random.normal(key, (math.prod(shape),), dtype)).reshape(shape)

    return init


__all__ = ["MLP", "SessionEncoder", "SessionReadout", "normal_init", "uniform_init"]
