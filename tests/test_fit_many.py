"""fit_many: K models in one program equal K separate fits; sweeps; checkpoints."""

import jax
import numpy as np
import pytest
from _many_helpers import tiny_config, tiny_twin

from jaxsel._errors import ConfigError
from jaxsel.measures._sweep_summary import ranked_curves, sweep_summary
from jaxsel.train._fit import fit
from jaxsel.train._many import fit_many
from jaxsel.train._sweep import expand, sweep_spec

SEEDS = [0, 1, 2]
LRS = [0.005, 0.03, 0.3]
GR = [0.05, 0.0, 0.3]
TOL = 1e-4  # params and validation curves, float32 (measured ~2e-6)


@pytest.fixture(scope="module")
def data():
    ds, twin = tiny_twin()
    return ds


@pytest.fixture(scope="module")
def many(data):
    return fit_many(
        tiny_config(lr_decay_steps=1, max_epochs=6),
        data,
        seeds=SEEDS,
        hparams={"lr": LRS, "gamma_readout": GR},
        formulation="vmap",
    )


def test_equals_separate_fits(data, many):
    stops = set()
    for k in range(3):
        f = fit(
            tiny_config(lr_decay_steps=1, max_epochs=6).replace(lr=LRS[k], gamma_readout=GR[k]),
            data,
            seed=SEEDS[k],
        )
        m = many.member(k)
        assert m.best_epoch == f.best_epoch
        assert m.stopped == f.stopped
        assert len(m.history.epoch) == len(f.history.epoch)  # per-model early stopping
        np.testing.assert_allclose(
            m.history["val_correlation"].values, f.history["val_correlation"].values, atol=TOL
        )
        np.testing.assert_allclose(m.history["lr"].values, f.history["lr"].values, rtol=1e-6)
        for a, b in zip(jax.tree.leaves(m.params), jax.tree.leaves(f.params), strict=True):
            np.testing.assert_allclose(a, b, atol=TOL, rtol=TOL)
        stops.add(len(f.history.epoch))
    assert len(stops) > 1, "the test should exercise different stopping epochs"


def test_loop_formulation_equals_vmap(data, many):
    """Own seeds (so own batch orders), LRs and penalties; per-model early stopping."""
    loop = fit_many(
        tiny_config(lr_decay_steps=1, max_epochs=6),
        data,
        seeds=SEEDS,
        hparams={"lr": LRS, "gamma_readout": GR},
        formulation="loop",
    )
    np.testing.assert_array_equal(loop.best_epoch, many.best_epoch)
    np.testing.assert_allclose(
        loop.history["val_correlation"].values, many.history["val_correlation"].values, atol=TOL
    )
    for a, b in zip(jax.tree.leaves(loop.params), jax.tree.leaves(many.params), strict=True):
        np.testing.assert_allclose(a, b, atol=TOL, rtol=TOL)


def test_summary_and_frozen(many):
    s = many.summary()
    assert s.sizes["model"] == 3 and list(s["lr"].values) == pytest.approx(LRS)
    h = many.history
    n_ep = np.isfinite(h["val_correlation"].values).sum(1)
    # after stopping a model's history is NaN (it was frozen, not trained)
    for k in range(3):
        assert np.all(np.isnan(h["val_correlation"].values[k, n_ep[k] :]))


def test_bad_inputs(data):
    with pytest.raises(ConfigError, match="seeds"):
        fit_many(tiny_config(), data, seeds=[0, 1], hparams={"lr": [0.1, 0.2, 0.3]})
    with pytest.raises(ConfigError, match="per-model"):
        fit_many(tiny_config(), data, hparams={"layers": [1, 2]})
    with pytest.raises(ConfigError, match="fused"):
        fit_many(tiny_config(), data, seeds=[0, 1], formulation="fused")


@pytest.mark.slow
def test_checkpoint_resume(data, tmp_path):
    cfg = tiny_config(max_epochs=2)
    full = fit_many(
        cfg,
        data,
        seeds=[0, 1],
        targets=[[0, 1], [2, 3]],
        out_dir=tmp_path / "a",
        formulation="vmap",
    )
    fit_many(
        cfg,
        data,
        seeds=[0, 1],
        targets=[[0, 1], [2, 3]],
        out_dir=tmp_path / "b",
        max_epochs=1,
        formulation="vmap",
    )
    res = fit_many(
        cfg,
        data,
        seeds=[0, 1],
        targets=[[0, 1], [2, 3]],
        out_dir=tmp_path / "b",
        resume=True,
        formulation="vmap",
    )
    for a, b in zip(jax.tree.leaves(full.params), jax.tree.leaves(res.params), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    with pytest.raises(ConfigError, match="already holds"):
        fit_many(cfg, data, seeds=[0, 1], out_dir=tmp_path / "a")
    with pytest.raises(ConfigError, match="differ"):
        fit_many(
            cfg, data, seeds=[5, 1], targets=[[0, 1], [2, 3]], out_dir=tmp_path / "a", resume=True
        )


def test_sweep_spec_and_summary(data, tmp_path):
    spec = sweep_spec(
        {
            "base": tiny_config().to_dict(),
            "grid": {"lr": [0.01, 0.03], "layers": [1, 2]},
            "seeds": [0, 1],
        }
    )
    assert len(spec.points) == 4 and spec.n_models == 8
    groups = expand(spec)
    assert len(groups) == 2  # layers splits programs, lr does not
    assert all(len(hp["lr"]) == 4 for _, hp, _ in groups)
    with pytest.raises(ConfigError, match="exactly one"):
        sweep_spec({"grid": {"lr": [1]}, "list": [{"lr": 1}]})
    with pytest.raises(ConfigError, match="did you mean"):
        sweep_spec({"list": [{"lrr": 0.1}]})
    # summary of a synthetic metric (point, seed, neuron) against hand counts
    import xarray as xr

    m = xr.DataArray(
        np.array([[[0.9, 0.1, 0.7], [0.8, 0.8, 0.0]], [[0.1, 0.1, 0.1], [0.7, 0.0, 0.0]]]),
        dims=("point", "seed", "neuron"),
        coords={"point": [0, 1], "seed": [0, 1], "lr": ("point", [0.01, 0.1])},
    )
    tab = sweep_summary(m)
    assert list(tab["informative_count_mean"]) == pytest.approx([2.0, 0.5])
    assert tab["hyperparameter"].iloc[0] == "lr"
    curves = ranked_curves(m)
    assert curves["mean"].isel(point=0).values[0] == pytest.approx(0.85)
    tab.to_csv(tmp_path / "s.csv")
    assert (tmp_path / "s.csv").read_text().count("\n") == 3


def test_energy_readout_init_is_the_same_in_fit_many(data):
    """readout_init='energy': each model's positions start where fit() starts them."""
    cfg = tiny_config(max_epochs=1).replace(readout_init="energy")
    many = fit_many(cfg, data, seeds=[0, 1], targets=[[0, 1], [2, 3]], formulation="loop")
    for k, cols in enumerate([[0, 1], [2, 3]]):
        sub = data.isel(neuron=cols)
        f = fit(cfg, sub, seed=k)
        for a, b in zip(
            jax.tree.leaves(many.member(k).params), jax.tree.leaves(f.params), strict=True
        ):
            np.testing.assert_allclose(a, b, atol=TOL, rtol=TOL)
