"""Gradient RFs, sensitivity maps and cross-activation against the twin's truth and
brute-force references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsel._errors import ConfigError
from jaxsel.data._twin import optimal_stimuli, to_raw
from jaxsel.insilico import recipes
from jaxsel.insilico._cross_activation import cross_activation, diagonal_selectivity
from jaxsel.insilico._gradients import gradient_rf, sensitivity_maps
from jaxsel.insilico._mei import optimize_meis
from jaxsel.insilico._mei_parts import gaussian_blur
from jaxsel.insilico._recovery import pearson_rows, twin_model
from jaxsel.viz._image_grids import gradient_rf_grid, mei_grid, sensitivity_overlays
from jaxsel.viz._insilico_figures import cross_activation_figure

SHAPE = (36, 64)


@pytest.fixture(scope="module")
def sim(twin_factory):
    return twin_factory(
        seed=4, n_neurons=24, n_train=300, n_validation=30, n_test=20, test_repeats=2
    )


def ln_fn(q, x):
    """A small LN population (ELU + 1) on standardised images."""
    z = ((x - q["mean"]) / q["std"]).reshape(x.shape[0], -1)
    return jax.nn.elu(z @ q["w"] + q["b"]) + 1.0


@pytest.fixture(scope="module")
def ln():
    rng = np.random.default_rng(0)
    w = (0.05 * rng.standard_normal((6 * 8, 5))).astype(np.float32)
    return {
        "mean": jnp.float32(120.0),
        "std": jnp.float32(50.0),
        "w": jnp.asarray(w),
        "b": jnp.asarray(rng.standard_normal(5).astype(np.float32)),
    }


def _jacobian(q, x):
    """Brute-force reference: full Jacobian of every neuron w.r.t. one image (C, H, W)."""
    return np.asarray(jax.jacrev(lambda z: ln_fn(q, z[None])[0])(jnp.asarray(x)))


def test_gradient_rf_at_gray_matches_the_true_filters(sim):
    ds, twin = sim
    fn, p = twin_model(twin)
    rf = gradient_rf(fn, p, image_shape=SHAPE, value=127.5, chunk_size=8)
    assert rf.dims == ("neuron", "channel", "y", "x")
    np.testing.assert_array_equal(rf["neuron_id"].values, twin.neuron_id)
    g = rf.values[:, 0]
    kind = twin.kinds
    lin = np.isin(kind, ["simple", "suppressed"])
    # at gray a simple (or surround-suppressed) cell's gradient is its linear filter
    assert np.all(pearson_rows(g[lin], twin.params["w_even"][lin]) > 0.999)
    # an energy-model cell has zero gradient at zero contrast: no gradient RF at gray
    assert np.abs(g[kind == "complex"]).max() < 1e-6
    assert np.abs(g[kind == "unresponsive"]).max() == 0.0


def test_gradient_rf_matches_jacobian_and_chunking(ln):
    x = np.full((1, 6, 8), 120.0, np.float32) + np.random.default_rng(1).normal(0, 5, (1, 6, 8))
    ref = _jacobian(ln, x.astype(np.float32))  # (neuron, C, H, W)
    a = gradient_rf(ln_fn, ln, x, chunk_size=2)  # 3 chunks, last one padded
    b = gradient_rf(ln_fn, ln, x, neurons=[4, 1], chunk_size=8)
    np.testing.assert_allclose(a.values, ref, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(b.values, ref[[4, 1]], rtol=1e-5, atol=1e-8)


def test_sensitivity_maps_against_per_image_jacobians(ln):
    rng = np.random.default_rng(2)
    imgs = rng.uniform(40, 200, (5, 1, 6, 8)).astype(np.float32)
    jac = np.stack([_jacobian(ln, im) for im in imgs])  # (image, neuron, C, H, W)
    grad = sensitivity_maps(
        ln_fn, ln, imgs, method="grad", reduce=None, image_chunk=2, neuron_chunk=3
    )
    assert grad.dims == ("image", "neuron", "channel", "y", "x")
    np.testing.assert_allclose(grad.values, jac, rtol=1e-5, atol=1e-8)
    ab = sensitivity_maps(ln_fn, ln, imgs, method="abs", image_chunk=2, neuron_chunk=3)
    np.testing.assert_allclose(ab.values, np.abs(jac).mean(0), rtol=1e-5, atol=1e-8)
    gxi = sensitivity_maps(
        ln_fn,
        ln,
        imgs,
        method="grad_x_input",
        baseline=120.0,
        reduce=None,
        image_chunk=2,
        neuron_chunk=3,
    )
    np.testing.assert_allclose(gxi.values, jac * (imgs - 120.0)[:, None], rtol=1e-4, atol=1e-6)
    sm = sensitivity_maps(ln_fn, ln, imgs, method="abs", smooth=1.5, image_chunk=2, neuron_chunk=3)
    ref = np.asarray(gaussian_blur(jnp.asarray(np.abs(jac).mean(0)), 1.5))
    np.testing.assert_allclose(sm.values, ref, rtol=1e-4, atol=1e-7)


def test_sensitivity_of_a_simple_cell_is_its_filter_support(sim):
    ds, twin = sim
    fn, p = twin_model(twin)
    simple = np.flatnonzero(twin.kinds == "simple")[:3]
    imgs = ds["images"].values[:6]
    sm = sensitivity_maps(fn, p, imgs, neurons=simple, method="abs")
    # the mean |gradient| of a linear-filter cell is |w| times a mean gain: r = 1 with |w|
    r = pearson_rows(sm.values[:, 0], np.abs(twin.params["w_even"][simple]))
    assert np.all(r > 0.999)


def test_cross_activation_of_true_optima_peaks_on_the_diagonal(sim):
    ds, twin = sim
    fn, p = twin_model(twin)
    opt = to_raw(optimal_stimuli(twin))[:, None]
    ca = cross_activation(fn, p, opt)
    assert ca.dims == ("mei", "neuron")
    resp = twin.kinds != "unresponsive"
    np.testing.assert_allclose(ca.values[:, resp].max(0), 1.0)
    assert diagonal_selectivity(ca[resp][:, resp]) == 1.0
    raw = cross_activation(fn, p, opt, normalize="none")
    np.testing.assert_allclose(raw.values, twin.rates(opt[:, 0]), rtol=1e-5)


def test_cross_activation_of_an_mei_result_and_figures(sim, tmp_path):
    ds, twin = sim
    fn, p = twin_model(twin)
    idx = np.flatnonzero(twin.kinds == "simple")[:4]
    res = optimize_meis(
        fn,
        p,
        idx,
        config=recipes.norm(twin.meta["norm_budget"], steps=60),
        image_shape=SHAPE,
        seeds=2,
    )
    ca = cross_activation(fn, p, res)
    np.testing.assert_array_equal(ca["neuron_index"].values, idx)
    assert diagonal_selectivity(ca) == 1.0
    rf = gradient_rf(fn, p, image_shape=SHAPE, value=127.5, neurons=idx)
    sm = sensitivity_maps(fn, p, ds["images"].values[:2], neurons=idx, reduce=None)
    for fig, name in [
        (mei_grid(res, path=tmp_path / "mei.png"), "mei.png"),
        (gradient_rf_grid(rf, path=tmp_path / "rf.png"), "rf.png"),
        (cross_activation_figure(ca, path=tmp_path / "ca.png"), "ca.png"),
        (
            sensitivity_overlays(
                ds["images"].values[:2], sm.values[:, 0], titles=["a", "b"], path=tmp_path / "s.png"
            ),
            "s.png",
        ),
    ]:
        assert (tmp_path / name).stat().st_size > 1000
        assert len(fig.axes) > 0


def test_bad_inputs(ln):
    with pytest.raises(ConfigError, match="method"):
        sensitivity_maps(ln_fn, ln, np.zeros((1, 6, 8)), method="integrated")
    with pytest.raises(ConfigError, match="images"):
        sensitivity_maps(ln_fn, ln, np.zeros((6, 8)))
    with pytest.raises(ConfigError, match="image"):
        gradient_rf(ln_fn, ln)
    with pytest.raises(ConfigError, match="neuron"):
        gradient_rf(ln_fn, ln, np.zeros((6, 8)), neurons=[5])
    with pytest.raises(ConfigError, match="normalize"):
        cross_activation(ln_fn, ln, np.zeros((2, 1, 6, 8)), normalize="zscore")
