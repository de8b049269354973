"""Training: losses against NumPy, the plateau schedule, the vmappable step, and fit
(determinism, kill-and-resume, refusals, input validation, non-finite loss)."""

import dataclasses
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxsel._errors import ConfigError, DataError, TrainingError
from jaxsel.data._twin_simulate import simulate
from jaxsel.models import predict
from jaxsel.models._config import ModelConfig
from jaxsel.models._model import build_model
from jaxsel.train import (
    Config,
    TrainConfig,
    fit,
    load_fit,
    make_hparams,
    make_optimizer,
    make_train_step,
    plateau_init,
    plateau_update,
    set_learning_rate,
)
from jaxsel.train._checkpoint import latest_epoch
from jaxsel.train._losses import (
    gamma_loss,
    masked_correlation,
    mse_loss,
    poisson_loglik,
    poisson_loss,
)

TINY = Config(
    "tiny",
    ModelConfig(
        layers=2,
        hidden_channels=8,
        input_kern=7,
        hidden_kern=3,
        pooling=2,
        gamma_input=0.1,
        gamma_readout=0.05,
        init_mu_range=0.4,
        init_sigma=0.2,
    ),
    TrainConfig(batch_size=32, max_epochs=5, patience=2, lr_decay_steps=2, lr=0.01, progress=False),
)


@pytest.fixture(scope="module")
def twin(twin_factory):
    return twin_factory(
        seed=3, n_neurons=20, n_train=200, n_validation=60, n_test=20, test_repeats=4
    )


# ---------------------------------------------------------------------------- losses


def test_losses_match_numpy():
    rng = np.random.default_rng(0)
    f = rng.uniform(0.01, 5, (7, 4)).astype(np.float32)
    r = rng.poisson(2.0, (7, 4)).astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(poisson_loss(f, r, 1e-8)), f - r * np.log(f + 1e-8), rtol=1e-5
    )
    np.testing.assert_allclose(np.asarray(mse_loss(f, r)), (f - r) ** 2, rtol=1e-6)
    np.testing.assert_allclose(
        np.asarray(gamma_loss(f, r, 0.0, shape=2.0)), 2.0 * (r / f + np.log(f)), rtol=1e-5
    )
    np.testing.assert_allclose(
        np.asarray(poisson_loglik(f, r, 0.0)), stats.poisson.logpmf(r, f), rtol=1e-4, atol=1e-5
    )
    # the Poisson loss is minimised at f = r (its gradient r/f - 1 vanishes there)
    g = jax.grad(lambda f: jnp.sum(poisson_loss(f, jnp.float32(3.0), 0.0)))(jnp.float32(3.0))
    assert abs(float(g)) < 1e-6


def test_masked_correlation_matches_numpy():
    rng = np.random.default_rng(1)
    p = rng.normal(size=(30, 5))
    r = p + rng.normal(size=(30, 5))
    r[:, 4] = 1.0  # constant neuron -> 0
    mask = np.ones(30, bool)
    mask[-6:] = False
    p_bad = p.copy()
    p_bad[-6:] = 1e6  # masked rows must not matter
    got = np.asarray(masked_correlation(p_bad, r, mask))
    ref = [np.corrcoef(p[:24, i], r[:24, i])[0, 1] for i in range(4)]
    np.testing.assert_allclose(got[:4], ref, rtol=1e-4)
    assert got[4] == 0.0


# -------------------------------------------------------------------------- schedule


def test_plateau_schedule_restores_decays_and_stops():
    kw = dict(patience=2, factor=0.3, min_lr=1e-3, decay_steps=3, tolerance=0.0)
    s = plateau_init(0.01)
    scores = [0.1, 0.2, 0.2, 0.19, 0.25, 0.2, 0.2, 0.1, 0.1, 0.5]
    log = []
    for e, sc in enumerate(scores):
        s, ev = plateau_update(s, sc, e, **kw)
        log.append((bool(ev.improved), bool(ev.restore), float(s.lr), bool(s.stopped)))
    assert [x[0] for x in log] == [1, 1, 0, 0, 1, 0, 0, 0, 0, 0]
    assert [x[1] for x in log] == [0, 0, 0, 1, 0, 0, 1, 0, 1, 0]  # plateaus
    np.testing.assert_allclose([x[2] for x in log][:4], [0.01, 0.01, 0.01, 0.003], rtol=1e-6)
    assert log[6][2] == pytest.approx(1e-3)  # floored at min_lr
    assert [x[3] for x in log] == [0] * 8 + [1, 1]  # 3rd plateau stops
    assert int(s.best_epoch) == 4 and float(s.best_score) == pytest.approx(0.25)
    # a non-finite score never improves
    s2, ev = plateau_update(plateau_init(0.01), jnp.nan, 0, **kw)
    assert not bool(ev.improved) and int(s2.bad_epochs) == 1


def test_plateau_schedule_vmaps_over_models():
    s = jax.vmap(plateau_init)(jnp.array([0.01, 0.02, 0.03]))
    patience = jnp.array([1, 2, 3])
    upd = jax.vmap(
        lambda s, sc, p: plateau_update(
            s, sc, 0, patience=p, factor=0.5, min_lr=0.0, decay_steps=5, tolerance=0.0
        )
    )
    s, _ = upd(s, jnp.array([0.5, 0.5, 0.5]), patience)
    for _ in range(2):
        s, ev = upd(s, jnp.array([0.1, 0.1, 0.1]), patience)
    np.testing.assert_allclose(np.asarray(s.lr), [0.0025, 0.01, 0.03])  # 2, 1, 0 decays


# ------------------------------------------------------------------------------ step


ONE_LAYER = Config(
    "one",
    ModelConfig(layers=1, hidden_channels=4, input_kern=5, gamma_input=0.1, gamma_readout=0.05),
    TrainConfig(batch_size=8, lr=0.01, progress=False),
)


@pytest.fixture(scope="module")
def one_layer():
    m = build_model(ONE_LAYER.model, image_shape=(1, 12, 16), n_neurons=3)
    tx = make_optimizer(ONE_LAYER.train.lr)
    step = make_train_step(m, ONE_LAYER.train, tx)
    return m, tx, step, jax.jit(step)


@pytest.mark.slow
def test_train_step_vmaps_over_models_with_own_hparams(one_layer):
    m, tx, step, jstep = one_layer
    keys = jax.random.split(jax.random.key(0), 2)
    params, state = jax.vmap(lambda k: m.init(k, mean_response=jnp.ones(3)))(keys)
    opt = jax.vmap(tx.init)(params)
    opt = jax.vmap(set_learning_rate)(opt, jnp.array([0.01, 0.001]))
    hp = make_hparams(ONE_LAYER, n_train=100)
    hps = jax.tree.map(lambda a: jnp.stack([a, 10 * a]), hp)
    x = jax.random.normal(jax.random.key(1), (8, 1, 12, 16))
    r = jax.random.poisson(jax.random.key(2), 1.0, (8, 3)).astype(jnp.float32)
    mask = jnp.arange(8) < 6
    rngs = jax.random.split(jax.random.key(3), 2)
    vstep = jax.jit(jax.vmap(step, in_axes=(0, 0, 0, None, None, None, 0, 0)))
    P, S, _opt, M = vstep(params, state, opt, x, r, mask, rngs, hps)
    for i in range(2):
        take = lambda t, i=i: jax.tree.map(lambda a: a[i], t)  # noqa: E731
        p1, s1, o1, m1 = jstep(take(params), take(state), take(opt), x, r, mask, rngs[i], take(hps))
        for a, b in zip(jax.tree.leaves((p1, s1)), jax.tree.leaves(take((P, S))), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
        assert float(m1["loss"]) == pytest.approx(float(M["loss"][i]), rel=1e-5)
    assert float(M["n"][0]) == 6.0 and bool(jnp.all(M["finite"]))
    # each model moved with its own learning rate
    d = [
        np.abs(np.asarray(P["readout"]["mu"][i] - params["readout"]["mu"][i])).max()
        for i in range(2)
    ]
    assert d[0] > 3 * d[1]


def test_train_step_skips_non_finite_updates(one_layer):
    m, tx, _, jstep = one_layer
    params, state = m.init(jax.random.key(0))
    opt = tx.init(params)
    x = jnp.zeros((8, 1, 12, 16)).at[0, 0, 0, 0].set(jnp.nan)
    p1, s1, o1, met = jstep(
        params,
        state,
        opt,
        x,
        jnp.ones((8, 3)),
        jnp.ones(8, bool),
        jax.random.key(1),
        make_hparams(ONE_LAYER, 100),
    )
    assert not bool(met["finite"])
    for a, b in zip(
        jax.tree.leaves((params, state, opt)), jax.tree.leaves((p1, s1, o1)), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ------------------------------------------------------------------------------- fit


def _leaves(tree):
    return [np.asarray(a) for a in jax.tree.leaves(tree)]


@pytest.mark.slow
def test_fit_deterministic_and_kill_resume_equals_uninterrupted(twin, tmp_path):
    ds, _ = twin
    full = fit(TINY, ds, seed=1, out_dir=tmp_path / "full")
    again = fit(TINY, ds, seed=1)  # no checkpoints
    for a, b in zip(_leaves(full.params), _leaves(again.params), strict=True):
        np.testing.assert_array_equal(a, b)  # bitwise on CPU
    first = fit(TINY, ds, seed=1, out_dir=tmp_path / "killed", max_epochs=3)  # "killed"
    assert first.history.sizes["epoch"] == 3 and latest_epoch(tmp_path / "killed") == 3
    resumed = fit(TINY, ds, seed=1, out_dir=tmp_path / "killed", resume=True)
    assert resumed.history.sizes["epoch"] == full.history.sizes["epoch"]
    for a, b in zip(
        _leaves((full.params, full.state)), _leaves((resumed.params, resumed.state)), strict=True
    ):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    np.testing.assert_allclose(
        resumed.history["val_correlation"].values, full.history["val_correlation"].values, atol=1e-6
    )
    assert resumed.best_epoch == full.best_epoch
    # the model learned something: validation correlation went up
    assert full.best_score > full.history["val_correlation"].values[0]
    # a finished run resumed again does nothing more
    done = fit(TINY, ds, seed=1, out_dir=tmp_path / "killed", resume=True)
    for a, b in zip(_leaves(done.params), _leaves(resumed.params), strict=True):
        np.testing.assert_array_equal(a, b)
    # the checkpoint reloads to the same model
    loaded = load_fit(tmp_path / "full")
    x = ds["images"].values[:7]
    np.testing.assert_allclose(loaded.predict(x), full.predict(x), rtol=1e-6)
    assert loaded.best_epoch == full.best_epoch and loaded.config == full.config


def test_resume_refuses_other_data_config_or_seed(twin, tmp_path):
    ds, _ = twin
    fit(TINY, ds, seed=0, out_dir=tmp_path, max_epochs=1)
    other, _ = simulate(
        seed=4, n_neurons=20, n_train=200, n_validation=60, n_test=20, test_repeats=4
    )
    with pytest.raises(DataError, match=r"refusing to resume.*fingerprint"):
        fit(TINY, other, seed=0, out_dir=tmp_path, resume=True)
    changed = dataclasses.replace(TINY, train=dataclasses.replace(TINY.train, lr=0.02))
    with pytest.raises(ConfigError, match=r"different config: train.lr: checkpoint 0.01"):
        fit(changed, ds, seed=0, out_dir=tmp_path, resume=True)
    with pytest.raises(ConfigError, match="seed"):
        fit(TINY, ds, seed=5, out_dir=tmp_path, resume=True)
    with pytest.raises(ConfigError, match=r"already holds a checkpoint.*resume=True"):
        fit(TINY, ds, seed=0, out_dir=tmp_path)


def test_fit_rejects_nan_response_naming_neuron_and_trial(twin):
    ds, _ = twin
    r = ds["responses"].values.copy()
    r[7, 3] = np.nan
    bad = ds.assign(responses=(("trial", "neuron"), r))
    with pytest.raises(DataError, match=r"trial 7 .*neuron 3 \(neuron_id 3\)"):
        fit(TINY, bad, seed=0)


def test_fit_rejects_missing_tier_and_unknown_config(twin):
    ds, _ = twin
    from jaxsel.data import subset

    with pytest.raises(DataError, match="validation"):
        fit(TINY, subset(ds, tiers=["train", "test"]), seed=0)
    with pytest.raises(ConfigError, match="did you mean 'small'"):
        fit("smal", ds)


def test_non_finite_loss_stops_with_step_and_batch(twin, tmp_path):
    ds, _ = twin
    boom = dataclasses.replace(TINY, train=dataclasses.replace(TINY.train, lr=1e30))
    with pytest.raises(
        TrainingError,
        match=r"non-finite .* at epoch 0, step \d+ \(batch \d+ "
        r"of 7 .*trials \[",
    ) as info:
        fit(boom, ds, seed=0, out_dir=tmp_path)
    err = info.value
    assert err.result.stopped == "nonfinite"
    assert all(np.isfinite(a).all() for a in _leaves(err.result.params))
    assert latest_epoch(tmp_path) is None  # nothing broken was written


def test_non_finite_loss_later_keeps_the_best_checkpoint(twin, tmp_path, monkeypatch):
    ds, _ = twin
    fit_module = importlib.import_module("jaxsel.train._fit_loop")  # (the epoch loop of fit)
    real_iterate = fit_module.iterate

    def poisoned(images, responses, batch_size, **kw):  # NaN images in epoch 2, batch 3
        for i, b in enumerate(real_iterate(images, responses, batch_size, **kw)):
            if kw.get("shuffle") and kw.get("epoch") == 2 and i == 3:
                b = b._replace(images=np.full_like(b.images, np.nan))
            yield b

    monkeypatch.setattr(fit_module, "iterate", poisoned)
    with pytest.raises(
        TrainingError,
        match=r"at epoch 2, step 17 \(batch 3 of 7 .* best model "
        r"\(epoch \d, validation correlation",
    ) as info:
        fit(TINY, ds, seed=0, out_dir=tmp_path)
    err = info.value
    assert (err.epoch, err.step, err.batch) == (2, 17, 3)
    assert latest_epoch(tmp_path) == 2  # epochs 0 and 1 were saved
    kept = load_fit(tmp_path)
    assert kept.best_epoch == err.result.best_epoch >= 0
    for a, b in zip(_leaves(kept.params), _leaves(err.result.params), strict=True):
        np.testing.assert_array_equal(a, b)


def test_response_fn_is_the_in_silico_pair(twin):
    ds, _ = twin
    res = fit(TINY, ds, seed=2, max_epochs=1)
    fn, params = res.response_fn()
    assert res.response_fn()[0] is fn  # stable for jit caching
    raw = ds["images"].values[:5]
    rates = np.asarray(jax.jit(fn)(params, raw))
    assert rates.shape == (5, 20) and (rates > 0).all()
    np.testing.assert_allclose(rates, res.predict(raw), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(fn(params, raw[:, 0])), rates, rtol=1e-5)
    np.testing.assert_allclose(predict((fn, params), raw, batch_size=2), rates, rtol=1e-5)
    # rates come back in the data's units: the mean prediction is near the mean response
    allr = res.predict(ds["images"].values[ds["tier"].values == "train"])
    mean = ds["responses"].values[ds["tier"].values == "train"].mean(0)
    assert np.median(np.abs(allr.mean(0) / mean - 1)) < 0.5
