"""Gabor generator, bank screening and optimal Gabors against the twin's true tuning."""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsel._errors import ConfigError
from jaxsel.data._stimuli import gabor
from jaxsel.insilico._gabor_search import (
    GABOR_PARAMS,
    gabor_bank,
    gabor_contrast,
    gabor_images,
    screen_gabors,
    top_recorded_gabors,
)
from jaxsel.insilico._optimal_gabor import optimal_gabors
from jaxsel.insilico._recovery import gabor_recovery, orientation_error_deg, twin_model
from jaxsel.viz._insilico_figures import gabor_vs_mei

SHAPE = (36, 64)
# a coarse bank keeps the test fast: 3 x 3 positions, 2 sizes, 6 orientations, 3 sfs, 2 phases
BANK: dict[str, Any] = dict(
    n_x=5, n_y=3, margin=0.3, sigmas=(2.8, 4.0), n_theta=6, sfs=(0.1, 0.16, 0.25), n_phase=2
)


@pytest.fixture(scope="module")
def sim(twin_factory):
    return twin_factory(
        seed=5, n_neurons=24, n_train=300, n_validation=30, n_test=20, test_repeats=2
    )


def test_generator_is_the_project_gabor_normalised():
    p = dict(x0=30.0, y0=15.0, sigma=3.5, theta=0.7, sf=0.15, phase=1.0)
    g = np.asarray(gabor(SHAPE, **p), np.float64)
    g -= g.mean()
    ref = 2.5 * g / np.linalg.norm(g)
    np.testing.assert_allclose(gabor_contrast(p, SHAPE, norm=2.5), ref, atol=1e-6)
    c = gabor_contrast({**p, "contrast": 0.4}, SHAPE, zero_mean=False)
    np.testing.assert_allclose(c, 0.4 * np.asarray(gabor(SHAPE, **p)), atol=1e-6)
    imgs = gabor_images(
        {k: np.full(3, v, np.float32) for k, v in p.items()}, SHAPE, norm=2.5, channels=2
    )
    assert imgs.shape == (3, 2) + SHAPE
    np.testing.assert_allclose(imgs[1, 1], 127.5 + 127.5 * ref, atol=1e-4)
    # differentiable in every parameter
    grads = jax.grad(lambda q: jnp.sum(gabor_contrast(q, SHAPE, norm=2.5) * ref))(
        {k: jnp.float32(v) for k, v in p.items()}
    )
    assert all(np.isfinite(float(v)) for v in grads.values())


def test_bank_is_the_full_grid():
    b = gabor_bank(SHAPE, **BANK)
    assert set(b) == set(GABOR_PARAMS)
    assert len(b["x0"]) == 5 * 3 * 2 * 6 * 3 * 2
    combos = {tuple(np.round([b[k][i] for k in GABOR_PARAMS], 4)) for i in range(len(b["x0"]))}
    assert len(combos) == len(b["x0"])
    np.testing.assert_allclose(np.unique(b["theta"]), np.arange(6) * np.pi / 6, atol=1e-6)


def test_screening_equals_brute_force(sim):
    ds, twin = sim
    fn, p = twin_model(twin)
    bank = gabor_bank(SHAPE, **BANK)
    norm = twin.meta["norm_budget"]
    sc = screen_gabors(fn, p, SHAPE, norm=norm, bank=bank, batch_size=100, return_responses=True)
    ref = twin.rates(np.asarray(gabor_images(bank, SHAPE, norm=norm))[:, 0])
    np.testing.assert_allclose(sc["responses"].values, ref, rtol=1e-4, atol=1e-5)
    best = sc["bank_index"].values  # (ties: complex cells at phase 0 and pi)
    np.testing.assert_allclose(ref[best, np.arange(len(best))], ref.max(0), rtol=1e-4)
    np.testing.assert_allclose(sc["response"].values, ref.max(0), rtol=1e-4)
    np.testing.assert_allclose(sc["theta"].values, bank["theta"][best])


def test_optimal_gabors_recover_true_orientation_and_frequency(sim, tmp_path):
    ds, twin = sim
    fn, p = twin_model(twin)
    idx = np.flatnonzero(np.isin(twin.kinds, ["simple", "complex"]))[:12]
    norm = twin.meta["norm_budget"]
    og = optimal_gabors(
        fn, p, SHAPE, norm=norm, neurons=idx, bank=gabor_bank(SHAPE, **BANK), steps=150
    )
    rec = gabor_recovery(og, twin)
    assert np.median(rec["theta_error_deg"].values) <= 10.0
    assert np.median(rec["sf_rel_error"].values) <= 0.15
    assert np.all(og["response"].values >= og["response_init"].values - 1e-4)
    assert np.all((og["theta"].values >= 0) & (og["theta"].values < np.pi))
    # the returned image is the Gabor of the returned parameters, at the budget
    c = (og["image"].values[:, 0] - 127.5) / 127.5
    np.testing.assert_allclose(np.linalg.norm(c.reshape(len(idx), -1), axis=1), norm, rtol=1e-4)
    np.testing.assert_allclose(
        twin.rates(og["image"].values[:, 0])[np.arange(len(idx)), idx],
        og["response"].values,
        rtol=1e-3,
    )
    fig = gabor_vs_mei(
        {"gabor": og["image"].values, "truth": og["image"].values},
        activations={"gabor": og["response"].values},
        neuron_id=og["neuron_id"].values,
        path=tmp_path / "g.png",
    )
    assert (tmp_path / "g.png").stat().st_size > 1000 and fig.axes


def test_orientation_error_is_mod_pi():
    assert orientation_error_deg(0.05, np.pi - 0.05) == pytest.approx(np.degrees(0.1))
    assert orientation_error_deg(0.0, np.pi / 2) == pytest.approx(90.0)
    assert orientation_error_deg(3 * np.pi + 0.1, 0.1) == pytest.approx(0.0, abs=1e-9)


def test_top_recorded_gabors_matches_numpy():
    rng = np.random.default_rng(0)
    imgs = rng.uniform(0, 255, (20, 6, 8)).astype(np.float32)
    resp = rng.poisson(3.0, (20, 4)).astype(np.float32)  # ties included
    out = top_recorded_gabors(imgs, resp, k=3)
    assert out["image"].dims == ("neuron", "channel", "y", "x")
    for n in range(4):
        order = sorted(range(20), key=lambda t: (-resp[t, n], t))[:3]
        np.testing.assert_allclose(out["image"].values[n, 0], imgs[order].mean(0), rtol=1e-6)
        np.testing.assert_array_equal(out["top_trials"].values[n], order)
        np.testing.assert_array_equal(out["top_responses"].values[n], resp[order, n])
    with pytest.raises(ConfigError, match="k ="):
        top_recorded_gabors(imgs, resp, k=21)
    with pytest.raises(ConfigError, match="trials"):
        top_recorded_gabors(imgs[:5], resp)


def test_bad_inputs(sim):
    ds, twin = sim
    fn, p = twin_model(twin)
    with pytest.raises(ConfigError, match="norm"):
        optimal_gabors(fn, p, SHAPE, norm=0.0)
    with pytest.raises(ConfigError, match="lacks"):
        screen_gabors(fn, p, SHAPE, norm=1.0, bank={"x0": np.zeros(2)})
    with pytest.raises(ConfigError, match="empty"):
        gabor_bank(SHAPE, n_theta=0)
