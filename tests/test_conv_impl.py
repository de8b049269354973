"""FFT and shifted-matmul convolutions equal XLA's, alone and inside a model (values, grads)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxsel.models._config import ModelConfig
from jaxsel.models._conv_impl import (
    _complex_matmul_ok,
    compiler_options,
    conv_implementation,
    cpu_conv_form,
    fft_conv,
    fft_is_faster_on_cpu,
    fft_kernel_grad_conv,
    fft_size,
    shifted_conv,
)
from jaxsel.models._model import build_model


def _direct(x, w, stride, padding):
    return lax.conv_general_dilated(
        x, w, (stride, stride), padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


@pytest.mark.parametrize(
    ("k", "stride", "padding"),
    [
        (3, 1, "SAME"),
        (4, 1, "SAME"),
        (7, 1, "SAME"),
        (5, 1, "VALID"),
        (4, 2, ((1, 2), (1, 2))),
        (6, 3, ((0, 0), (2, 1))),
        (9, 1, ((4, 4), (4, 4))),
    ],
)
def test_fft_conv_equals_direct(k, stride, padding):
    rng = np.random.default_rng(k)
    x = rng.normal(size=(2, 11, 17, 3)).astype(np.float32)
    w = rng.normal(size=(k, k, 3, 5)).astype(np.float32)
    ref = _direct(x, w, stride, padding)
    out = fft_conv(x, w, stride, padding)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, atol=1e-4 * float(jnp.max(jnp.abs(ref))))


@pytest.mark.parametrize(
    ("k", "stride", "padding"), [(5, 1, "SAME"), (4, 2, ((1, 2), (1, 2))), (3, 1, "VALID")]
)
def test_fft_conv_gradients_equal_direct(k, stride, padding):
    """The hand-written VJP (circular correlations) against autodiff of XLA's conv."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 10, 13, 2)).astype(np.float32)
    w = rng.normal(size=(k, k, 2, 4)).astype(np.float32)
    g = rng.normal(size=_direct(x, w, stride, padding).shape).astype(np.float32)
    grads = [
        jax.grad(lambda x, w: jnp.sum(f(x, w, stride, padding) * g), argnums=(0, 1))(x, w)
        for f in (_direct, fft_conv)
    ]
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(b, a, atol=1e-4 * float(jnp.max(jnp.abs(a))))
    # and under vmap (a model axis), as fit_many uses it
    vg = jax.vmap(
        jax.grad(lambda x, w: jnp.sum(fft_conv(x, w, stride, padding) * g), argnums=1),
        in_axes=(None, 0),
    )(x, np.stack([w, 2 * w]))
    np.testing.assert_allclose(vg[0], grads[0][1], atol=1e-4 * float(jnp.max(jnp.abs(vg[0]))))


@pytest.mark.parametrize(("cin", "cout"), [(6, 5), (1, 24)])
def test_fft_conv_matmul_mixing_equals_direct(cin, cout):
    """More than 16 channel pairs: the per-frequency mixing is a batched complex matmul."""
    rng = np.random.default_rng(cin)
    x = rng.normal(size=(3, 9, 12, cin)).astype(np.float32)
    w = rng.normal(size=(5, 5, cin, cout)).astype(np.float32)
    g = rng.normal(size=(3, 9, 12, cout)).astype(np.float32)
    out = fft_conv(x, w)
    ref = _direct(x, w, 1, "SAME")
    np.testing.assert_allclose(out, ref, atol=1e-4 * float(jnp.max(jnp.abs(ref))))
    grads = [
        jax.grad(lambda x, w: jnp.sum(f(x, w, 1, "SAME") * g), argnums=(0, 1))(x, w)
        for f in (_direct, fft_conv)
    ]
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(b, a, atol=1e-4 * float(jnp.max(jnp.abs(a))))


@pytest.mark.parametrize(("k", "padding"), [(7, "SAME"), (4, "SAME"), (3, ((0, 2), (1, 1)))])
def test_fft_kernel_grad_conv_equals_direct(k, padding):
    """XLA's forward and input gradient exactly; the kernel gradient by FFT to rounding."""
    rng = np.random.default_rng(k)
    x = rng.normal(size=(3, 10, 13, 6)).astype(np.float32)
    w = rng.normal(size=(k, k, 6, 7)).astype(np.float32)
    ref = _direct(x, w, 1, padding)
    np.testing.assert_array_equal(fft_kernel_grad_conv(x, w, padding), ref)
    g = rng.normal(size=ref.shape).astype(np.float32)
    gx, gw = jax.grad(
        lambda x, w: jnp.sum(fft_kernel_grad_conv(x, w, padding) * g), argnums=(0, 1)
    )(x, w)
    rx, rw = jax.grad(lambda x, w: jnp.sum(_direct(x, w, 1, padding) * g), argnums=(0, 1))(x, w)
    np.testing.assert_array_equal(gx, rx)
    np.testing.assert_allclose(gw, rw, atol=1e-5 * float(jnp.max(jnp.abs(rw))))
    assert not np.array_equal(gw, 1.001 * rw)  # the comparison can fail


@pytest.mark.parametrize(("k", "dil"), [(3, 1), (5, 1), (3, 2), (4, 1)])
def test_shifted_conv_equals_direct(k, dil):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 7, 9, 3)).astype(np.float32)
    w = rng.normal(size=(k, k, 3, 4)).astype(np.float32)
    ref = lax.conv_general_dilated(
        x, w, (1, 1), "SAME", rhs_dilation=(dil, dil), dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    np.testing.assert_allclose(shifted_conv(x, w, dil), ref, atol=1e-4)


def test_fft_size_has_small_factors():
    assert [fft_size(n) for n in (1, 11, 13, 39, 67, 70)] == [1, 12, 14, 40, 70, 70]


@pytest.mark.parametrize("impl", ["fft", "fft_kernel_grad", "shifted", "auto"])
@pytest.mark.parametrize(
    "arch",
    [
        dict(pooling=2, pad_input=False, input_kern=5, hidden_kern=3),  # strided first layer
        dict(input_kern=9, hidden_kern=7, hidden_channels=4),  # 'auto' takes FFT
        dict(hidden_dilation=2, hidden_kern=3, input_kern=5),
    ],
)  # dilated nn.Conv
@pytest.mark.slow
def test_model_under_other_conv_impl_equals_xla(impl, arch):
    cfg = ModelConfig(layers=2, **{"hidden_channels": 3, **arch})
    model = build_model(cfg, image_shape=(1, 14, 18), n_neurons=5)
    params, state = model.init(jax.random.key(0))
    x = np.random.default_rng(1).normal(size=(4, 1, 14, 18)).astype(np.float32)

    def loss(p):
        rates, _ = model.apply(p, state, x, train=True, rng=jax.random.key(2))
        return jnp.sum(rates**2), rates

    (_, ref), gref = jax.value_and_grad(loss, has_aux=True)(params)
    with conv_implementation(impl):
        (_, out), gout = jax.value_and_grad(loss, has_aux=True)(params)
        jaxpr = str(jax.make_jaxpr(loss)(params))
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
    for a, b in zip(jax.tree.leaves(gref), jax.tree.leaves(gout), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-4 * float(jnp.max(jnp.abs(a))))
    # the replacement really ran where it applies (and only there)
    uses_fft = "fft[" in jaxpr or "fft_type" in jaxpr
    expect_fft = impl == "fft" or (
        impl == "auto" and arch.get("input_kern") == 9 and jax.default_backend() == "cpu"
    )
    if impl == "fft_kernel_grad":  # the forward is XLA's; FFTs only in the gradient
        expect_fft = False
    assert uses_fft == expect_fft


def test_auto_takes_fft_kernel_grad_for_wide_large_kernels():
    """A 32-channel 7x7 hidden layer: 'auto' computes its kernel gradient by FFT (CPU); the
    model's loss and gradients equal XLA's."""
    cfg = ModelConfig(layers=2, hidden_channels=32, input_kern=5, hidden_kern=7)
    model = build_model(cfg, image_shape=(1, 10, 12), n_neurons=3)
    params, state = model.init(jax.random.key(0))
    x = np.random.default_rng(1).normal(size=(2, 1, 10, 12)).astype(np.float32)

    def loss(p):
        rates, _ = model.apply(p, state, x, train=True, rng=jax.random.key(2))
        return jnp.sum(rates**2)

    gref = jax.grad(loss)(params)
    with conv_implementation("auto"):
        gout = jax.grad(loss)(params)
        jaxpr = str(jax.make_jaxpr(jax.grad(loss))(params))
    for a, b in zip(jax.tree.leaves(gref), jax.tree.leaves(gout), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-4 * float(jnp.max(jnp.abs(a))))
    uses_fft = "fft[" in jaxpr or "fft_type" in jaxpr
    assert uses_fft == (jax.default_backend() == "cpu" and _complex_matmul_ok())


def test_auto_rule_matches_measured_cases():
    faster = [(9, 1, 4, 1), (7, 4, 4, 1), (5, 4, 4, 1)]
    slower = [
        (10, 1, 8, 2),
        (3, 4, 4, 1),
        (5, 1, 4, 1),
        (7, 8, 8, 1),
        (5, 8, 8, 1),
        (7, 16, 16, 1),
        (9, 1, 16, 1),
        (5, 16, 16, 1),
    ]
    assert all(fft_is_faster_on_cpu(*c) for c in faster)
    assert not any(fft_is_faster_on_cpu(*c) for c in slower)
    # (k, cin, cout, stride) -> form, from benchmarks/conv_forms.py
    wide = "fft_kernel_grad" if _complex_matmul_ok() else "xla"  # not on jax 0.11 CPU
    forms = {
        (9, 1, 4, 1): "fft",
        (7, 64, 64, 1): wide,
        (7, 32, 32, 1): wide,
        (3, 64, 64, 1): "xla",
        (9, 1, 64, 1): "xla",
        (5, 16, 16, 1): "xla",
        (7, 64, 64, 2): "xla",
    }
    assert {c: cpu_conv_form(*c) for c in forms} == forms


def test_unknown_impl_is_an_error():
    with pytest.raises(ValueError, match="fft"), conv_implementation("winograd"):
        pass


def test_compiler_options_only_for_fft_on_cpu():
    assert compiler_options("xla") is None
    opts = compiler_options("auto")
    if jax.default_backend() == "cpu" and opts is not None:
        # accepted by this XLA, and a step compiled with it computes the same numbers
        f = jax.jit(lambda v: jnp.sum(fft_conv(v, jnp.ones((3, 3, 2, 2)))), compiler_options=opts)
        v = jnp.ones((1, 5, 6, 2))
        np.testing.assert_allclose(
            f(v), jnp.sum(_direct(v, jnp.ones((3, 3, 2, 2)), 1, "SAME")), rtol=1e-5
        )
    else:
        assert opts is None
