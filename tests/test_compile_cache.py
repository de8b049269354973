"""The one compile cache: ``clear_caches`` empties it; repeated fits of one config hit it."""

import jax
import pytest
from _many_helpers import tiny_config, tiny_twin

from jaxsel._compile_cache import cache_size, cached, clear_caches
from jaxsel.train._fit import fit
from jaxsel.train._fit_parts import compiled_step
from jaxsel.train._many import fit_many


@pytest.fixture(scope="module")
def ds():
    return tiny_twin(n_neurons=4)[0]


def test_clear_caches_empties_the_cache():
    builds = []
    double = cached("test_double", 1, lambda: builds.append(1) or jax.jit(lambda x: 2 * x))
    assert cached("test_double", 1, lambda: builds.append(1)) is double and builds == [1]
    assert cache_size() >= 1
    clear_caches()
    assert cache_size() == 0
    cached("test_double", 1, lambda: builds.append(1) or jax.jit(lambda x: 2 * x))
    assert builds == [1, 1]  # built again after clearing


def test_second_fit_of_a_config_compiles_once(ds):
    cfg = tiny_config(max_epochs=2)
    clear_caches()
    first = fit(cfg, ds, seed=0)
    step, predict, _ = compiled_step(first.model, cfg.train)
    n = cache_size()
    assert n >= 2  # the step (and the model init) are held
    assert step._cache_size() == 1 and predict._cache_size() == 1
    # another seed and other schedule-only fields: the same compiled step, no new entry
    fit(cfg.replace(patience=3), ds, seed=1, max_epochs=1)
    assert cache_size() == n
    again, predict_again, _ = compiled_step(first.model, cfg.train)
    assert again is step and predict_again is predict
    assert step._cache_size() == 1 and predict._cache_size() == 1
    clear_caches()
    assert cache_size() == 0
    assert compiled_step(first.model, cfg.train)[0] is not step


def test_second_fit_many_hits_the_cache(ds):
    cfg = tiny_config(max_epochs=1)
    clear_caches()
    fit_many(cfg, ds, seeds=[0, 1], formulation="vmap")
    n = cache_size()
    fit_many(cfg, ds, seeds=[2, 3], formulation="vmap")
    assert cache_size() == n
