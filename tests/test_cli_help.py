"""Every example command line in the help texts (``jaxsel [COMMAND] --help``) is valid and
runs as written; redirected output has no progress bars or control characters.

The examples are extracted from each parser's description and epilog (the ``examples:``
block, ``jaxsel.cli._help.examples``); they use paths relative to the working directory
(``experiments/...``, ``runs/demo``), so the tests run them in a temporary folder holding a
copy of ``experiments/``, with tiny sizes appended (``--set`` keys, simulate options; the
last value of an option wins).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

from jaxsel.cli._help import example_lines
from jaxsel.cli._main import build_parser, main
from jaxsel.cli._run_cmd import load

ROOT = Path(__file__).resolve().parents[1]

TINY_SETS = [
    "data.twin.n_neurons=20",
    "data.twin.n_train=200",
    "data.twin.n_validation=40",
    "data.twin.n_test=12",
    "data.twin.test_repeats=4",
    "train.overrides.max_epochs=2",
    "train.per_model.small.hidden_channels=4",
    "train.per_model.small.layers=2",
    "mei.overrides.steps=20",
    "gabor.steps=5",
    "gabor.truth=false",
    "gabor.bank={n_x=3, n_y=2, n_theta=4, n_phase=2, sigmas=[3.0], sfs=[0.1]}",
    "report.pdf=false",
    "report.n_examples=4",
    "sweep.max_epochs=1",
    "sweep.values=[0.001, 0.01]",
    "sweep.seeds=1",
]
TINY_SIMULATE = ["--neurons", "10", "--train", "40", "--validation", "10", "--test", "4"]
TINY_SIMULATE += ["--repeats", "2"]


def all_examples() -> list[str]:
    """Every example line of every help text, main parser first, without repeats."""
    parser = build_parser()
    texts = [parser.description, parser.epilog]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                texts += [sub.description, sub.epilog]
    lines = [line for text in texts for line in example_lines(text)]
    return list(dict.fromkeys(lines))


def tiny_argv(line: str) -> list[str]:
    """An example's arguments with tiny sizes appended (config commands: ``--set`` keys)."""
    argv = shlex.split(line)[1:]
    if argv[0] == "simulate":
        return argv + TINY_SIMULATE
    args = build_parser().parse_args(argv)
    if hasattr(args, "overrides") and not getattr(args, "defaults", False):
        return argv + [a for kv in TINY_SETS for a in ("--set", kv)]
    return argv


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "experiments", tmp_path / "experiments")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_command_has_examples():
    examples = all_examples()
    commands = {shlex.split(e)[1] for e in examples}
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subs.choices) <= commands
    # the example the issue found broken is now a valid key
    assert any("--set train.overrides.lr=0.01" in e for e in examples)
    assert not any("train.lr=" in e for e in examples)


def test_every_example_parses_and_its_config_keys_are_valid(workdir, capsys):
    from jaxsel.pipeline import demo_config, to_toml

    (workdir / "runs" / "demo").mkdir(parents=True)
    (workdir / "runs" / "demo" / "config.toml").write_text(to_toml(demo_config()))
    parser = build_parser()
    checked = 0
    for line in all_examples():
        argv = shlex.split(line)[1:]
        args = parser.parse_args(argv)
        if hasattr(args, "overrides") and not getattr(args, "defaults", False):
            cfg = load(args)  # raises ConfigError on an unknown key or a bad value
            for text in args.overrides:
                key = text.split("=", 1)[0]
                assert key.split(".")[0] in type(cfg).__dataclass_fields__, line
            checked += 1
    assert checked >= 10


@pytest.mark.parametrize("line", ["jaxsel models", "jaxsel models small", "jaxsel run --defaults"])
def test_cheap_examples_run(line, capsys):
    assert line in all_examples()
    assert main(shlex.split(line)[1:]) == 0
    assert capsys.readouterr().out.strip()


@pytest.mark.slow
def test_every_example_runs_and_redirected_output_is_plain(workdir, capfd):
    """Runs them all in order (the stage commands reuse runs/demo); ~2-3 min on 2 cores."""
    outputs = []
    for line in all_examples():
        argv = tiny_argv(line)
        if argv[0] == "predict":
            from jaxsel.train import load_model

            shape = load_model(argv[1]).image_shape
            rng = np.random.default_rng(0)
            np.save("images.npy", rng.uniform(0, 255, (3, *shape)).astype(np.float32))
        rc = main(argv)
        out, err = capfd.readouterr()
        assert rc == 0, f"{line}\n{err[-2000:]}"
        outputs.append(out + err)
    text = "\n".join(outputs)
    assert "\r" not in text and "\x1b" not in text  # no bars, no cursor control
    # MEI and Gabor stages still say how far they are, as plain lines with elapsed time
    assert "[mei] model MEIs: " in text and " MEI, " in text
    assert "[gabor] model Gabors: 5/5 steps, " in text
    assert "[train] running (stage 3/" in text
    assert (workdir / "runs" / "demo" / "report.html").is_file()
    assert (workdir / "responses.nc").is_file()
    assert (workdir / "runs" / "lr01" / "stages" / "train.json").is_file()
