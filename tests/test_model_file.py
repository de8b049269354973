"""Self-contained model files (save_model / load_model), the ResponseModel protocol, the one
batched predict and the ``jaxsel predict`` CLI: round trips against the fitted models, a
fresh process without the dataset, bad inputs, and a committed format-1 model."""

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest
import xarray as xr

from jaxsel._errors import DataError
from jaxsel.cli._main import main
from jaxsel.data._twin_simulate import simulate
from jaxsel.models import ResponseModel, predict
from jaxsel.models._config import ModelConfig
from jaxsel.train import (
    Config,
    FitResult,
    TrainConfig,
    as_response_model,
    fit,
    load_model,
    predict_responses,
    save_model,
)
from jaxsel.train._many import fit_many

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]
TINY_CNN = Config(
    "tiny",
    ModelConfig(
        layers=2,
        hidden_channels=4,
        input_kern=5,
        hidden_kern=3,
        gamma_input=0.1,
        gamma_readout=0.05,
    ),
    TrainConfig(batch_size=32, max_epochs=2, lr=0.01, progress=False),
)


@pytest.fixture(scope="module")
def twin():
    ds, _ = simulate(
        seed=2, n_neurons=6, shape=(18, 32), n_train=64, n_validation=16, n_test=8, test_repeats=2
    )
    return ds


@pytest.fixture(scope="module")
def fits(twin):
    return {
        "ln": fit("ln", twin, seed=0, max_epochs=2, progress=False),
        "cnn": fit(TINY_CNN, twin, seed=0, max_epochs=2),
    }


@pytest.fixture(scope="module")
def saved(fits, twin, tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {k: save_model(r, root / k, dataset=twin) for k, r in fits.items()}


def images_of(ds, n=10):
    return ds["images"].values[:n].astype(np.float32)


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("kind", ["ln", "cnn"])
def test_save_load_round_trip(kind, fits, saved, twin):
    res = fits[kind]
    m = load_model(saved[kind])
    assert isinstance(m, ResponseModel)
    x = images_of(twin)
    np.testing.assert_allclose(predict(m, x), res.predict(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.predict(x[:, 0]), res.predict(x), rtol=1e-5, atol=1e-6)
    fn, params = m  # unpacks as the in-silico pair
    np.testing.assert_allclose(np.asarray(fn(params, x)), res.predict(x), rtol=1e-5, atol=1e-6)
    assert m.image_shape == (1, 18, 32)
    np.testing.assert_array_equal(m.neuron_id, twin["neuron_id"].values)
    np.testing.assert_array_equal(m.coords["area"], twin["area"].values)
    prov = m.meta["provenance"]
    assert prov["dataset_fingerprint"] == res.fingerprint
    assert prov["seed"] == 0 and prov["best_epoch"] == res.best_epoch
    assert prov["jaxsel_version"] and prov["date_utc"].endswith("+00:00")
    assert prov["git_commit"] is None or len(prov["git_commit"]) == 40
    assert m.meta["format_version"] == 1 and m.meta["config"] == res.config.to_dict()
    assert not [p for p in saved[kind].parent.iterdir() if p.name.startswith(".")]
    assert sorted(p.name for p in saved[kind].iterdir()) == ["arrays", "model.json"]


def test_fresh_process_without_dataset_reproduces_predictions(fits, saved, twin, tmp_path):
    x = images_of(twin, 7)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "want.npy", fits["cnn"].predict(x))
    code = textwrap.dedent(f"""
        import numpy as np
        from jaxsel.train import load_model
        from jaxsel.models import predict
        m = load_model({str(saved["cnn"])!r})
        got = predict(m, np.load({str(tmp_path / "x.npy")!r}), batch_size=3)
        np.testing.assert_allclose(got, np.load({str(tmp_path / "want.npy")!r}),
                                   rtol=1e-5, atol=1e-6)
        print("ok")
    """)
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


def test_committed_format_1_model_still_loads():
    m = load_model(DATA / "saved_model_v1")
    x = np.load(DATA / "saved_model_v1_images.npy")
    np.testing.assert_allclose(
        predict(m, x), np.load(DATA / "saved_model_v1_rates.npy"), rtol=1e-5, atol=1e-6
    )
    assert m.meta["format_version"] == 1 and m.image_shape == x.shape[1:]
    size = sum(f.stat().st_size for f in (DATA / "saved_model_v1").rglob("*") if f.is_file())
    assert size < 500_000


# --------------------------------------------------------------------------- CLI


def test_cli_predict_writes_responses(fits, saved, twin, tmp_path):
    x = images_of(twin, 9)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "r.nc"
    assert main(["predict", str(saved["ln"]), str(tmp_path / "x.npy"), "--out", str(out)]) == 0
    with xr.open_dataset(out, engine="h5netcdf") as f:
        r = f["responses"].load()
    assert r.dims == ("image", "neuron") and r.attrs["units"]
    np.testing.assert_allclose(r.values, fits["ln"].predict(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(r["neuron_id"].values, twin["neuron_id"].values)
    np.testing.assert_array_equal(r["area"].values, twin["area"].values)
    # again through a real process and the console entry point module; (n, y, x) images
    np.save(tmp_path / "x3.npy", x[:, 0])
    out2 = tmp_path / "r2.nc"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxsel.cli._main",
            "predict",
            str(saved["cnn"]),
            str(tmp_path / "x3.npy"),
            "--out",
            str(out2),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu"},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    with xr.open_dataset(out2, engine="h5netcdf") as f:
        np.testing.assert_allclose(
            f["responses"].values, fits["cnn"].predict(x), rtol=1e-5, atol=1e-6
        )


def test_cli_predict_errors_are_one_line(saved, tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.zeros((2, 1, 5, 5), np.float32))
    rc = main(
        ["predict", str(saved["ln"]), str(tmp_path / "bad.npy"), "--out", str(tmp_path / "r.nc")]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "(1, 5, 5)" in err and "(1, 18, 32)" in err
    assert not (tmp_path / "r.nc").exists()
    rc = main(
        [
            "predict",
            str(tmp_path / "nope"),
            str(tmp_path / "bad.npy"),
            "--out",
            str(tmp_path / "r.nc"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "nope" in err and "\n" not in err


# --------------------------------------------------------------------------- bad inputs


def test_missing_and_corrupt_folders(saved, tmp_path):
    with pytest.raises(DataError, match=r"nope.*no such model folder"):
        load_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty.*no model.json"):
        load_model(tmp_path / "empty")
    bad = tmp_path / "corrupt"
    shutil.copytree(saved["ln"], bad)
    (bad / "model.json").write_text("{not json")
    with pytest.raises(DataError, match=r"corrupt.*model\.json.*corrupt model\.json"):
        load_model(bad)
    noarr = tmp_path / "noarrays"
    shutil.copytree(saved["ln"], noarr)
    shutil.rmtree(noarr / "arrays")
    with pytest.raises(DataError, match=r"noarrays.*cannot read the parameters"):
        load_model(noarr)


def test_newer_format_version_is_refused(saved, tmp_path):
    new = tmp_path / "future"
    shutil.copytree(saved["ln"], new)
    meta = json.loads((new / "model.json").read_text())
    meta["format_version"] = 99
    (new / "model.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"future.*format 99.*up to 1.*upgrade"):
        load_model(new)


def test_wrong_image_shape_names_images_and_both_shapes(saved):
    m = load_model(saved["ln"])
    with pytest.raises(DataError, match=r"'images'.*\(1, 5, 5\).*\(1, 18, 32\)"):
        predict(m, np.zeros((2, 1, 5, 5), np.float32))
    with pytest.raises(DataError, match="'images'"):
        predict(m, np.zeros((2, 3, 1, 18, 32), np.float32))


def test_save_is_atomic_and_refuses_what_it_cannot_save(fits, saved, tmp_path, monkeypatch):
    with pytest.raises(DataError, match="not empty"):
        save_model(fits["ln"], saved["ln"])  # existing folder kept
    assert load_model(saved["ln"]).n_neurons == 6
    fn, params = fits["ln"].response_fn()
    with pytest.raises(DataError, match="no architecture config"):
        save_model((fn, params), tmp_path / "pair")
    import orbax.checkpoint as ocp

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ocp.StandardCheckpointer, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save_model(fits["ln"], tmp_path / "half")
    assert not (tmp_path / "half").exists() and list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- protocol


def test_as_response_model_accepts_each_model_type(fits, saved, twin):
    x = images_of(twin, 5)
    want = fits["ln"].predict(x)
    fn, params = fits["ln"].response_fn()
    cases = [fits["ln"], fits["ln"].response_model(), (fn, params), saved["ln"], str(saved["ln"])]
    for case in cases:
        m = as_response_model(case)
        assert isinstance(m, ResponseModel)
        np.testing.assert_allclose(predict(m, x), want, rtol=1e-5, atol=1e-6)
    m = fits["ln"].response_model()
    assert as_response_model(m) is m and m.image_shape == (1, 18, 32)
    assert fits["ln"].response_fn()[0] is m.fn  # one function: one compile
    with pytest.raises(DataError, match="got a int"):
        as_response_model(3)


def test_many_result_mean_or_member(twin, tmp_path):
    many = fit_many("ln", twin, seeds=[0, 1], max_epochs=2, progress=False)
    x = images_of(twin, 5)
    members = [many.member(k).predict(x) for k in range(2)]
    mean = as_response_model(many)
    np.testing.assert_allclose(predict(mean, x), np.mean(members, 0), rtol=1e-5, atol=1e-6)
    one = many.response_model(1)
    np.testing.assert_allclose(predict(one, x), members[1], rtol=1e-5, atol=1e-6)
    loaded = load_model(save_model(many, tmp_path / "ens"))
    assert loaded.meta["kind"] == "ensemble_mean" and loaded.meta["n_models"] == 2
    np.testing.assert_allclose(predict(loaded, x), np.mean(members, 0), rtol=1e-5, atol=1e-6)
    with pytest.raises(DataError, match="which"):
        many.response_model("median")


def test_predict_equals_the_unbatched_function(fits, twin):
    m = fits["cnn"].response_model()
    x = images_of(twin, 11)
    full = np.asarray(jax.jit(m.fn)(m.params, x))
    for bs in (1, 4, 11, 64):
        np.testing.assert_allclose(predict(m, x, batch_size=bs), full, rtol=1e-5, atol=1e-6)
    assert predict(m, x[:0]).shape == (0, 6)
    assert isinstance(fits["cnn"], FitResult)


def test_predict_responses_is_labelled(saved, twin):
    x = images_of(twin, 4)
    r = predict_responses(saved["ln"], x, image_id=[7, 8, 9, 10])
    assert r.dims == ("image", "neuron") and r.name == "responses"
    assert list(r["image_id"].values) == [7, 8, 9, 10]
    np.testing.assert_array_equal(r["neuron_id"].values, twin["neuron_id"].values)


def test_evaluate_takes_a_loaded_model(fits, saved, twin):
    from jaxsel.measures._evaluation import evaluate

    a = evaluate(load_model(saved["ln"]), twin)
    b = evaluate(fits["ln"], twin)
    np.testing.assert_allclose(
        a["test_correlation"].values, b["test_correlation"].values, rtol=1e-5
    )
