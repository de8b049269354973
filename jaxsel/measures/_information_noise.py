"""Observation models for single-neuron information: how a noise-free rate becomes a response.

The exact information of :func:`jaxsel.measures.rate_information` needs, for each neuron,
the probability of every response value given a rate. An observation model supplies it
through a small interface (:class:`ObservationModel`):

* ``params()``: per-neuron parameter arrays ``{name: (neuron,)}`` (passed to jit as
  arguments, sliced per neuron chunk);
* ``support(max_rates, params)``: the response values summed over, a 1-D NumPy array
  ``(S,)`` (counts ``0..k_max`` for a count model; bin centres for a continuous one), for
  neurons with these largest rates (n,) and params (each (n,)), so the probability left
  out is negligible (< :data:`TAIL` per neuron and image; a mass ``eps`` left out
  changes the information by about ``eps log2(1/eps)`` bits at most);
* ``log_pmf(values, rates, params)``: a pure ``jax.numpy`` function (a ``staticmethod``, so
  it is hashable and compiled once) giving ``log P(R = value | rate)`` with shape
  ``(S, image, neuron)`` from ``values`` (S, 1, 1), ``rates`` (image, neuron) and the
  params (each (neuron,)). A continuous model returns the log probability of each bin.

Two count models are here: :class:`PoissonNoise` and :class:`GammaPoissonNoise` (negative
binomial: a Poisson count whose rate is gamma-distributed with per-neuron shape ``a``,
variance ``r + r^2 / a``; ``a = inf`` is Poisson), the digital twin's noise
(:func:`twin_noise`). Another model (e.g. zero-inflated gamma) only has to implement the
three members.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats
from jax.scipy.special import gammaln, xlogy

from jaxsel._errors import DataError

TAIL = 1e-7
"""Probability mass a count support may leave out above its largest value, per neuron."""


class ObservationModel(Protocol):
    """The interface of an observation model (see the module docstring)."""

    def params(self) -> dict[str, np.ndarray]:
        """Per-neuron parameter arrays ``{name: (neuron,)}`` (empty for none)."""
        ...

    @staticmethod
    def support(max_rates: np.ndarray, params: dict) -> np.ndarray:
        """(S,) response values to sum over for neurons with these largest rates (n,) and
        params (each (n,))."""
        ...

    @staticmethod
    def log_pmf(values, rates, params) -> jax.Array:
        """log P(R = value | rate): (S, image, neuron) from values (S, 1, 1), rates (image,
        neuron) and per-neuron params."""
        ...


def _counts_to(k_max: float) -> np.ndarray:
    return np.arange(int(np.ceil(k_max)) + 1, dtype=np.float64)


@dataclass(frozen=True)
class PoissonNoise:
    """Poisson spike counts: ``P(k | r) = r^k e^-r / k!``."""

    @staticmethod
    def support(max_rates: np.ndarray, params: dict) -> np.ndarray:
        """Counts ``0..k_max`` with ``P(k > k_max) < TAIL`` at the largest rate."""
        lam = float(np.max(max_rates, initial=0.0))
        return _counts_to(float(scipy.stats.poisson.ppf(1.0 - TAIL, max(lam, 1e-6))) + 1)

    def params(self) -> dict[str, np.ndarray]:
        """No per-neuron parameters."""
        return {}

    @staticmethod
    def log_pmf(values, rates, params) -> jax.Array:
        """Poisson log probability (S, image, neuron)."""
        return xlogy(values, rates[None]) - rates[None] - gammaln(values + 1.0)


@dataclass(frozen=True)
class GammaPoissonNoise:
    """Gamma-Poisson (negative binomial) counts with per-neuron gamma shape ``a``.

    ``P(k | r) = Gamma(k + a) / (Gamma(a) k!) (a / (a + r))^a (r / (a + r))^k``, mean ``r``,
    variance ``r + r^2 / a``; neurons with ``a = inf`` are Poisson.

    Attributes:
      shape: (neuron,) gamma shapes ``a > 0`` (``inf`` for Poisson), e.g. the twin's
        ``params["dispersion"]``.
    """

    shape: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self):
        a = np.asarray(self.shape, np.float64)
        if a.ndim != 1 or np.isnan(a).any() or (a <= 0).any():
            raise DataError(
                f"gamma shapes {a.shape} with min {a.min(initial=np.inf)}",
                field="shape",
                expected="(neuron,) values > 0 (inf for Poisson neurons)",
            )

    @staticmethod
    def support(max_rates: np.ndarray, params: dict) -> np.ndarray:
        """Counts ``0..k_max`` with ``P(k > k_max) < TAIL`` for every neuron's largest rate."""
        a = np.asarray(params["shape"], np.float64)
        r = np.maximum(np.broadcast_to(np.asarray(max_rates, np.float64), a.shape), 1e-6)
        fin = np.isfinite(a)
        k = np.zeros(len(a))
        if fin.any():
            k[fin] = scipy.stats.nbinom.ppf(1.0 - TAIL, a[fin], a[fin] / (a[fin] + r[fin]))
        if (~fin).any():
            k[~fin] = scipy.stats.poisson.ppf(1.0 - TAIL, r[~fin])
        return _counts_to(k.max(initial=0.0) + 1)

    def params(self) -> dict[str, np.ndarray]:
        """``{"shape": (neuron,)}``."""
        return {"shape": np.asarray(self.shape, np.float64)}

    @staticmethod
    def log_pmf(values, rates, params) -> jax.Array:
        """Negative-binomial log probability (S, image, neuron); Poisson where shape = inf."""
        a_raw = params["shape"][None, None]
        fin = jnp.isfinite(a_raw)
        a = jnp.where(fin, a_raw, 1.0)
        r = rates[None]
        nb = (
            gammaln(values + a)
            - gammaln(a)
            - gammaln(values + 1.0)
            + a * (jnp.log(a) - jnp.log(a + r))
            + xlogy(values, r)
            - xlogy(values, a + r)
        )
        po = xlogy(values, r) - r - gammaln(values + 1.0)
        return jnp.where(fin, nb, po)


def twin_noise(dispersion) -> PoissonNoise | GammaPoissonNoise:
    """The digital twin's observation model from its per-neuron ``dispersion`` (gamma shape,
    ``inf`` = Poisson): :class:`PoissonNoise` if every neuron is Poisson, else
    :class:`GammaPoissonNoise`.

    Args:
      dispersion: (neuron,) e.g. ``twin.params["dispersion"][idx]``.
    """
    a = np.asarray(dispersion, np.float64)
    if np.isinf(a).all():
        return PoissonNoise()
    return GammaPoissonNoise(a)
