"""The fused per-neuron step equals the vmapped single-model step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _many_helpers import tiny_config, tiny_twin

from jaxsel.models._model import build_model
from jaxsel.train._many import fit_many
from jaxsel.train._per_neuron import make_per_neuron_step
from jaxsel.train._step import make_optimizer, make_train_step, set_learning_rate


@pytest.mark.slow
@pytest.mark.parametrize("conv", ["xla", "shifted", "fft"])
def test_fused_step_equals_vmap(conv):
    cfg = tiny_config()
    k, b = 3, 8
    model = build_model(cfg.model, image_shape=(1, 12, 16), n_neurons=1)
    keys = jax.random.split(jax.random.key(0), k)
    params, state = jax.vmap(lambda kk: model.init(kk))(keys)
    tx = make_optimizer(cfg.train.lr)
    opt = set_learning_rate(jax.vmap(tx.init)(params), jnp.array([0.01, 0.02, 0.05]))
    rng = np.random.default_rng(1)
    x = rng.normal(size=(b, 1, 12, 16)).astype(np.float32)
    r = rng.poisson(1.0, size=(k, b, 1)).astype(np.float32)
    mask = np.arange(b) < 6
    rngs = jax.random.split(jax.random.key(2), k)
    hp = {
        "gamma_input": jnp.array([0.1, 0.0, 1.0]),
        "gamma_hidden": jnp.zeros(k),
        "gamma_readout": jnp.array([0.05, 0.1, 0.0]),
        "loss_scale": jnp.full(k, 2.0),
    }
    ref = jax.jit(
        jax.vmap(make_train_step(model, cfg.train, tx), in_axes=(0, 0, 0, None, 0, None, 0, 0))
    )
    new = jax.jit(make_per_neuron_step(model, cfg.train, tx, conv=conv))
    a = ref(params, state, opt, x, r, mask, rngs, hp)
    c = new(params, state, opt, x, r, mask, rngs, hp)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(c), strict=True):
        np.testing.assert_allclose(
            np.asarray(u, np.float64), np.asarray(v, np.float64), atol=1e-5, rtol=1e-5
        )


@pytest.mark.parametrize(
    ("formulation", "conv"), [("fused", "xla"), ("loop", "xla"), ("loop", "fft"), ("vmap", "fft")]
)
def test_fit_many_formulations_equal_vmap(formulation, conv):
    ds, _ = tiny_twin(n_neurons=4)
    cfg = tiny_config(max_epochs=2)
    a = fit_many(cfg, ds, seeds=0, targets="per_neuron", formulation="vmap", conv="xla")
    b = fit_many(cfg, ds, seeds=0, targets="per_neuron", formulation=formulation, conv=conv)
    assert list(b.neuron_id[:, 0]) == list(ds["neuron_id"].values)
    np.testing.assert_allclose(a.best_score, b.best_score, atol=1e-5)
    for u, v in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_allclose(u, v, atol=1e-4, rtol=1e-4)
