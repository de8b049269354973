"""The command line: help, simulate round trip, clear errors."""

from pathlib import Path

import numpy as np
import pytest

from jaxsel.cli._main import build_parser, main
from jaxsel.data._static_folder import load_static
from jaxsel.data._twin import load_twin
from jaxsel.data._twin_simulate import simulate


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "simulate" in out and "demo" in out


@pytest.mark.slow
def test_simulate_writes_a_static_folder_equal_to_the_simulation(tmp_path):
    out = tmp_path / "twin"
    assert main(["simulate", "--out", str(out), "--neurons", "300", "--seed", "3"]) == 0
    ds = load_static(out / "static")
    ref, twin = simulate(seed=3, n_neurons=300)
    np.testing.assert_array_equal(ds["images"].values, ref["images"].values)
    np.testing.assert_array_equal(ds["responses"].values, ref["responses"].values)
    for c in ("image_id", "tier", "neuron_id"):
        np.testing.assert_array_equal(ds[c].values, ref[c].values)
    gt = load_twin(out / "ground_truth")
    imgs = ref["images"].values[:8]
    np.testing.assert_allclose(gt.rates(imgs), twin.rates(imgs), rtol=1e-6)
    np.testing.assert_array_equal(gt.params["true_fev"], twin.params["true_fev"])


def test_simulate_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "x"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    rc = main(
        [
            "simulate",
            "--out",
            str(out),
            "--neurons",
            "5",
            "--train",
            "20",
            "--validation",
            "5",
            "--test",
            "3",
            "--repeats",
            "2",
        ]
    )
    assert rc == 2
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_sweep_writes_one_summary_row_per_value_and_seed(tmp_path):
    import pandas as pd

    config = Path(__file__).resolve().parents[1] / "experiments" / "sweep_lr.toml"
    tiny = [
        "data.twin.n_neurons=10",
        "data.twin.n_train=100",
        "data.twin.n_validation=20",
        "data.twin.n_test=6",
        "data.twin.test_repeats=2",
        "sweep.max_epochs=1",
        "sweep.values=[0.001, 0.01]",
        "sweep.seeds=2",
    ]
    args = ["sweep", str(config), "--out", str(tmp_path / "run"), "--no-progress"]
    assert main(args + [a for kv in tiny for a in ("--set", kv)]) == 0
    table = pd.read_csv(tmp_path / "run" / "sweep" / "summary.csv")
    assert sorted(zip(table["lr"], table["seed"], strict=True)) == [
        (0.001, 0),
        (0.001, 1),
        (0.01, 0),
        (0.01, 1),
    ]
    assert np.isfinite(table["best_val_corr"]).all()
