"""Every Python block of README.md runs as written, on a tiny twin.

The blocks run in order in one namespace, in a temporary working directory that holds the
static folder the "your own data" recipe reads (``my_scan/``, written here from a tiny twin).
Only sizes shrink: ``js.simulate`` draws a small population with few trials and ``js.fit``
trains for at most two epochs; every other call is the README's own. The blocks may use
public names only (checked against the namespaces' ``__all__``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import jaxsel as js

README = Path(__file__).resolve().parents[1] / "README.md"
TINY = {"n_neurons": 16, "n_train": 300, "n_validation": 60, "n_test": 10, "test_repeats": 4}


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


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
