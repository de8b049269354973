"""Shared fixtures: a cached factory of small simulated twins.

Simulating a twin costs a second or more; several test modules ask for the same one (the
same seed and sizes). ``twin_factory(**kwargs)`` simulates each distinct set of arguments
once per session and hands every caller its own deep copy, so a test that modifies its
dataset cannot leak into another module.

Usage, in a test module::

    @pytest.fixture(scope="module")
    def twin(twin_factory):
        return twin_factory(seed=2, n_neurons=24, n_train=150)
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from jaxsel.data._twin_simulate import simulate

if TYPE_CHECKING:
    import xarray as xr

    from jaxsel.data._twin import Twin


@pytest.fixture(scope="session")
def twin_factory() -> Callable[..., tuple[xr.Dataset, Twin]]:
    """``(ds, twin) = twin_factory(seed=..., **TwinConfig fields)``, memoised on its
    (hashable) keyword arguments; each call returns a fresh deep copy of the cached pair."""
    cache: dict[tuple, tuple[xr.Dataset, Twin]] = {}

    def make(**kwargs) -> tuple[xr.Dataset, Twin]:
        key = tuple(sorted(kwargs.items()))
        if key not in cache:
            cache[key] = simulate(**kwargs)
        return copy.deepcopy(cache[key])

    return make


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """``(cfg, out, result)`` of ONE tiny pipeline run with every stage (the ``TINY_RUN``
    overrides of test_pipeline.py: a 20-neuron twin, a 2-member ensemble), shared by
    test_pipeline.py and test_ensemble_pipeline.py. Read it only: a test that reruns or
    changes the run works on a copy."""
    from test_pipeline import TINY_RUN

    from jaxsel.pipeline import demo_config, run_pipeline

    out = tmp_path_factory.mktemp("run") / "tiny"
    cfg = demo_config(overrides={**TINY_RUN, "run.out": str(out)})
    return cfg, out, run_pipeline(cfg, echo=False)
