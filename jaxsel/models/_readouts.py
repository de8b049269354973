"""Readouts: from a core's feature map to one linear drive per neuron (before ELU+1).

* :class:`GaussianReadout` (Lurz et al. 2020, neuralpredictors ``FullGaussian2d``): each
  neuron reads the feature vector at one position of the map; during training the position is
  drawn per image from N(mu, Sigma) (``grid = mu + S z``, ``Sigma = S S^T`` for ``"full"``,
  ``S = sigma I`` for ``"isotropic"``), at evaluation it is mu. Positions are clipped to
  [-1, 1]. Optionally mu comes from cortical coordinates through a small MLP
  (``grid_mean_predictor``), whose normalized inputs are carried in the ``consts`` collection.
* :class:`PyramidReadout` (seed 002, ``SpatialTransformerPyramid2d``): the feature map is
  split into a Laplacian pyramid and every level is sampled at the neuron's grid point.

Both compute ``y = sum_c w[n, c] * F(position_n)[c] + b[n]``; features are stored (neuron,
channel), initialised to ``1 / channels``; the bias starts at 0 and is set from the mean
responses when the model is initialised (:meth:`jaxsel.models.Model.init`).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxsel.models._config import ModelConfig
from jaxsel.models._sampling import bilinear_sample, laplacian_pyramid


def _uniform(lo: float, hi: float):
    def init(key, shape, dtype=jnp.float32):  # flat draw: fast XLA compile on CPU
        return jax.random.uniform(key, (math.prod(shape),), dtype, lo, hi).reshape(shape)

    return init


def normalize_source_grid(coords) -> np.ndarray:
    """Centre cortical coordinates and scale them into [-1, 1] (neuralpredictors convention)."""
    g = np.asarray(coords, np.float64)
    g = g - g.mean(axis=0, keepdims=True)
    scale = np.abs(g).max()
    return (g / (scale if scale > 0 else 1.0)).astype(np.float32)


def sample_grid(mu, sigma, z, gauss_type: str = "full"):
    """Readout positions ``clip(mu + S z, -1, 1)``.

    Args:
      mu: (neuron, 2) mean positions.
      sigma: (neuron, 2, 2) square root of the covariance (``"full"``: ``grid = mu + sigma @ z``)
        or (neuron, 1) standard deviation (``"isotropic"``: ``grid = mu + |sigma| z``).
      z: (batch, neuron, 2) standard normal samples (zeros give the mean).
      gauss_type: ``"full"`` or ``"isotropic"``.

    Returns:
      (batch, neuron, 2) positions in [-1, 1].
    """
    if gauss_type == "full":
        grid = mu[None] + jnp.einsum("nij,bnj->bni", sigma, z)
    else:
        grid = mu[None] + jnp.abs(sigma)[None] * z
    return jnp.clip(grid, -1.0, 1.0)


class GridMeanPredictor(nn.Module):
    """MLP from (neuron, d) normalized cortical coordinates to (neuron, 2) positions."""

    hidden_layers: int
    hidden_features: int
    final_tanh: bool

    @nn.compact
    def __call__(self, src):
        h = src
        for i in range(self.hidden_layers):
            h = nn.elu(nn.Dense(self.hidden_features, name=f"hidden{i}")(h))
        h = nn.Dense(2, name="out")(h)
        return jnp.tanh(h) if self.final_tanh else h


class GaussianReadout(nn.Module):
    """Gaussian readout; input (batch, H, W, C) features, output (batch, neuron) drives."""

    cfg: ModelConfig
    n_neurons: int

    def positions(self):
        """(neuron, 2) mean positions mu in [-1, 1] (``[x, y]``)."""
        cfg, n = self.cfg, self.n_neurons
        gmp = cfg.grid_mean_predictor
        if gmp is None:
            mu = self.param("mu", _uniform(-cfg.init_mu_range, cfg.init_mu_range), (n, 2))
        else:
            src = self.variable(
                "consts", "source_grid", lambda: jnp.zeros((n, gmp.input_dimensions), jnp.float32)
            )
            mu = GridMeanPredictor(
                gmp.hidden_layers, gmp.hidden_features, gmp.final_tanh, name="grid_mean_predictor"
            )(src.value)
        return jnp.clip(mu, -1.0, 1.0)

    @nn.compact
    def __call__(self, features, train: bool):
        cfg, n = self.cfg, self.n_neurons
        b, c = features.shape[0], features.shape[-1]
        mu = self.positions()
        if cfg.gauss_type == "full":
            sigma = self.param("sigma", _uniform(-cfg.init_sigma, cfg.init_sigma), (n, 2, 2))
        else:
            sigma = self.param("sigma", nn.initializers.constant(cfg.init_sigma), (n, 1))
        weights = self.param("features", nn.initializers.constant(1.0 / c), (n, c))
        bias = self.param("bias", nn.initializers.zeros, (n,))
        if train:
            z = jax.random.normal(self.make_rng("sample"), (b * n * 2,), features.dtype).reshape(
                b, n, 2
            )
            grid = sample_grid(mu, sigma, z, cfg.gauss_type)
        else:
            grid = mu
        if cfg.positive_features:
            weights = jnp.maximum(weights, 0.0)
        v = bilinear_sample(features, grid)  # (b, n, c)
        return jnp.einsum("bnc,nc->bn", v, weights) + bias


class PyramidReadout(nn.Module):
    """Laplacian-pyramid readout (one grid point per neuron sampled at every level)."""

    cfg: ModelConfig
    n_neurons: int

    def positions(self):
        return jnp.clip(self.get_variable("params", "grid"), -1.0, 1.0)

    @nn.compact
    def __call__(self, features, train: bool):
        cfg, n = self.cfg, self.n_neurons
        c = features.shape[-1]
        m = cfg.pyramid_levels + 1
        grid = self.param("grid", _uniform(-cfg.init_mu_range, cfg.init_mu_range), (n, 2))
        weights = self.param("features", nn.initializers.constant(1.0 / c), (n, m * c))
        bias = self.param("bias", nn.initializers.zeros, (n,))
        if cfg.positive_features:
            weights = jnp.maximum(weights, 0.0)
        grid = jnp.clip(grid, -1.0, 1.0)
        levels = laplacian_pyramid(features, cfg.pyramid_levels, cfg.pyramid_filter)
        v = jnp.concatenate([bilinear_sample(lv, grid) for lv in levels], axis=-1)
        return jnp.einsum("bnc,nc->bn", v, weights) + bias


__all__ = [
    "GaussianReadout",
    "GridMeanPredictor",
    "PyramidReadout",
    "normalize_source_grid",
    "sample_grid",
]
