"""The digital twin is what it claims: noise model, tuning, invariance, optimum, round trip."""

import numpy as np
import pytest

from jaxsel.data import repeats, unique_images
from jaxsel.data._stimuli import grating
from jaxsel.data._twin import KINDS, load_twin, optimal_stimuli, save_twin, to_raw
from jaxsel.data._twin_simulate import sample_responses, simulate

SMALL = dict(n_neurons=60, n_train=400, n_validation=50, n_test=20, test_repeats=40)


@pytest.fixture(scope="module")
def sim(twin_factory):
    return twin_factory(seed=1, **SMALL)


def test_layout_and_tiers(sim):
    ds, twin = sim
    n_trials = SMALL["n_train"] + SMALL["n_validation"] + SMALL["n_test"] * SMALL["test_repeats"]
    assert ds.sizes == {"trial": n_trials, "channel": 1, "y": 36, "x": 64, "neuron": 60}
    rep = repeats(ds)
    assert rep.sizes["image"] == SMALL["n_test"]
    assert (rep["n_repeats"] == SMALL["test_repeats"]).all()
    train_ids = ds["image_id"].values[ds["tier"].values == "train"]
    assert len(np.unique(train_ids)) == len(train_ids)  # train images shown once
    np.testing.assert_array_equal(ds["neuron_id"].values, twin.neuron_id)
    assert set(twin.kinds) == set(KINDS)


def test_same_seed_same_data():
    a, _ = simulate(seed=5, n_neurons=10, n_train=30, n_validation=5, n_test=4, test_repeats=3)
    b, _ = simulate(seed=5, n_neurons=10, n_train=30, n_validation=5, n_test=4, test_repeats=3)
    c, _ = simulate(seed=6, n_neurons=10, n_train=30, n_validation=5, n_test=4, test_repeats=3)
    np.testing.assert_array_equal(a["responses"].values, b["responses"].values)
    np.testing.assert_array_equal(a["images"].values, b["images"].values)
    assert not np.array_equal(a["responses"].values, c["responses"].values)


def test_poisson_cells_variance_equals_mean(sim):
    ds, twin = sim
    rep = repeats(ds).values  # (image, repeat, neuron)
    poisson = ~np.isfinite(twin.params["dispersion"]) & (twin.kinds != "unresponsive")
    m = rep.mean(1)[:, poisson]
    v = rep.var(1, ddof=1)[:, poisson]
    ratio = v.sum(0) / m.sum(0)  # pooled Fano factor per neuron
    assert np.median(ratio) == pytest.approx(1.0, abs=0.1)
    over = np.isfinite(twin.params["dispersion"]) & (twin.kinds != "unresponsive")
    over_ratio = rep.var(1, ddof=1)[:, over].sum(0) / rep.mean(1)[:, over].sum(0)
    assert np.median(over_ratio) > 1.3  # gamma-Poisson cells are not


def test_overdispersed_noise_matches_gamma_poisson():
    rng = np.random.default_rng(0)
    rates = np.full((20000, 2), 4.0)
    counts = sample_responses(rates, np.array([np.inf, 2.0]), rng)
    assert counts[:, 0].var() == pytest.approx(4.0, rel=0.05)
    assert counts[:, 1].var() == pytest.approx(4.0 + 16.0 / 2.0, rel=0.05)


def test_unresponsive_neurons_are_flat(sim):
    ds, twin = sim
    rates = twin.rates(unique_images(ds).values)
    flat = twin.kinds == "unresponsive"
    assert np.ptp(rates[:, flat], axis=0).max() < 1e-5
    assert np.ptp(rates[:, ~flat], axis=0).min() > 1e-3


def test_simple_cells_prefer_their_own_filter(sim):
    _, twin = sim
    opt = to_raw(optimal_stimuli(twin))
    simple = np.flatnonzero(twin.kinds == "simple")
    cross = twin.rates(opt[simple])[:, simple]  # stimulus x neuron
    assert (np.argmax(cross, axis=0) == np.arange(len(simple))).all()
    # and beats random images of the same norm
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((50,) + twin.shape)
    noise *= twin.meta["norm_budget"] / np.linalg.norm(noise.reshape(50, -1), axis=1)[:, None, None]
    assert (twin.rates(to_raw(noise))[:, simple].max(0) < cross.diagonal()).all()


def test_optimum_is_a_local_maximum_on_the_norm_sphere(sim):
    _, twin = sim
    c = optimal_stimuli(twin)
    responsive = np.flatnonzero(twin.kinds != "unresponsive")
    best = np.diag(twin.rates(to_raw(c[responsive]))[:, responsive])
    rng = np.random.default_rng(1)
    b = twin.meta["norm_budget"]
    for _ in range(3):
        d = c[responsive] + 0.05 * b * rng.standard_normal(c[responsive].shape) / 48.0
        d *= b / np.linalg.norm(d.reshape(len(d), -1), axis=1)[:, None, None]
        other = np.diag(twin.rates(to_raw(d))[:, responsive])
        assert (other <= best + 1e-4).all()
    norms = np.linalg.norm(c[responsive].reshape(len(responsive), -1), axis=1)
    np.testing.assert_allclose(norms, b, rtol=1e-4)


def test_complex_cells_are_phase_invariant(sim):
    _, twin = sim
    p = twin.params
    cx = np.flatnonzero(twin.kinds == "complex")
    phases = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    for i in cx:
        imgs = np.stack(
            [np.asarray(grating(twin.shape, p["theta"][i], p["sf"][i], ph, 0.3)) for ph in phases]
        )
        r = twin.rates(to_raw(imgs))[:, i] - p["baseline"][i]
        assert (r.max() - r.min()) / r.mean() < 0.1, f"neuron {i}"
    # a simple cell, by contrast, is strongly phase dependent
    i = np.flatnonzero(twin.kinds == "simple")[0]
    imgs = np.stack(
        [np.asarray(grating(twin.shape, p["theta"][i], p["sf"][i], ph, 0.3)) for ph in phases]
    )
    r = twin.rates(to_raw(imgs))[:, i]
    assert r.max() > 3 * r.min()


def test_true_reliability_orders_empirical_reliability(sim):
    ds, twin = sim
    rep = repeats(ds).values
    signal = rep.mean(1).var(0)
    total = rep.reshape(-1, rep.shape[-1]).var(0)
    emp = signal / np.maximum(total, 1e-9)
    resp = twin.kinds != "unresponsive"
    rho = np.corrcoef(
        np.argsort(np.argsort(emp[resp])), np.argsort(np.argsort(twin.params["true_fev"][resp]))
    )[0, 1]
    assert rho > 0.8
    assert (twin.params["true_fev"][~resp] < 1e-6).all()


def test_save_load_round_trip(sim, tmp_path):
    ds, twin = sim
    save_twin(twin, tmp_path / "gt")
    back = load_twin(tmp_path / "gt")
    np.testing.assert_array_equal(back.neuron_id, twin.neuron_id)
    imgs = unique_images(ds).values[:5]
    np.testing.assert_allclose(back.rates(imgs), twin.rates(imgs), rtol=1e-6)
    assert back.meta["norm_budget"] == twin.meta["norm_budget"]
    assert (tmp_path / "gt" / "neurons.csv").read_text().count("\n") == 61


def test_load_twin_missing_folder(tmp_path):
    from jaxsel._errors import DataError

    with pytest.raises(DataError, match=r"params\.npz"):
        load_twin(tmp_path / "nothing")
