"""Observation models of the digital twin: how a noise-free rate becomes one trial's response.

Two models, both with conditional mean equal to the rate ``r`` (so the twin's rate function
stays ``E[response | image]``):

* ``"counts"``: spike counts, Poisson or, where a neuron's ``dispersion`` is finite,
  gamma-Poisson (negative binomial) with variance ``r + r^2 / dispersion``;
* ``"zig"``: calcium-like responses from a zero-inflated gamma. A trial is non-zero with
  probability ``q(r) = 1 - exp(-r / gate)`` (``gate`` per neuron, in rate units: the rate at
  which 63 % of trials are non-zero); a non-zero response is gamma with shape ``k`` (per
  neuron) and mean ``r / q(r)``, so ``E[y] = q * r / q = r``. The noise variance is
  ``r^2 * ((k + 1) / (k q) - 1)``, about ``r * gate * (k + 1) / k`` for small rates
  (Poisson-like) and ``r^2 / k`` for large ones (multiplicative).
"""

from __future__ import annotations

import numpy as np

OBSERVATIONS = ("counts", "zig")


def zig_probability(rates, gate) -> np.ndarray:
    """Probability ``1 - exp(-rates / gate)`` that a ZIG response is non-zero."""
    return -np.expm1(-np.asarray(rates, np.float64) / np.asarray(gate, np.float64))


def _positive_mean(rates, gate) -> np.ndarray:
    """``rates / q(rates)``, the mean of a non-zero ZIG response (``gate`` as ``rates -> 0``)."""
    r = np.asarray(rates, np.float64)
    q = zig_probability(r, gate)
    g = np.broadcast_to(np.asarray(gate, np.float64), r.shape)
    return np.where(q > 1e-12, r / np.maximum(q, 1e-300), g)


def sample_zig(rates, gate, shape, rng: np.random.Generator) -> np.ndarray:
    """Zero-inflated gamma responses with mean ``rates``.

    Args:
      rates: (trial, neuron) noise-free rates (>= 0).
      gate: (neuron,) rate scale of the non-zero probability ``1 - exp(-r / gate)``.
      shape: (neuron,) gamma shape of the non-zero responses.
      rng: the random generator.

    Returns:
      (trial, neuron) float32 responses: exact zeros and positive gamma values.
    """
    rates = np.asarray(rates, np.float64)
    q = zig_probability(rates, gate[None])
    nonzero = rng.random(rates.shape) < q
    k = np.broadcast_to(np.asarray(shape, np.float64)[None], rates.shape)
    values = rng.gamma(k, _positive_mean(rates, gate[None]) / k)
    return np.where(nonzero, values, 0.0).astype(np.float32)


def noise_variance(rates, params: dict) -> np.ndarray:
    """Trial-to-trial variance of the response at each noise-free rate (same shape).

    ``params`` holds ``dispersion`` (counts) or ``zig_gate`` and ``zig_shape`` (ZIG), each
    (neuron,); ``rates`` is (..., neuron).
    """
    r = np.asarray(rates, np.float64)
    if "zig_gate" in params:
        q = zig_probability(r, params["zig_gate"])
        k = np.asarray(params["zig_shape"], np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            var = r**2 * ((k + 1.0) / (k * q) - 1.0)
        # rate -> 0: q ~ r / gate, var ~ r * gate * (k + 1) / k -> 0
        return np.where(q > 1e-12, var, 0.0)
    return r + r**2 / np.asarray(params["dispersion"], np.float64)


def true_reliability(
    rates: np.ndarray, dispersion: np.ndarray, repeats: int, noise: np.ndarray | None = None
) -> dict:
    """Explainable-variance fraction and expected oracle correlation from true test rates.

    Args:
      rates: (image, neuron) noise-free rates on the test images.
      dispersion: (neuron,) gamma shape (inf for Poisson); noise var = r + r^2 / shape.
      repeats: repeats per test image (for the expected jackknife oracle).
      noise: (image, neuron) noise variances replacing the count model's (e.g. ZIG).
    """
    signal = rates.var(0)
    if noise is None:
        noise = rates + rates**2 / dispersion[None]
    noise = noise.mean(0)
    fev = signal / np.maximum(signal + noise, 1e-12)
    m = max(repeats - 1, 1)
    oracle = signal / np.sqrt(np.maximum((signal + noise) * (signal + noise / m), 1e-24))
    return {"true_fev": fev.astype(np.float32), "true_oracle": oracle.astype(np.float32)}


def sample_responses(
    rates: np.ndarray, dispersion: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Spike counts: Poisson, or gamma-Poisson (negative binomial) where dispersion is finite."""
    finite = np.isfinite(dispersion)
    shape = np.where(finite, dispersion, 1.0)[None]
    lam = np.where(finite[None], rng.gamma(shape, rates / shape), rates)
    return rng.poisson(lam).astype(np.float32)


__all__ = [
    "OBSERVATIONS",
    "noise_variance",
    "sample_responses",
    "sample_zig",
    "true_reliability",
    "zig_probability",
]
