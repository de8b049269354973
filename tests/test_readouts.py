"""Readouts against NumPy references: bilinear sampling (grid_sample, align_corners=True),
Gaussian position sampling, Laplacian pyramid levels, grid-mean predictor, constraints."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsel.models._config import GridMeanPredictorConfig, ModelConfig
from jaxsel.models._model import build_model
from jaxsel.models._readouts import normalize_source_grid, sample_grid
from jaxsel.models._sampling import GAUSS_5X5, bilinear_sample, laplacian_pyramid


def grid_sample_ref(feat, grid):
    """torch.nn.functional.grid_sample(mode='bilinear', padding_mode='zeros',
    align_corners=True), written out with loops. feat (B, C, H, W), grid (B, N, 2) -> (B, C, N)."""
    B, C, H, W = feat.shape
    out = np.zeros((B, C, grid.shape[1]))
    for b in range(B):
        for n in range(grid.shape[1]):
            ix = (grid[b, n, 0] + 1) / 2 * (W - 1)
            iy = (grid[b, n, 1] + 1) / 2 * (H - 1)
            x0, y0 = int(np.floor(ix)), int(np.floor(iy))
            for yy, xx in ((y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)):
                w = (1 - abs(ix - xx)) * (1 - abs(iy - yy))
                if 0 <= xx < W and 0 <= yy < H:
                    out[b, :, n] += w * feat[b, :, yy, xx]
    return out


def test_bilinear_sample_matches_grid_sample_reference():
    rng = np.random.default_rng(0)
    feat = rng.normal(size=(2, 3, 5, 7)).astype(np.float32)
    grid = rng.uniform(-1, 1, size=(2, 11, 2)).astype(np.float32)
    grid[0, 0] = [-1, -1]  # corners and edges are pixel centres
    grid[0, 1] = [1, 1]
    grid[0, 2] = [1, -1]
    grid[1, 0] = [0.0, 1.0]
    grid[1, 1] = [1.2, 0.3]  # outside: partly zero-padded taps
    got = bilinear_sample(jnp.asarray(feat.transpose(0, 2, 3, 1)), jnp.asarray(grid))
    ref = grid_sample_ref(feat, grid).transpose(0, 2, 1)
    np.testing.assert_allclose(np.asarray(got), ref, atol=1e-5)
    # align_corners=True: (-1,-1) is exactly pixel [0, 0], (1, 1) is pixel [H-1, W-1]
    np.testing.assert_allclose(np.asarray(got)[0, 0], feat[0, :, 0, 0], atol=1e-6)
    np.testing.assert_allclose(np.asarray(got)[0, 1], feat[0, :, -1, -1], atol=1e-6)
    np.testing.assert_allclose(np.asarray(got)[0, 2], feat[0, :, 0, -1], atol=1e-6)


def test_bilinear_sample_shared_grid_and_gradient():
    rng = np.random.default_rng(1)
    feat = jnp.asarray(rng.normal(size=(3, 4, 6, 2)).astype(np.float32))
    grid = jnp.asarray(rng.uniform(-0.9, 0.9, size=(5, 2)).astype(np.float32))
    a = bilinear_sample(feat, grid)
    b = bilinear_sample(feat, jnp.broadcast_to(grid[None], (3, 5, 2)))
    np.testing.assert_allclose(np.asarray(a), np.asarray(b))
    # position gradient equals the finite difference (bilinear is smooth inside a cell)
    f = lambda g: jnp.sum(bilinear_sample(feat, g))  # noqa: E731
    g = jax.grad(f)(grid)
    h = 1e-3
    fd = (f(grid.at[0, 0].add(h)) - f(grid.at[0, 0].add(-h))) / (2 * h)
    assert float(g[0, 0]) == pytest.approx(float(fd), rel=1e-2, abs=1e-3)


def test_sample_grid_full_and_isotropic():
    rng = np.random.default_rng(2)
    mu = rng.uniform(-0.5, 0.5, (4, 2)).astype(np.float32)
    s_full = rng.uniform(-0.4, 0.4, (4, 2, 2)).astype(np.float32)
    s_iso = rng.uniform(0.0, 0.4, (4, 1)).astype(np.float32)
    z = rng.normal(size=(3, 4, 2)).astype(np.float32)
    ref_full = np.clip(mu[None] + np.einsum("nij,bnj->bni", s_full, z), -1, 1)
    ref_iso = np.clip(mu[None] + s_iso[None] * z, -1, 1)
    np.testing.assert_allclose(np.asarray(sample_grid(mu, s_full, z, "full")), ref_full, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(sample_grid(mu, s_iso, z, "isotropic")), ref_iso, atol=1e-6
    )
    zero = np.zeros_like(z)
    np.testing.assert_allclose(
        np.asarray(sample_grid(mu, s_full, zero)), np.broadcast_to(mu, (3, 4, 2)), atol=1e-7
    )
    # the covariance of the samples is S S^T
    zz = np.asarray(jax.random.normal(jax.random.key(0), (20000, 4, 2)))
    g = np.asarray(sample_grid(np.zeros_like(mu), s_full * 0.5, zz, "full"))
    cov = np.cov(g[:, 1].T)
    np.testing.assert_allclose(cov, (s_full[1] * 0.5) @ (s_full[1] * 0.5).T, atol=3e-3)


def _conv_same_ref(img, k):
    """Zero-padded 'same' correlation of every channel of img (C, H, W) with k."""
    p = k.shape[0] // 2
    c, h, w = img.shape
    pad = np.zeros((c, h + 2 * p, w + 2 * p))
    pad[:, p : p + h, p : p + w] = img
    out = np.zeros((c, h, w))
    for a in range(k.shape[0]):
        for b in range(k.shape[1]):
            out += k[a, b] * pad[:, a : a + h, b : b + w]
    return out


def _conv_transpose_ref(lo, k, out_hw):
    """torch conv_transpose2d(stride=2, padding=p, output_padding) by its definition."""
    p = k.shape[0] // 2
    c, h, w = lo.shape
    full = np.zeros((c, 2 * (h - 1) + k.shape[0] + 1, 2 * (w - 1) + k.shape[1] + 1))
    for i in range(h):
        for j in range(w):
            full[:, 2 * i : 2 * i + k.shape[0], 2 * j : 2 * j + k.shape[1]] += (
                lo[:, i, j, None, None] * k[None]
            )
    return full[:, p : p + out_hw[0], p : p + out_hw[1]]


def pyramid_ref(img, levels, k=GAUSS_5X5):
    out = []
    for _ in range(levels):
        smooth = _conv_same_ref(img, k)
        lo = smooth[:, ::2, ::2]
        lo2 = 4 * _conv_transpose_ref(lo, k, img.shape[1:])
        out.append(img - lo2)
        img = lo
    out.append(img)
    return out


@pytest.mark.parametrize("shape", [(9, 16), (18, 32), (7, 11)])
def test_laplacian_pyramid_matches_reference(shape):
    rng = np.random.default_rng(3)
    img = rng.normal(size=(2, *shape)).astype(np.float32)  # (C, H, W)
    got = laplacian_pyramid(jnp.asarray(img.transpose(1, 2, 0))[None], 3)
    ref = pyramid_ref(img.astype(np.float64), 3)
    assert len(got) == 4
    for g, r in zip(got, ref, strict=True):
        np.testing.assert_allclose(np.asarray(g)[0].transpose(2, 0, 1), r, atol=1e-5)


def test_pyramid_shapes_and_lowpass_of_a_constant():
    img = jnp.ones((1, 32, 33, 1))
    levels = laplacian_pyramid(img, 2)
    assert [lv.shape[1:3] for lv in levels] == [(32, 33), (16, 17), (8, 9)]
    # gauss5x5 sums to 1: away from the zero-padded border the low-pass keeps a constant
    np.testing.assert_allclose(np.asarray(levels[-1])[0, 3:-3, 3:-3, 0], 1.0, atol=1e-4)


def _readout_model(**kw):
    cfg = ModelConfig(layers=1, hidden_channels=3, input_kern=3, gamma_input=0.0, **kw)
    return build_model(cfg, image_shape=(1, 8, 10), n_neurons=5)


def test_gaussian_readout_eval_reads_the_mean_position():
    m = _readout_model()
    params, state = m.init(jax.random.key(0), mean_response=np.full(5, 2.0))
    x = jax.random.normal(jax.random.key(1), (2, 1, 8, 10))
    # the core's output, computed by a core-only module with the same parameters
    from jaxsel.models._core import StackedCore

    f = StackedCore(m.config).apply(
        {"params": params["core"], "batch_stats": state["batch_stats"]["core"]},
        jnp.moveaxis(x, 1, -1),
        False,
    )
    ro = params["readout"]
    v = np.asarray(bilinear_sample(f, jnp.clip(ro["mu"], -1, 1)))
    drive = np.einsum("bnc,nc->bn", v, np.asarray(ro["features"])) + np.asarray(ro["bias"])
    rates, _ = m.apply(params, state, x)
    np.testing.assert_allclose(np.asarray(rates), np.asarray(jax.nn.elu(drive) + 1), atol=1e-5)
    # bias initialised so that a zero drive gives the mean response: elu(b) + 1 = 2
    np.testing.assert_allclose(np.asarray(ro["bias"]), 1.0, atol=1e-6)
    # training mode samples positions: different keys give different outputs
    r1, _ = m.apply(params, state, x, train=True, rng=jax.random.key(5))
    r2, _ = m.apply(params, state, x, train=True, rng=jax.random.key(6))
    assert not np.allclose(np.asarray(r1), np.asarray(r2))


def test_grid_mean_predictor_positions_are_affine_in_cortex_coords():
    gmp = GridMeanPredictorConfig(hidden_layers=0, input_dimensions=2)
    m = _readout_model(grid_mean_predictor=gmp)
    with pytest.raises(Exception, match="cortical coordinates"):
        m.init(jax.random.key(0))
    xyz = np.random.default_rng(4).normal(size=(5, 3)) * 100
    params, state = m.init(jax.random.key(0), source_grid=xyz)
    src = normalize_source_grid(xyz[:, :2])
    assert np.abs(src).max() == pytest.approx(1.0)
    np.testing.assert_allclose(np.asarray(state["consts"]["readout"]["source_grid"]), src)
    w = params["readout"]["grid_mean_predictor"]["out"]
    want = np.clip(src @ np.asarray(w["kernel"]) + np.asarray(w["bias"]), -1, 1)
    np.testing.assert_allclose(np.asarray(m.positions(params, state)), want, atol=1e-6)
    assert "mu" not in params["readout"]


def test_pyramid_readout_and_positive_constraint():
    cfg = ModelConfig(
        layers=2,
        hidden_channels=4,
        input_kern=3,
        hidden_kern=3,
        pooling=2,
        readout="pyramid",
        pyramid_levels=2,
        positive_features=True,
        stack=None,
    )
    m = build_model(cfg, image_shape=(1, 16, 20), n_neurons=6)
    params, state = m.init(jax.random.key(0))
    assert params["readout"]["features"].shape == (6, 3 * 8)
    assert params["readout"]["grid"].shape == (6, 2)
    bad = jax.tree.map(lambda a: a, params)
    bad["readout"] = dict(bad["readout"], features=-jnp.ones((6, 24)), grid=jnp.full((6, 2), 3.0))
    fixed = m.constrain(bad)
    assert float(jnp.min(fixed["readout"]["features"])) == 0.0
    assert float(jnp.max(fixed["readout"]["grid"])) == 1.0
    x = jax.random.normal(jax.random.key(1), (3, 1, 16, 20))
    rates, _ = m.apply(params, state, x)
    assert rates.shape == (3, 6) and bool(jnp.all(rates > 0))


# ------------------------------------------------------------- data-driven positions
def test_energy_positions_find_the_true_receptive_fields():
    from jaxsel.data._batches import tier_arrays
    from jaxsel.data._twin_simulate import simulate
    from jaxsel.models._readout_init import energy_positions

    ds, twin = simulate(
        seed=1, n_neurons=60, n_train=1500, n_validation=20, n_test=4, test_repeats=2
    )
    x, r = tier_arrays(ds, "train")
    pos = energy_positions((x - x.mean()) / x.std(), r)
    assert pos.shape == (60, 2) and pos.dtype == np.float32
    h, w = ds.sizes["y"], ds.sizes["x"]
    px, py = (pos[:, 0] + 1) / 2 * (w - 1), (pos[:, 1] + 1) / 2 * (h - 1)
    err = np.hypot(px - np.asarray(twin.params["x0"]), py - np.asarray(twin.params["y0"]))
    responsive = np.asarray(twin.kinds) != "unresponsive"
    assert np.median(err[responsive]) < 2.0  # pixels (measured ~1)
    assert np.percentile(err[responsive], 90) < 4.0
    with pytest.raises(ValueError, match="same trials"):
        energy_positions(x[:10], r[:9])


def test_init_positions_set_the_readout():
    m = build_model(
        ModelConfig(layers=1, hidden_channels=2, input_kern=3), image_shape=(1, 8, 10), n_neurons=3
    )
    pos = np.array([[-0.5, 0.2], [0.0, 0.0], [0.9, -0.9]], np.float32)
    params, _ = m.init(jax.random.key(0), positions=pos)
    np.testing.assert_array_equal(np.asarray(params["readout"]["mu"]), pos)
    from jaxsel._errors import ConfigError

    with pytest.raises(ConfigError, match="positions has shape"):
        m.init(jax.random.key(0), positions=pos[:2])
