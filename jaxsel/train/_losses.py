"""Losses and scores as pure, jittable, vmappable functions.

All losses are elementwise over (batch, neuron); callers sum with a mask. ``f`` is the
predicted rate (> 0), ``r`` the observed response.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
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


def zig_loglik(r, theta, k, loc, q, eps: float = 1e-8):
    """Zero-inflated gamma log-density (nats), elementwise, with the semantics of
    neuralpredictors' ZIG encoder: a response ``r <= loc`` is a "zero", uniform on
    ``[0, loc]`` with total probability ``1 - q``; a response ``r > loc`` is ``loc`` plus a
    gamma variable with shape ``k`` and scale ``theta``, with total probability ``q``::

        log p(r) = log(1 - q) - log(loc)                                  if r <= loc
                   log q + (k - 1) log(r - loc) - (r - loc) / theta
                         - k log theta - log Gamma(k)                     if r > loc

    Its mean is ``(1 - q) loc / 2 + q (loc + k theta)``. ``q`` is clipped to
    ``[eps, 1 - 1e-6]``.
    """
    q = jnp.clip(q, eps, 1.0 - 1e-6)
    return _zig_logdensity(r, theta, k, loc, jnp.log(q), jnp.log1p(-q))


def _zig_logdensity(r, theta, k, loc, log_q, log_1mq):
    zero = r <= loc
    x = jnp.where(zero, 1.0, r - loc)  # finite in both branches (finite gradients)
    log_zero = log_1mq - jnp.log(loc)
    log_pos = log_q + (k - 1.0) * jnp.log(x) - x / theta - k * jnp.log(theta) - gammaln(k)
    return jnp.where(zero, log_zero, log_pos)


def zig_parameters(f, gate, shape, loc, eps: float = 1e-8):
    """``(theta, q)`` of the ZIG whose mean is ``f``: the non-zero probability
    ``q = 1 - exp(-f / gate)`` grows with the mean (a driven neuron is rarely silent) and the
    gamma scale ``theta`` makes ``(1 - q) loc / 2 + q (loc + shape * theta) = f``."""
    f = jnp.maximum(f, eps)
    q = jnp.maximum(-jnp.expm1(-f / gate), eps)
    theta = jnp.maximum(f - 0.5 * loc * (1.0 + q), eps) / (q * shape)
    return theta, q


def zig_loss(f, r, eps: float = 1e-8, *, zig_gate, zig_shape, zig_loc):
    """Zero-inflated gamma negative log-likelihood of ``r`` given the predicted mean ``f``.

    The per-neuron ``zig_gate``, ``zig_shape`` and ``zig_loc`` ((neuron,) arrays) come from
    :func:`fit_zig_parameters` on the train tier; ``f`` stays the conditional mean response
    (:func:`zig_parameters` maps it to the ZIG's ``theta`` and ``q``; ``log(1 - q)`` is
    ``-f / gate`` exactly, so large rates keep finite gradients).
    """
    theta, q = zig_parameters(f, zig_gate, zig_shape, zig_loc, eps)
    log_1mq = -jnp.maximum(f, eps) / zig_gate
    return -_zig_logdensity(r, theta, zig_shape, zig_loc, jnp.log(q), log_1mq)


def fit_zig_parameters(responses) -> dict:
    """Per-neuron ZIG parameters from train-tier responses (NumPy, float32 arrays).

    Moment estimates that treat each neuron's rate as constant over images (so they see the
    stimulus-driven spread as noise; they set the shape of the loss, never its mean):

    * ``zig_loc``: half the smallest positive response (responses at or below count as
      zeros; 1 for a neuron that never responds);
    * ``zig_gate``: solves ``P(zero) = exp(-mean / gate)`` for the neuron's zero fraction
      (clipped to [0.01, 0.99]) and mean response;
    * ``zig_shape``: the gamma shape of the positive responses above ``zig_loc`` (Minka's
      closed-form approximation to the maximum-likelihood shape, clipped to [0.1, 100]).

    Args:
      responses: (trial, neuron) non-negative responses.

    Returns:
      ``{"zig_gate", "zig_shape", "zig_loc"}``, each (neuron,) float32; scaling the responses
      scales ``zig_gate`` and ``zig_loc`` and keeps ``zig_shape``.
    """
    r = np.asarray(responses, np.float64)
    pos = np.where(r > 0, r, np.inf)
    smallest = pos.min(0)
    loc = np.where(np.isfinite(smallest), 0.5 * smallest, 1.0)
    zero = r <= loc[None]
    z = np.clip(zero.mean(0), 0.01, 0.99)
    gate = np.maximum(r.mean(0), 1e-6) / -np.log(z)
    x = np.where(zero, np.nan, r - loc[None])
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.log(np.nanmean(x, 0)) - np.nanmean(np.log(x), 0)
        k = (3.0 - s + np.sqrt((s - 3.0) ** 2 + 24.0 * s)) / (12.0 * s)
    k = np.clip(np.where(np.isfinite(k), k, 1.0), 0.1, 100.0)
    return {
        "zig_gate": gate.astype(np.float32),
        "zig_shape": k.astype(np.float32),
        "zig_loc": loc.astype(np.float32),
    }


LOSSES = {"poisson": poisson_loss, "mse": mse_loss, "gamma": gamma_loss, "zig": zig_loss}


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
    "fit_zig_parameters",
    "gamma_loss",
    "masked_correlation",
    "mse_loss",
    "poisson_loglik",
    "poisson_loss",
    "zig_loglik",
    "zig_loss",
    "zig_parameters",
]
