"""Models: configs, regularizers against NumPy references, LN gradient RF, core variants,
linearized core, vmap over a model axis."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsel._errors import ConfigError
from jaxsel.models import _regularizers as R
from jaxsel.models._config import GridMeanPredictorConfig, ModelConfig, from_dict, to_dict
from jaxsel.models._model import build_model, default_hparams, elu1, elu1_inverse
from jaxsel.train._config import NAMED_CONFIGS, Config, TrainConfig, named_config
from jaxsel.train._fit import response_function

# ----------------------------------------------------------------------------- configs


def test_from_dict_rejects_unknown_key_naming_the_closest():
    with pytest.raises(
        ConfigError,
        match=r"unknown config key 'hiden_channels'.*"
        r"did you mean 'hidden_channels'",
    ):
        from_dict(ModelConfig, {"hiden_channels": 8})
    with pytest.raises(
        ConfigError,
        match=r"model.gamma_readot.*did you mean "
        r"'model.gamma_readout'",
    ):
        Config.from_dict({"model": {"gamma_readot": 1.0}})
    with pytest.raises(
        ConfigError,
        match=r"train.lerning_rate.*did you mean 'train.lr'|"
        r"unknown config key 'train.lerning_rate'",
    ):
        Config.from_dict({"train": {"lerning_rate": 1.0}})


def test_from_dict_types_nesting_and_round_trip():
    d = {
        "name": "x",
        "model": {
            "stack": [0, -1],
            "gamma_input": 2,
            "grid_mean_predictor": {"type": "cortex", "hidden_layers": 1},
        },
        "train": {"lr": 0.01, "max_epochs": 3},
    }
    cfg = Config.from_dict(d)
    assert cfg.model.stack == (0, -1) and isinstance(cfg.model.gamma_input, float)
    assert cfg.model.grid_mean_predictor == GridMeanPredictorConfig(hidden_layers=1)
    assert Config.from_dict(cfg.to_dict()) == cfg
    hash(cfg.model)  # usable as a static jit argument
    with pytest.raises(ConfigError, match=re.escape("grid_mean_predictor.hiden")):
        Config.from_dict({"model": {"grid_mean_predictor": {"hiden_layers": 1}}})
    with pytest.raises(ConfigError, match="must be an integer"):
        from_dict(ModelConfig, {"layers": "four"})
    with pytest.raises(ConfigError, match=r"readout = 'gausian'.*did you mean 'gaussian'"):
        ModelConfig(readout="gausian")
    with pytest.raises(ConfigError, match=re.escape("train.loss")):
        TrainConfig(loss="poison")


def test_named_configs():
    assert set(NAMED_CONFIGS) >= {"fens_lurz2020", "sensorium2022", "seed002", "small", "ln"}
    f = named_config("fens_lurz2020").model
    assert (
        f.input_kern,
        f.hidden_kern,
        f.gamma_input,
        f.gamma_readout,
        f.init_mu_range,
        f.init_sigma,
    ) == (15, 13, 1.0, 2.439, 0.55, 0.4)
    s = named_config("sensorium2022").model
    assert (
        s.input_kern,
        s.hidden_kern,
        s.depth_separable,
        s.laplace_normalized,
        s.gamma_input,
        s.gamma_readout,
    ) == (9, 7, True, True, 6.3831, 0.0076)
    p = named_config("seed002").model
    assert (
        p.layers,
        p.hidden_channels,
        p.input_kern,
        p.hidden_kern,
        p.pooling,
        p.readout,
        p.positive_features,
    ) == (3, 64, 4, 3, 2, "pyramid", True)
    t = TrainConfig()
    assert (t.lr, t.lr_decay_factor, t.patience, t.lr_decay_steps, t.min_lr, t.max_epochs) == (
        0.005,
        0.3,
        5,
        3,
        1e-4,
        200,
    )
    with pytest.raises(ConfigError, match="did you mean 'small'"):
        named_config("smal")
    based = Config.from_dict({"base": "small", "model": {"hidden_channels": 4}})
    assert (
        based.model.hidden_channels == 4
        and based.model.layers == named_config("small").model.layers
    )
    for name in NAMED_CONFIGS:  # every named config builds and runs on 36x64
        m = build_model(named_config(name).model, image_shape=(1, 36, 64), n_neurons=3)
        shapes = jax.eval_shape(
            lambda k, m=m: m.apply(
                *m.init(k, source_grid=np.zeros((3, 3))), jnp.zeros((2, 1, 36, 64))
            )[0],
            jax.random.key(0),
        )
        assert shapes.shape == (2, 3)
    assert to_dict(named_config("seed002").model)["stack"] is None
    # the method names; the former names are aliases of them
    assert named_config("pyramid") == named_config("seed002")
    assert named_config("lurz2020") == named_config("fens_lurz2020")


# ------------------------------------------------------------------------ regularizers


def laplace_ref(filters):
    lap = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], float)
    n, h, w = filters.shape
    pad = np.zeros((n, h + 2, w + 2))
    pad[:, 1:-1, 1:-1] = filters
    out = np.zeros((n, h, w))
    for a in range(3):
        for b in range(3):
            out += lap[a, b] * pad[:, a : a + h, b : b + w]
    return out


def test_laplace_regularizers_match_numpy():
    rng = np.random.default_rng(0)
    k = rng.normal(size=(5, 5, 2, 3)).astype(np.float32)  # HWIO
    filters = np.moveaxis(k.reshape(5, 5, 6), -1, 0)
    np.testing.assert_allclose(np.asarray(R.hwio_filters(jnp.asarray(k))), filters)
    lap = laplace_ref(filters.astype(np.float64))
    np.testing.assert_allclose(np.asarray(R.laplace(jnp.asarray(filters))), lap, atol=1e-5)
    assert float(R.laplace_l2(filters)) == pytest.approx((lap**2).sum() / 2, rel=1e-5)
    assert float(R.laplace_l2(filters, average=True)) == pytest.approx(
        (lap**2).mean() / 2, rel=1e-5
    )
    assert float(R.laplace_l2_norm(filters)) == pytest.approx(
        (lap**2).sum() / (filters.astype(np.float64) ** 2).sum(), rel=1e-5
    )
    # normalized variant is scale invariant; a constant interior has zero Laplacian
    assert float(R.laplace_l2_norm(3 * filters)) == pytest.approx(
        float(R.laplace_l2_norm(filters)), rel=1e-5
    )
    flat = np.zeros((1, 7, 7), np.float32)
    flat[0, 2:5, 2:5] = 1.0
    assert np.asarray(R.laplace(flat))[0, 3, 3] == 0.0


def test_group_sparsity_and_l1_match_numpy():
    rng = np.random.default_rng(1)
    ks = [rng.normal(size=(3, 3, 4, 5)), rng.normal(size=(3, 3, 5, 5))]
    ref = np.mean([np.sqrt((k**2).sum(axis=(0, 1))).mean() for k in ks])
    assert float(R.group_sparsity([jnp.asarray(k) for k in ks])) == pytest.approx(ref, rel=1e-4)
    assert float(R.group_sparsity([])) == 0.0
    assert float(R.l1(jnp.asarray(ks[0]))) == pytest.approx(np.abs(ks[0]).sum(), rel=1e-5)


def test_model_regularizer_combines_the_terms():
    cfg = ModelConfig(
        layers=3,
        hidden_channels=4,
        input_kern=5,
        hidden_kern=3,
        gamma_input=2.0,
        gamma_hidden=3.0,
        gamma_readout=0.5,
    )
    m = build_model(cfg, image_shape=(1, 12, 12), n_neurons=4)
    p, _ = m.init(jax.random.key(0))
    core = p["core"]
    want = (
        2.0 * float(R.laplace_l2(R.hwio_filters(core["layer0_conv"]["kernel"])))
        + 3.0
        * float(R.group_sparsity([core["layer1_conv"]["kernel"], core["layer2_conv"]["kernel"]]))
        + 0.5 * float(np.abs(p["readout"]["features"]).sum())
    )
    assert float(m.regularizer(p, default_hparams(cfg))) == pytest.approx(want, rel=1e-5)
    # strengths are data, not constants: zeros switch everything off, under jit too
    zero = jax.tree.map(jnp.zeros_like, default_hparams(cfg))
    assert float(jax.jit(m.regularizer)(p, zero)) == 0.0


# ------------------------------------------------------------------------------ models


def test_elu1_inverse():
    r = np.array([0.01, 0.5, 1.0, 3.0])
    np.testing.assert_allclose(np.asarray(elu1(jnp.asarray(elu1_inverse(r)))), r, rtol=1e-5)


def test_ln_gradient_rf_equals_weights_up_to_scale():
    cfg = named_config("ln").model
    m = build_model(cfg, image_shape=(1, 9, 13), n_neurons=4)
    params, state = m.init(jax.random.key(0), mean_response=np.ones(4))
    w = np.asarray(params["ln"]["linear"]["kernel"])  # (h*w*c, n)
    std = {
        "image_mean": jnp.float32(127.5),
        "image_std": jnp.float32(40.0),
        "response_scale": jnp.full((4,), 2.0, jnp.float32),
    }
    fn = response_function(m)
    p = {"params": params, "state": state, "standardizer": std}
    gray = jnp.full((1, 1, 9, 13), 127.5)
    for i in range(4):
        g = jax.grad(lambda x, i=i: fn(p, x)[0, i])(gray)
        g = np.asarray(g).reshape(-1)  # (y, x) order, c=1
        wi = w[:, i]
        scale = g @ wi / (wi @ wi)
        np.testing.assert_allclose(g, scale * wi, rtol=1e-4, atol=1e-9 * np.abs(g).max())
        assert scale > 0


@pytest.mark.parametrize(
    "kw",
    [
        dict(depth_separable=True),
        dict(skip=2, stack=None),
        dict(pooling=2, hidden_pooling=1, stack=(0, -1)),
        dict(pad_input=False, batch_norm=False),
        dict(gauss_type="isotropic", final_nonlinearity=False),
    ],
)
def test_core_variants_run(kw):
    cfg = ModelConfig(layers=3, hidden_channels=4, input_kern=5, hidden_kern=3, **kw)
    m = build_model(cfg, image_shape=(1, 16, 20), n_neurons=5)
    params, state = m.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (2, 1, 16, 20))
    r, s = m.apply(params, state, x, train=True, rng=jax.random.key(2))
    assert r.shape == (2, 5) and bool(jnp.all(r > 0))
    assert jax.tree.structure(s) == jax.tree.structure(state)
    re, _ = m.apply(params, state, x)
    assert bool(jnp.all(jnp.isfinite(re)))


@pytest.mark.parametrize(
    ("k", "pool", "padding", "hw"),
    [
        (9, 2, "SAME", (36, 64)),
        (4, 2, "SAME", (17, 20)),
        (5, 3, "VALID", (16, 19)),
        (3, 1, "SAME", (8, 9)),
    ],
)
def test_conv_pool_equals_conv_then_average_pool(k, pool, padding, hw):
    import flax.linen as nn

    from jaxsel.models._core import ConvPool

    x = jax.random.normal(jax.random.key(0), (2, *hw, 3))
    mod = ConvPool(4, k, pool, padding, use_bias=True)
    v = mod.init(jax.random.key(1), x)
    v = {"params": {**v["params"], "bias": jnp.arange(4.0)}}
    ref = nn.Conv(4, (k, k), padding=padding).apply(v, x)
    if pool > 1:
        ref = nn.avg_pool(ref, (pool, pool), strides=(pool, pool))
    got = mod.apply(v, x)
    assert got.shape == ref.shape
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), atol=1e-4, rtol=1e-4)


def test_linear_core_is_affine_before_the_output_nonlinearity():
    cfg = ModelConfig(
        layers=3, hidden_channels=4, input_kern=5, hidden_kern=3, linear=True, stack=None
    )
    m = build_model(cfg, image_shape=(1, 12, 14), n_neurons=3)
    params, state = m.init(jax.random.key(0))
    # make BN statistics non-trivial, then use eval mode (running statistics)
    _, state = m.apply(
        params,
        state,
        3 * jax.random.normal(jax.random.key(3), (8, 1, 12, 14)),
        train=True,
        rng=jax.random.key(4),
    )
    drive = lambda x: m.apply(params, state, x)[0] - 1.0  # noqa: E731  elu^-1 for >0
    # shift drives positive with a large bias so ELU is the identity
    params["readout"]["bias"] = params["readout"]["bias"] + 50.0
    a, b = (jax.random.normal(jax.random.key(k), (1, 1, 12, 14)) for k in (5, 6))
    z = jnp.zeros_like(a)
    lhs = drive(a + b) - drive(z)
    rhs = drive(a) - drive(z) + drive(b) - drive(z)
    np.testing.assert_allclose(np.asarray(lhs), np.asarray(rhs), atol=1e-3)
    nonlin = build_model(
        ModelConfig(layers=3, hidden_channels=4, input_kern=5, hidden_kern=3, stack=None),
        image_shape=(1, 12, 14),
        n_neurons=3,
    )
    p2, s2 = nonlin.init(jax.random.key(0))
    p2["readout"]["bias"] = p2["readout"]["bias"] + 50.0
    d2 = lambda x: nonlin.apply(p2, s2, x)[0] - 1.0  # noqa: E731
    assert not np.allclose(
        np.asarray(d2(a + b) - d2(z)), np.asarray(d2(a) - d2(z) + d2(b) - d2(z)), atol=1e-3
    )


@pytest.mark.parametrize("kind", ["cnn", "ln"])
def test_batchnorm_statistics_ignore_masked_padding(kind):
    cfg = ModelConfig(kind=kind, layers=2, hidden_channels=4, input_kern=5, hidden_kern=3)
    m = build_model(cfg, image_shape=(1, 10, 12), n_neurons=3)
    params, state = m.init(jax.random.key(0))
    real = jax.random.normal(jax.random.key(1), (5, 1, 10, 12))
    padded = jnp.concatenate([real, jnp.full((3, 1, 10, 12), 1e3)])
    mask = jnp.arange(8) < 5
    _, s_real = m.apply(params, state, real, train=True, rng=jax.random.key(2))
    _, s_pad = m.apply(params, state, padded, train=True, rng=jax.random.key(2), mask=mask)
    for a, b in zip(jax.tree.leaves(s_real), jax.tree.leaves(s_pad), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def test_vmap_over_a_model_axis():
    cfg = ModelConfig(layers=2, hidden_channels=4, input_kern=5, hidden_kern=3)
    m = build_model(cfg, image_shape=(1, 10, 12), n_neurons=3)
    keys = jax.random.split(jax.random.key(0), 4)
    params, state = jax.vmap(lambda k: m.init(k, mean_response=jnp.ones(3)))(keys)
    assert params["readout"]["mu"].shape == (4, 3, 2)
    x = jax.random.normal(jax.random.key(1), (2, 1, 10, 12))
    rates = jax.vmap(lambda p, s: m.apply(p, s, x)[0])(params, state)
    assert rates.shape == (4, 2, 3)
    one = m.apply(jax.tree.map(lambda a: a[2], params), jax.tree.map(lambda a: a[2], state), x)[0]
    np.testing.assert_allclose(np.asarray(rates[2]), np.asarray(one), rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(rates[0]), np.asarray(rates[1]))
