# pyright: reportArgumentType=false, reportCallIssue=false
# (this file passes wrong types on purpose: the runtime checks are under test)
"""Bad-input catalogue of the public API (issue 14): every misuse of an argument of
``fit`` / ``fit_many``, ``optimize_meis`` / ``gradient_rf`` / ``optimal_gabors``,
``oracle_correlation`` / ``evaluate`` and every out-of-range run-config key gets a
JaxselError whose one-line message names the argument (or key) and what is expected,
before any work starts; nothing returns a NaN-filled result silently."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from jaxsel import ConfigError, DataError, JaxselError, TrainingError
from jaxsel.cli._main import main
from jaxsel.data import repeats
from jaxsel.insilico import (
    MEIConfig,
    gradient_rf,
    optimal_gabors,
    optimize_meis,
    recipes,
    twin_model,
)
from jaxsel.measures import evaluate, oracle_correlation, selection_table
from jaxsel.pipeline import load_config
from jaxsel.train import fit, fit_many, named_config

SHAPE = (12, 16)
NAN = float("nan")


@pytest.fixture(scope="module")
def env(twin_factory) -> dict[str, Any]:
    ds, twin = twin_factory(
        seed=7, n_neurons=6, shape=SHAPE, n_train=96, n_validation=24, n_test=8, test_repeats=3
    )
    cfg = named_config("ln").replace(batch_size=32, max_epochs=1, progress=False)
    ln = fit(cfg, ds, seed=0)
    fn, p = twin_model(twin)
    nan_p = {
        k: v.at[(0,) * v.ndim].set(np.nan) if np.issubdtype(v.dtype, np.floating) else v
        for k, v in p.items()
    }
    return {
        "ds": ds,
        "cfg": cfg,
        "ln": ln,
        "ln_pair": ln.response_fn(),
        "twin": (fn, p),
        "nan_twin": (fn, nan_p),
        "mei": recipes.norm(1.0, steps=2),
    }


def _mei(env, pair="twin", **kw):
    fn, p = env[pair]
    args = {"config": env["mei"], "image_shape": SHAPE, **kw}
    return lambda: optimize_meis(fn, p, [0], **args)


def _gabor(env, pair="twin", **kw):
    fn, p = env[pair]
    args = {"norm": 1.0, "steps": 2, **kw}
    shape = args.pop("shape", SHAPE)
    return lambda: optimal_gabors(fn, p, shape, **args)


def _grad(env, pair="twin", **kw):
    fn, p = env[pair]
    return lambda: gradient_rf(fn, p, **kw)


def _nan_image():
    im = np.full(SHAPE, 127.5, np.float32)
    im[3, 4] = np.nan
    return im


def _inf_repeats(env):
    rep = repeats(env["ds"]).copy()
    rep.values[0, 1, 2] = np.inf
    return rep


# (id, make the call from env, error type, regex the one-line message must match: the
# argument's name ... what is expected)
CASES: list[tuple[str, Callable[[dict], Callable[[], Any]], type, str]] = [
    # ---- fit / fit_many
    (
        "fit-ndarray",
        lambda e: lambda: fit(e["cfg"], e["ds"]["images"].values),
        DataError,
        r"dataset.*numpy.ndarray.*xarray\.Dataset.*make_dataset",
    ),
    (
        "fit-seed-str",
        lambda e: lambda: fit(e["cfg"], e["ds"], seed="abc"),
        ConfigError,
        r"seed = 'abc'.*integer",
    ),
    (
        "fit-seed-float",
        lambda e: lambda: fit(e["cfg"], e["ds"], seed=1.5),
        ConfigError,
        r"seed = 1\.5.*integer",
    ),
    (
        "fit-max_epochs-0",
        lambda e: lambda: fit(e["cfg"], e["ds"], max_epochs=0),
        ConfigError,
        r"max_epochs = 0.*>= 1",
    ),
    (
        "fit-config-max_epochs-0",
        lambda e: lambda: fit(e["cfg"].replace(max_epochs=0), e["ds"]),
        ConfigError,
        r"train\.max_epochs = 0.*>= 1",
    ),
    (
        "fit-progress-str",
        lambda e: lambda: fit(e["cfg"], e["ds"], progress="yes"),
        ConfigError,
        r"progress = 'yes'.*True or False",
    ),
    (
        "fit-out_dir-int",
        lambda e: lambda: fit(e["cfg"], e["ds"], out_dir=3),
        ConfigError,
        r"out_dir = 3.*folder path",
    ),
    (
        "fit_many-ndarray",
        lambda e: lambda: fit_many(e["cfg"], e["ds"]["responses"].values),
        DataError,
        r"dataset.*xarray\.Dataset",
    ),
    (
        "fit_many-seeds-str",
        lambda e: lambda: fit_many(e["cfg"], e["ds"], seeds="abc"),
        ConfigError,
        r"seeds = 'abc'.*ints",
    ),
    (
        "fit_many-seeds-float",
        lambda e: lambda: fit_many(e["cfg"], e["ds"], seeds=[0.5, 1.5]),
        ConfigError,
        r"seeds = .*ints",
    ),
    (
        "fit_many-max_epochs-0",
        lambda e: lambda: fit_many(e["cfg"], e["ds"], max_epochs=0),
        ConfigError,
        r"max_epochs = 0.*>= 1",
    ),
    # ---- optimize_meis
    (
        "mei-shape-vs-fitted-model",
        lambda e: _mei(e, "ln_pair", image_shape=(1, 20, 30)),
        DataError,
        r"image_shape.*\(1, 20, 30\).*model takes \(1, 12, 16\)",
    ),
    (
        "mei-shape-vs-twin",
        lambda e: _mei(e, image_shape=(1, 20, 30)),
        DataError,
        r"image_shape.*cannot take.*\(1, 20, 30\)",
    ),
    (
        "mei-3-channels",
        lambda e: _mei(e, "ln_pair", image_shape=(3, *SHAPE)),
        DataError,
        r"image_shape.*\(3, 12, 16\).*model takes",
    ),
    (
        "mei-3-channels-twin",
        lambda e: _mei(e, image_shape=(3, *SHAPE)),
        DataError,
        r"image_shape.*cannot take",
    ),
    (
        "mei-shape-1d",
        lambda e: _mei(e, image_shape=(36,)),
        ConfigError,
        r"image_shape = \(36,\).*\(height, width\)",
    ),
    (
        "mei-nan-params",
        lambda e: _mei(e, "nan_twin"),
        DataError,
        r"params.*non-finite rates.*finite parameters",
    ),
    ("mei-seeds-0", lambda e: _mei(e, seeds=0), ConfigError, r"seeds = 0.*>= 1"),
    ("mei-seed-str", lambda e: _mei(e, seed="x"), ConfigError, r"seed = 'x'.*integer"),
    (
        "mei-nan-start-image",
        lambda e: _mei(
            e, config=e["mei"].replace(start="natural"), start_images=_nan_image()[None]
        ),
        DataError,
        r"start_images.*non-finite.*finite numbers",
    ),
    (
        "meiconfig-lr-nan",
        lambda e: lambda: MEIConfig(lr=NAN),
        ConfigError,
        r"MEIConfig\.lr = nan.*finite",
    ),
    (
        "meiconfig-lr-neg",
        lambda e: lambda: MEIConfig(lr=-1.0),
        ConfigError,
        r"MEIConfig\.lr = -1.*positive",
    ),
    (
        "meiconfig-steps-0",
        lambda e: lambda: MEIConfig(steps=0),
        ConfigError,
        r"MEIConfig\.steps = 0.*>= 1",
    ),
    (
        "meiconfig-steps-str",
        lambda e: lambda: MEIConfig(steps="5"),
        ConfigError,
        r"MEIConfig\.steps = '5'.*integer",
    ),  # pyright: ignore[reportArgumentType]
    (
        "meiconfig-momentum",
        lambda e: lambda: MEIConfig(momentum=1.5),
        ConfigError,
        r"MEIConfig\.momentum = 1\.5.*\[0, 1\)",
    ),
    (
        "meiconfig-norm-nan",
        lambda e: lambda: MEIConfig(norm=NAN),
        ConfigError,
        r"MEIConfig\.norm = nan.*finite",
    ),
    (
        "meiconfig-start_std-neg",
        lambda e: lambda: MEIConfig(start_std=-0.1),
        ConfigError,
        r"MEIConfig\.start_std.*>= 0",
    ),
    # ---- gradient_rf
    (
        "grad-nan-pixel",
        lambda e: _grad(e, image=_nan_image()),
        DataError,
        r"image.*1 non-finite.*\(3, 4\).*finite numbers",
    ),
    (
        "grad-nan-value",
        lambda e: _grad(e, image_shape=SHAPE, value=NAN),
        ConfigError,
        r"value = nan.*finite number",
    ),
    (
        "grad-shape-vs-twin",
        lambda e: _grad(e, image_shape=(20, 30), value=127.5),
        DataError,
        r"image_shape.*cannot take.*\(1, 20, 30\)",
    ),
    (
        "grad-image-vs-fitted",
        lambda e: _grad(e, "ln_pair", image=np.zeros((20, 30))),
        DataError,
        r"image.*\(1, 20, 30\).*model takes \(1, 12, 16\)",
    ),
    (
        "grad-nan-params",
        lambda e: _grad(e, "nan_twin", image_shape=SHAPE, value=127.5),
        DataError,
        r"params.*non-finite rates",
    ),
    # ---- optimal_gabors
    ("gabor-norm-nan", lambda e: _gabor(e, norm=NAN), ConfigError, r"norm = nan.*positive finite"),
    ("gabor-norm-neg", lambda e: _gabor(e, norm=-1.0), ConfigError, r"norm = -1.*positive finite"),
    ("gabor-lr-nan", lambda e: _gabor(e, lr=NAN), ConfigError, r"lr = nan.*positive finite"),
    ("gabor-lr-neg", lambda e: _gabor(e, lr=-1.0), ConfigError, r"lr = -1.*positive finite"),
    ("gabor-steps-0", lambda e: _gabor(e, steps=0), ConfigError, r"steps = 0.*>= 1"),
    (
        "gabor-shape-1d",
        lambda e: _gabor(e, shape=(36,)),
        ConfigError,
        r"shape = \(36,\).*\(height, width\)",
    ),
    (
        "gabor-shape-vs-fitted",
        lambda e: _gabor(e, "ln_pair", shape=(20, 30)),
        DataError,
        r"shape.*\(1, 20, 30\).*model takes \(1, 12, 16\)",
    ),
    ("gabor-shape-vs-twin", lambda e: _gabor(e, shape=(20, 30)), DataError, r"shape.*cannot take"),
    ("gabor-channels-0", lambda e: _gabor(e, channels=0), ConfigError, r"channels = 0.*>= 1"),
    ("gabor-nan-params", lambda e: _gabor(e, "nan_twin"), DataError, r"params.*non-finite rates"),
    # ---- oracle_correlation / evaluate
    (
        "oracle-inf",
        lambda e: lambda: oracle_correlation(_inf_repeats(e)),
        DataError,
        r"rep.*1 infinite.*\(0, 1, 2\).*finite responses",
    ),
    (
        "oracle-strings",
        lambda e: lambda: oracle_correlation(np.full((2, 2, 2), "a")),
        DataError,
        r"rep.*dtype.*repeats",
    ),
    (
        "selection_table-ndarray",
        lambda e: lambda: selection_table(e["ds"]["responses"].values),
        DataError,
        r"data.*ndarray.*dataset or a repeats DataArray",
    ),
    (
        "evaluate-ds-ndarray",
        lambda e: lambda: evaluate(e["ln"], e["ds"]["images"].values),
        DataError,
        r"ds.*ndarray.*xarray\.Dataset",
    ),
    (
        "evaluate-model-swapped",
        lambda e: lambda: evaluate(e["ds"], e["ds"]),
        DataError,
        r"model.*Dataset.*FitResult",
    ),
    (
        "evaluate-nan-model",
        lambda e: lambda: evaluate(e["nan_twin"], e["ds"]),
        DataError,
        r"model.*non-finite rates.*finite predictions",
    ),
    (
        "evaluate-batch_size-0",
        lambda e: lambda: evaluate(e["ln"], e["ds"], batch_size=0),
        ConfigError,
        r"batch_size = 0.*>= 1",
    ),
]


def _one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text, text
    return text


@pytest.mark.parametrize(
    ("make", "kind", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_argument(env, make, kind, pattern):
    call = make(env)
    with pytest.raises(JaxselError) as info:
        call()
    assert isinstance(info.value, kind), repr(info.value)
    assert re.search(pattern, _one_line(info.value)), str(info.value)


CONFIG_CASES = [
    ("train.overrides.max_epochs", 0, r"'train\.overrides\.max_epochs' must be >= 1"),
    ("train.overrides.lr", -1.0, r"'train\.overrides\.lr' = -1\.0: must be > 0"),
    ("train.overrides.lr", NAN, r"'train\.overrides\.lr' must be a finite number"),
    (
        "train.overrides.hidden_channels",
        0,
        r"'train\.overrides\.hidden_channels' = 0: must be a positive",
    ),
    (
        "train.per_model.ln.batch_size",
        0,
        r"'train\.per_model\.ln\.batch_size' = 0: must be a positive",
    ),
    ("mei.n_neurons", -1, r"'mei\.n_neurons' must be >= 0"),
    ("mei.norm_fraction", NAN, r"'mei\.norm_fraction' must be a finite number > 0"),
    ("mei.overrides.lr", NAN, r"'mei\.overrides\.lr'.*finite"),
    ("mei.overrides.steps", 0, r"'mei\.overrides\.steps'.*>= 1"),
    ("mei.overrides.momentum", 1.0, r"'mei\.overrides\.momentum'.*\[0, 1\)"),
    ("gabor.lr", -1.0, r"'gabor\.lr' must be a finite learning rate > 0"),
    ("gabor.lr", NAN, r"'gabor\.lr' must be a finite learning rate > 0"),
    ("gabor.steps", 0, r"'gabor\.steps' must be >= 1"),
    ("sweep.seeds", 0, r"'sweep\.seeds' must be >= 1"),
    ("sweep.max_epochs", -1, r"'sweep\.max_epochs' must be >= 0"),
]


@pytest.mark.parametrize(
    ("key", "value", "pattern"), CONFIG_CASES, ids=[f"{k}={v}" for k, v, _ in CONFIG_CASES]
)
def test_bad_config_value(key, value, pattern):
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides={key: value, "train.models": ["ln", "small"]})
    assert re.search(pattern, _one_line(info.value)), str(info.value)


def test_config_error_stops_the_run_before_any_stage(tmp_path, capsys):
    out = tmp_path / "run"
    path = tmp_path / "bad.toml"
    path.write_text(f'[run]\nout = "{out}"\n\n[gabor]\nlr = -1.0\n')
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err and "'gabor.lr'" in err and "Traceback" not in err
    assert not out.exists()  # no stage ran, not even the data stage


def test_good_values_still_load():
    cfg = load_config(
        None,
        overrides={
            "train.overrides.max_epochs": 3,
            "mei.n_neurons": 0,
            "mei.overrides.lr": 0.05,
            "gabor.lr": 0.1,
        },
    )
    assert cfg.train.overrides["max_epochs"] == 3 and cfg.gabor.lr == 0.1


def test_constant_validation_responses_are_an_error(env):
    ds = env["ds"].copy(deep=True)
    r = ds["responses"].values
    r[ds["tier"].values == "validation"] = 2.0
    ds["responses"] = (ds["responses"].dims, r)
    with pytest.raises(TrainingError, match=r"validation responses are constant"):
        fit(env["cfg"], ds, seed=0)


def test_oracle_correlation_accepts_a_dataset(env):
    ds = env["ds"]
    a = oracle_correlation(ds)
    b = oracle_correlation(repeats(ds, "test"))
    np.testing.assert_array_equal(a.values, b.values)
    assert np.isfinite(a.values).any()


def test_fitted_model_declares_its_image_shape(env):
    fn, _ = env["ln_pair"]
    assert fn.image_shape == (1, *SHAPE)
    # and the right shape still runs
    res = optimize_meis(*env["ln_pair"], [0], config=env["mei"], image_shape=SHAPE)
    assert np.isfinite(res["mei"].values).all()


def test_nan_validation_every_epoch_is_an_error(env):
    """Validation images far outside the training range make every validation prediction
    non-finite, so no validation correlation is defined (reported as 0 or NaN): fit must say
    so instead of returning an unjudged model as the "best"."""
    ds = env["ds"].copy(deep=True)
    val = ds["tier"].values == "validation"
    images = ds["images"].values
    rng = np.random.default_rng(0)
    images[val] = rng.choice([-1e30, 1e30], size=images[val].shape).astype(np.float32)
    ds["images"] = (ds["images"].dims, images)
    with pytest.raises(TrainingError) as info:
        fit(env["cfg"].replace(max_epochs=2), ds, seed=0)
    text = _one_line(info.value)
    assert re.search(r"no validation correlation could be computed at any of the 2 epochs", text)
    assert re.search(
        r"predictions on the validation tier .*check the images of the validation", text
    )
    assert info.value.result.history.sizes["epoch"] == 2  # the fit rides along on the error
