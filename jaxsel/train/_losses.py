"""Losses and scores as pure, jittable, vmappable functions.

All losses are elementwise over (batch, neuron); callers sum with a mask. ``f`` is the
predicted rate (> 0), ``r`` the observed response.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy.special import gammaln


def poisson_loss(f, r, eps: float = 1e-8):
    """Poisson negative log-likelihood without the constant: ``f - r log(f + eps)``."""
    return f - r * jnp.log(f + eps)


def mse_loss(f, r, eps: float = 0.0):
    """Squared error ``(f - r)^2`` (Gaussian likelihood with fixed variance)."""
    del eps
    return (f - r) ** 2


def gamma_loss(f, r, eps: float = 1e-8, shape: float = 1.0):
    """Gamma negative log-likelihood with mean ``f`` and fixed ``shape`` (no constants):
    ``shape * (r / (f + eps) + log(f + eps))``."""
    return shape * (r / (f + eps) + jnp.log(f + eps))


LOSSES = {"poisson": poisson_loss, "mse": mse_loss, "gamma": gamma_loss}


def poisson_loglik(f, r, eps: float = 1e-8):
    """Full Poisson log-likelihood ``r log f - f - log r!`` (nats), elementwise."""
    return r * jnp.log(f + eps) - f - gammaln(r + 1.0)


def masked_correlation(pred, resp, mask=None, eps: float = 1e-12):
    """Pearson correlation per neuron over the (masked) trials.

    Args:
      pred, resp: (trial, neuron).
      mask: (trial,) bool or weights; None uses all trials.

    Returns:
      (neuron,) correlations; 0 where either variable is constant.
    """
    pred = jnp.asarray(pred, jnp.float32)
    resp = jnp.asarray(resp, jnp.float32)
    w = jnp.ones(pred.shape[0], jnp.float32) if mask is None else jnp.asarray(mask, jnp.float32)
    w = w[:, None]
    n = jnp.maximum(jnp.sum(w), 1.0)
    mp = jnp.sum(w * pred, 0) / n
    mr = jnp.sum(w * resp, 0) / n
    dp = (pred - mp) * w
    dr = (resp - mr) * w
    cov = jnp.sum(dp * dr, 0)
    vp = jnp.sum(dp * dp, 0)
    vr = jnp.sum(dr * dr, 0)
    ok = (vp > eps) & (vr > eps)
    return jnp.where(ok, cov / jnp.sqrt(jnp.where(ok, vp * vr, 1.0)), 0.0)


__all__ = [
    "LOSSES",
    "gamma_loss",
    "masked_correlation",
    "mse_loss",
    "poisson_loglik",
    "poisson_loss",
]
