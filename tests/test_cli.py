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


def _parser_help(parser) -> dict[str, str]:
    """Every (sub)command's formatted help: {'jaxsel': ..., 'jaxsel train': ...}."""
    import argparse

    out = {parser.prog: parser.format_help()}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out[sub.prog] = sub.format_help()
    return out


def test_version_prints_the_package_version(capsys):
    import jaxsel

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"jaxsel {jaxsel.__version__}"


def test_models_lists_every_named_config_and_alias(capsys):
    from jaxsel.train import CONFIG_ALIASES, NAMED_CONFIGS

    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    first = {line.split()[0]: line for line in lines if line.strip()}
    for name in NAMED_CONFIGS:
        assert name in first, name
    for alias, real in CONFIG_ALIASES.items():
        assert f"alias of '{real}'" in first[alias]
    assert "16 channels" in first["small"] and "LN" in first["ln"]


def test_models_name_shows_every_field_with_its_value(capsys):
    from jaxsel.train import named_config

    assert main(["models", "small"]) == 0
    out = capsys.readouterr().out
    d = named_config("small").to_dict()
    for section in ("model", "train"):
        assert f"[{section}]" in out
        for key in d[section]:
            assert f"\n{key} = " in out, key
    assert "\nhidden_channels = 16\n" in out and "\nmax_epochs = 30\n" in out


def test_models_unknown_name_is_one_line_with_the_closest(capsys):
    assert main(["models", "smal"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean 'small'?" in err


@pytest.mark.parametrize(("typo", "near"), [("dmeo", "demo"), ("trian", "train")])
def test_mistyped_command_suggests_the_closest(typo, near, capsys):
    with pytest.raises(SystemExit) as e:
        main([typo])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"unknown command '{typo}' (did you mean '{near}'?)" in err


def test_other_argument_errors_keep_argparse_message(capsys):
    with pytest.raises(SystemExit) as e:
        main(["simulate"])  # --out is required
    assert e.value.code == 2
    assert "the following arguments are required: --out" in capsys.readouterr().err


def test_no_help_shows_a_meaningless_default():
    helps = _parser_help(build_parser())
    assert len(helps) >= 12
    for prog, text in helps.items():
        for junk in ("(default: None)", "(default: False)", "(default: [])"):
            assert junk not in text, (prog, junk)
    assert "(default: 300)" in helps["jaxsel simulate"]  # real defaults stay


@pytest.mark.parametrize(
    ("override", "want"),
    [
        ("train.lr=0.01", "--set train.lr=0.01: unknown key 'train.lr'"),
        ("train.overrides.lr=abc", "--set train.overrides.lr=abc: key 'train.overrides.lr'"),
        ("nonsense", "--set nonsense: "),
        ("mei.steps=3", "did you mean --set mei.overrides.steps=...?"),
    ],
)
def test_bad_set_is_blamed_on_set_not_on_the_file(override, want, capsys, tmp_path):
    config = Path(__file__).resolve().parents[1] / "experiments" / "demo_twin.toml"
    rc = main(["select", str(config), "--out", str(tmp_path / "r"), "--set", override])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and want in err
    assert str(config) not in err
    assert not (tmp_path / "r").exists()  # nothing ran


def test_a_bad_config_file_is_still_blamed_on_the_file(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nlr = 0.01\n")
    assert main(["select", str(bad), "--set", "run.seed=1"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: unknown key 'train.lr'" in err and "--set" not in err


def test_progress_is_plain_lines_when_output_is_not_a_terminal(capsys):
    import logging

    from jaxsel.pipeline._context import StageProgress, progress_mode

    assert progress_mode(False) is None
    assert progress_mode(True) == "lines"  # pytest captures: not a TTY
    log = logging.getLogger("test_progress_lines")
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda r: records.append(r.getMessage())  # type: ignore[method-assign]
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        p = StageProgress(log, "[mei]", "model MEIs", "MEI", "lines", every=3600.0)
        for done in (100, 200, 300):
            p(done, 300)
    finally:
        log.removeHandler(handler)
    # throttled: only the last line (the period is an hour), with the elapsed time
    assert len(records) == 1 and records[0].startswith("[mei] model MEIs: 300/300 MEI, ")
    assert records[0].endswith(" s")
    out = capsys.readouterr()
    assert "\r" not in out.out + out.err and "\x1b" not in out.out + out.err


def test_mei_and_gabor_optimisers_report_progress():
    import jax.numpy as jnp

    from jaxsel.insilico import gabor_bank, optimal_gabors, optimize_meis, recipes

    def fn(params, x):  # a linear-rectified model of 3 neurons on 8x8 images
        flat = jnp.asarray(x, jnp.float32).reshape(x.shape[0], -1)
        return jnp.maximum(flat @ params["w"], 0.0) + 0.1

    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.normal(size=(64, 3)), jnp.float32) * 1e-3}
    calls: list[tuple[int, int]] = []
    optimize_meis(
        fn,
        params,
        config=recipes.norm(5.0, steps=4),
        image_shape=(8, 8),
        seeds=3,
        chunk_size=4,
        progress=lambda d, t: calls.append((d, t)),
    )
    assert calls == [(4, 9), (8, 9), (9, 9)]  # 3 neurons x 3 seeds, after each chunk of 4
    steps: list[tuple[int, int]] = []
    optimal_gabors(
        fn,
        params,
        (8, 8),
        norm=5.0,
        bank=gabor_bank((8, 8), n_x=2, n_y=2, n_theta=2, n_phase=2, sigmas=[2.0], sfs=[0.2]),
        steps=3,
        chunk_size=2,
        progress=lambda d, t: steps.append((d, t)),
    )
    assert steps == [(i, 6) for i in range(1, 7)]  # 3 neurons: 2 chunks x 3 steps
