"""Every Python block of README.md runs as written, on a tiny twin.

The blocks run in order in one namespace, in a temporary working directory that holds the
static folder the "your own data" recipe reads (``my_scan/``, written here from a tiny twin)
and a tiny demo run (``runs/demo``) for the "coming back to a run" block. Only sizes shrink:
``js.simulate`` draws a small population with few trials and ``js.fit`` trains for at most
two epochs; every other call is the README's own. The blocks may use public names only
(checked against the namespaces' ``__all__``). The own-data TOML recipe runs through the
command line on the same static folder, and every ``jaxsel`` command line of the README
parses (the cheap ones run).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

import jaxsel as js

README = Path(__file__).resolve().parents[1] / "README.md"
TINY = {"n_neurons": 16, "n_train": 300, "n_validation": 60, "n_test": 10, "test_repeats": 4}
TINY_RUN = {  # a whole pipeline in well under a minute
    "data.twin.n_neurons": 20,
    "data.twin.n_train": 200,
    "data.twin.n_validation": 40,
    "data.twin.n_test": 12,
    "data.twin.test_repeats": 4,
    "train.overrides": {"max_epochs": 2, "progress": False},
    "train.per_model": {"small": {"hidden_channels": 4, "layers": 2}},
    "mei.overrides": {"steps": 20},
    "mei.n_neurons": 4,
    "gabor.steps": 5,
    "gabor.truth": False,
    "gabor.bank": {"n_x": 3, "n_y": 2, "n_theta": 4, "n_phase": 2, "sigmas": [3.0], "sfs": [0.1]},
    "report.pdf": False,
    "report.n_examples": 4,
    "run.progress": False,
}


def blocks(text: str, lang: str) -> list[str]:
    """The fenced code blocks of one language, indented or not (list items indent them)."""
    found = re.findall(rf"^( *)```{lang}\n(.*?)^\1```", text, flags=re.S | re.M)
    return [re.sub(rf"^{indent}", "", body, flags=re.M) for indent, body in found]


def python_blocks(text: str) -> list[str]:
    return blocks(text, "python")


def command_lines(text: str) -> list[str]:
    lines = []
    for body in blocks(text, "bash"):
        for line in body.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("jaxsel"):
                lines.append(line)
    return lines


def test_readme_has_python_blocks():
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 3
    assert any("js.load_static" in b for b in blocks), "the own-data recipe is missing"


def test_readme_blocks_use_public_names_only():
    text = "\n".join(python_blocks(README.read_text()))
    assert "jaxsel." not in text.replace("import jaxsel as js", ""), "deep import paths"
    for ns, name in re.findall(r"\bjs\.(\w+)(?:\.(\w+))?", text):
        assert ns in js.__all__, f"js.{ns} is not public"
        sub = getattr(js, ns)
        if name and hasattr(sub, "__all__") and not callable(sub):
            assert name in sub.__all__ or hasattr(getattr(sub, name, None), "__all__"), (
                f"js.{ns}.{name} is not public"
            )


@pytest.mark.slow
def test_readme_python_blocks_run(tmp_path, monkeypatch):
    simulate, fit = js.simulate, js.fit

    def tiny_simulate(*args, **kwargs):
        kwargs.update(TINY)
        return simulate(*args, **kwargs)

    def short_fit(*args, **kwargs):
        kwargs["max_epochs"] = min(int(kwargs.get("max_epochs") or 2), 2)
        kwargs.setdefault("progress", False)
        return fit(*args, **kwargs)

    monkeypatch.setattr(js, "simulate", tiny_simulate)
    monkeypatch.setattr(js.data, "simulate", tiny_simulate)
    monkeypatch.setattr(js, "fit", short_fit)
    monkeypatch.chdir(tmp_path)
    ds, _ = tiny_simulate(seed=11)
    js.save_static(ds, tmp_path / "my_scan")
    js.run_pipeline(js.pipeline.demo_config(overrides={**TINY_RUN, "run.out": "runs/demo"}))
    before = sorted(p.name for p in (tmp_path / "my_scan").rglob("*"))

    namespace: dict = {}
    for i, block in enumerate(python_blocks(README.read_text())):
        try:
            exec(compile(block, f"README.md python block {i}", "exec"), namespace)
        except Exception as err:  # name the block that failed
            raise AssertionError(f"README python block {i} failed: {err!r}\n{block}") from err

    # what the blocks promise, checked on what they left behind
    model = js.load_model("runs/cnn/model")
    x = ds.images.values[:4]
    np.testing.assert_allclose(
        js.predict(model, x), js.predict(namespace["result"], x), rtol=1e-5, atol=1e-6
    )
    assert sorted(p.name for p in (tmp_path / "my_scan").rglob("*")) == before


def test_readme_command_lines_parse_and_the_cheap_ones_run(capsys):
    from jaxsel.cli import build_parser, main

    lines = command_lines(README.read_text())
    assert any(" predict " in f" {line} " for line in lines)
    parser = build_parser()
    for line in lines:
        argv = shlex.split(line)[1:]
        if argv in (["--help"], ["--version"]):
            with pytest.raises(SystemExit) as exit_:
                main(argv)
            assert exit_.value.code == 0, line
        else:
            parser.parse_args(argv)  # exits (and fails the test) on a bad command line
        if argv in (["run", "--defaults"], ["models"]):
            assert main(argv) == 0, line
    out = capsys.readouterr().out
    assert "jaxsel" in out and "lurz2020" in out


@pytest.mark.slow
def test_readme_own_data_toml_recipe_runs_on_a_static_folder(tmp_path, monkeypatch):
    """The TOML of "A Sensorium / Lurz static folder", with its path pointed at a static
    folder written here; sizes shrink through --set, as a user would for a first try."""
    from jaxsel.cli import main

    recipe = next(b for b in blocks(README.read_text(), "toml") if 'source = "static"' in b)
    ds, _ = js.simulate(seed=5, **TINY)
    js.save_static(ds, tmp_path / "scan")
    text = re.sub(r'^path = ".*?"', f'path = "{tmp_path / "scan"}"', recipe, flags=re.M)
    assert text != recipe
    (tmp_path / "my_scan.toml").write_text(text)
    monkeypatch.chdir(tmp_path)
    small = [
        "train.overrides={max_epochs=1, progress=false}",
        "train.per_model={lurz2020={hidden_channels=4, layers=1, input_kern=7}}",
        "mei.n_neurons=2",
        "mei.overrides={steps=5}",
        "gabor.steps=3",
        "gabor.bank={n_x=2, n_y=2, n_theta=2, n_phase=2, sigmas=[3.0], sfs=[0.1]}",
        "report.pdf=false",
        "run.progress=false",
    ]
    argv = ["run", "my_scan.toml"] + [a for kv in small for a in ("--set", kv)]
    assert main(argv) == 0
    run = tmp_path / "runs" / "my_scan"
    for out in ("metrics.json", "evaluation.nc", "report.html", "models/lurz2020/model/model.json"):
        assert (run / out).exists(), out
