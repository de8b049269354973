"""Image metrics against closed forms and NumPy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsel._errors import ConfigError
from jaxsel.data._stimuli import gabor, grating
from jaxsel.data._twin import optimal_stimuli, to_raw
from jaxsel.data._twin_simulate import simulate
from jaxsel.insilico._gabor_search import gabor_images
from jaxsel.insilico._image_metrics import (
    axial_average,
    best_natural_images,
    circular_mask,
    dominant_orientation_sf,
    image_metrics,
    masked_contrast,
    masked_luminance,
    metrics_table,
    power_spectrum,
    spectrum_frequencies,
    stimulus_comparison,
    symmetry_index,
)
from jaxsel.insilico._recovery import orientation_error_deg, twin_model
from jaxsel.viz._insilico_figures import power_spectra_figure

SHAPE = (36, 64)


def _np_mask(shape, radius, cx, cy):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= radius**2


def test_mask_luminance_contrast_match_numpy():
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 1, SHAPE).astype(np.float32)
    for radius, cx, cy in [(12, None, None), (7.5, 40.0, 10.0), (3, 2.0, 30.0)]:
        ref = _np_mask(
            SHAPE,
            radius,
            (SHAPE[1] - 1) / 2 if cx is None else cx,
            (SHAPE[0] - 1) / 2 if cy is None else cy,
        )
        m = np.asarray(circular_mask(SHAPE, radius, cx, cy))
        np.testing.assert_array_equal(m, ref)
        assert float(masked_luminance(img, m)) == pytest.approx(img[ref].mean(), rel=1e-5)
        assert float(masked_contrast(img, m)) == pytest.approx(img[ref].std(), rel=1e-4)
    assert np.asarray(circular_mask(SHAPE, 12)).sum() == pytest.approx(np.pi * 144, rel=0.05)


def test_axial_average_matches_a_loop():
    p = np.random.default_rng(1).uniform(0, 1, (20, 30)).astype(np.float32)
    ours, theta = axial_average(jnp.asarray(p))
    ky, kx = spectrum_frequencies((20, 30))
    total, count = np.zeros(16), np.zeros(16)
    for i in range(20):
        for j in range(30):
            k = np.hypot(ky[i], kx[j])
            if k == 0 or k > 0.5:
                continue
            a = np.arctan2(ky[i], kx[j]) % np.pi
            b = min(int(np.floor(a / (np.pi / 16) + 1e-9)), 15)
            total[b] += p[i, j]
            count[b] += 1
    np.testing.assert_allclose(ours, total / count, rtol=1e-5)
    np.testing.assert_allclose(theta, (np.arange(16) + 0.5) * np.pi / 16, rtol=1e-6)


def test_symmetry_index_closed_forms():
    theta = jnp.asarray((np.arange(16) + 0.5) * np.pi / 16)
    one = jnp.zeros(16).at[5].set(2.0)
    assert float(symmetry_index(one, theta, 1)) == pytest.approx(1.0)
    assert float(symmetry_index(one, theta, 2)) == pytest.approx(1.0)
    flat = jnp.ones(16)
    assert float(symmetry_index(flat, theta, 1)) == pytest.approx(0.0, abs=1e-6)
    assert float(symmetry_index(flat, theta, 2)) == pytest.approx(0.0, abs=1e-6)
    cross = jnp.zeros(16).at[2].set(1.0).at[10].set(1.0)  # two orientations 90 deg apart
    assert float(symmetry_index(cross, theta, 1)) == pytest.approx(0.0, abs=1e-6)
    assert float(symmetry_index(cross, theta, 2)) == pytest.approx(1.0)


@jax.jit
def _metrics(img):
    return image_metrics(img, radius=12.0)


def test_gratings_have_their_orientation_frequency_and_twofold_symmetry():
    rng = np.random.default_rng(2)
    for _ in range(8):
        th, sf = rng.uniform(0, np.pi), rng.uniform(0.18, 0.3)
        m = _metrics(grating(SHAPE, th, sf, rng.uniform(0, 2 * np.pi)))
        assert orientation_error_deg(float(m["orientation"]), th) < 1.5
        assert float(m["sf"]) == pytest.approx(sf, rel=0.03)
        assert float(m["si_2"]) > 0.9
        assert float(m["si_1"]) > 0.9


def test_gabor_dominant_orientation_and_frequency():
    rng = np.random.default_rng(3)
    f = jax.jit(dominant_orientation_sf)
    for _ in range(8):
        th, sig = rng.uniform(0, np.pi), rng.uniform(2.5, 4.3)
        sf = rng.uniform(0.45, 0.75) / sig
        g = gabor(SHAPE, 32.0, 18.0, sig, th, sf, rng.uniform(0, 6))
        ori, est = f(g - g.mean())
        assert orientation_error_deg(float(ori), th) < 2.0
        assert float(est) == pytest.approx(sf, rel=0.08)


def test_isotropic_noise_has_small_symmetry_index():
    rng = np.random.default_rng(4)
    si = np.array(
        [
            [
                float(_metrics(rng.standard_normal(SHAPE).astype(np.float32))[k])
                for k in ("si_1", "si_2")
            ]
            for _ in range(6)
        ]
    )
    assert si.mean() < 0.12
    assert si.max() < 0.25


def test_power_spectrum_parseval_and_dc():
    img = np.random.default_rng(5).standard_normal((12, 16)).astype(np.float32)
    p = np.asarray(power_spectrum(img, window=False, subtract_mean=False))
    assert p.sum() / p.size == pytest.approx((img.astype(np.float64) ** 2).sum(), rel=1e-4)
    assert p[6, 8] == pytest.approx(img.sum() ** 2, rel=1e-4)  # DC at the centre
    p0 = np.asarray(power_spectrum(img, window=False))
    assert p0[6, 8] == pytest.approx(0.0, abs=1e-6)


def test_comparison_table_on_the_twin(tmp_path):
    ds, twin = simulate(
        seed=6, n_neurons=12, n_train=200, n_validation=20, n_test=30, test_repeats=2
    )
    fn, p = twin_model(twin)
    idx = np.flatnonzero(twin.kinds == "simple")
    norm = twin.meta["norm_budget"]
    opt = to_raw(optimal_stimuli(twin, norm))[idx][:, None]
    pr = twin.params
    gab = np.asarray(
        gabor_images(
            {k: pr[k][idx] for k in ("x0", "y0", "sigma", "theta", "sf")}
            | {"phase": pr["phase"][idx] + np.pi / 2},
            SHAPE,
            norm=norm,
        )
    )
    nat_images = ds["images"].values[ds["tier"].values == "test"]
    nat = best_natural_images(fn, p, nat_images, neurons=idx)
    rates = twin.rates(nat_images[:, 0])[:, idx]
    np.testing.assert_allclose(nat["response"].values, rates.max(0), rtol=1e-5)
    comp = stimulus_comparison(
        fn,
        p,
        {"mei": opt, "gabor": gab, "natural": nat["image"].values},
        neurons=idx,
        radius=8.0,
        centers=np.stack([pr["x0"][idx], pr["y0"][idx]], 1),
    )
    assert comp["activation"].dims == ("neuron", "stimulus")
    act = comp["activation"]
    # the true optimum beats the quadrature-phase Gabor (same budget) for simple cells
    assert np.all(act.sel(stimulus="mei").values >= act.sel(stimulus="gabor").values)
    err = orientation_error_deg(comp["orientation"].sel(stimulus="mei").values, pr["theta"][idx])
    assert np.median(err) < 10.0
    t = metrics_table(opt, radius=8.0)
    np.testing.assert_allclose(
        t["luminance"].values, comp["luminance"].sel(stimulus="mei").values, atol=5.0
    )
    fig = power_spectra_figure(
        {"optimum": opt[0, 0], "natural": nat["image"].values[0, 0]}, path=tmp_path / "ps.png"
    )
    assert (tmp_path / "ps.png").stat().st_size > 1000 and fig.axes
    with pytest.raises(ConfigError, match="images"):
        stimulus_comparison(fn, p, {"mei": opt[:1]}, neurons=idx, radius=8.0)


def test_bad_bin_size():
    with pytest.raises(ConfigError, match="bin_size"):
        axial_average(jnp.ones((8, 8)), bin_size=0.3)
