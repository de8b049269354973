"""Variants of :func:`optimize_meis` with another objective: most inhibitory inputs,
discriminative MEIs (against a comparison group) and diverse MEIs (several per neuron)."""

from __future__ import annotations

import xarray as xr

from jaxsel.insilico._mei import optimize_meis
from jaxsel.insilico._mei_config import MEIConfig


def most_inhibitory_inputs(fn, params, neurons=None, *, config: MEIConfig, **kwargs) -> xr.Dataset:
    """Inputs that minimise each neuron's rate (same options as :func:`optimize_meis`)."""
    return optimize_meis(fn, params, neurons, config=config.replace(objective="min"), **kwargs)


def discriminative_meis(
    fn, params, neurons=None, *, group, config: MEIConfig, rate_scale=None, **kwargs
) -> xr.Dataset:
    """Inputs that drive each target neuron more than the mean of a comparison group.

    The objective is ``r_i / s_i - mean_{j in group, j != i} r_j / s_j`` with ``s`` =
    ``rate_scale`` (e.g. each neuron's mean response, so all neurons count alike).
    """
    return optimize_meis(
        fn,
        params,
        neurons,
        config=config.replace(objective="discriminative"),
        group=group,
        rate_scale=rate_scale,
        **kwargs,
    )


def diverse_meis(
    fn,
    params,
    neurons=None,
    *,
    config: MEIConfig,
    n_variants: int = 4,
    diversity_weight: float = 1.0,
    **kwargs,
) -> xr.Dataset:
    """Several MEIs per neuron, optimised jointly with a pairwise-similarity penalty.

    The objective of a job is ``sum_k f_i(x_k) - diversity_weight * mean_{k != l}
    cos(x_k, x_l)``; the result has a ``variant`` dimension. Choose ``diversity_weight`` on
    the scale of the neuron's rates.
    """
    cfg = config.replace(n_variants=int(n_variants), diversity_weight=float(diversity_weight))
    return optimize_meis(fn, params, neurons, config=cfg, **kwargs)
