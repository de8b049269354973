"""The benchmark's equivalence machinery, quickly: JAX vs an independent NumPy reference, the
per-neuron fused formulation vs vmap, the README block writer, and (if torch is installed)
the PyTorch mirror vs JAX on the same weights."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import equivalence as E  # noqa: E402

from jaxsel.models._config import ModelConfig  # noqa: E402
from jaxsel.models._model import build_model  # noqa: E402
from jaxsel.train._config import Config, TrainConfig  # noqa: E402

CFG = ModelConfig(layers=2, hidden_channels=3, input_kern=5, hidden_kern=3, stack=None)


def _model(n=5, h=8, w=10, cfg=CFG):
    model = build_model(cfg, image_shape=(1, h, w), n_neurons=n)
    params, state = model.init(jax.random.PRNGKey(0), mean_response=np.ones(n, np.float32))
    # non-trivial BN running statistics and readout positions
    bs = state["batch_stats"]["core"]
    for i, name in enumerate(sorted(bs)):
        bs[name] = {
            "mean": jnp.full_like(bs[name]["mean"], 0.1 * (i + 1)),
            "var": jnp.full_like(bs[name]["var"], 1.5),
        }
    return model, params, state


@pytest.mark.parametrize(("pooling", "hidden_pooling"), [(1, 1), (2, 1), (3, 2)])
def test_numpy_reference_matches_jaxsel_forward(pooling, hidden_pooling):
    import dataclasses

    mcfg = dataclasses.replace(
        CFG,
        pooling=pooling,
        hidden_pooling=hidden_pooling,
        stack=None if hidden_pooling == 1 else [-1],
    )
    model, params, state = _model(h=13, w=17, cfg=mcfg)
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 1, 13, 17))
    got = np.asarray(model.apply(params, state, x, train=False)[0])
    cfg = {
        "layers": 2,
        "batch_norm": True,
        "stack": mcfg.stack,
        "elu_offset": 0.0,
        "final_nonlinearity": True,
        "pooling": pooling,
        "hidden_pooling": hidden_pooling,
    }
    want = E.numpy_forward(
        jax.tree.map(np.asarray, params), jax.tree.map(np.asarray, state), cfg, np.asarray(x)
    )
    rec = E.compare("rates", got, want, rtol=1e-4, atol=1e-5)
    assert rec["ok"], rec
    # the check is sensitive: a perturbed kernel fails it
    p2 = jax.tree.map(np.asarray, params)
    p2["core"]["layer1_conv"]["kernel"] = p2["core"]["layer1_conv"]["kernel"] * 1.01
    bad = E.numpy_forward(p2, jax.tree.map(np.asarray, state), cfg, np.asarray(x))
    assert not E.compare("rates", got, bad, rtol=1e-5, atol=1e-7)["ok"]


def test_compare_require_and_flatten_roundtrip():
    tree = {"a": {"b": np.ones(2), "c": {"d": np.zeros(3)}}, "e": np.arange(2.0)}
    flat = E.flatten(tree)
    assert set(flat) == {"a/b", "a/c/d", "e"}
    assert np.array_equal(
        E.unflatten({f"p/{k}": v for k, v in flat.items()}, "p")["a"]["c"]["d"], np.zeros(3)
    )
    assert not E.compare("s", np.ones(2), np.ones(3))["ok"]
    assert not E.compare("nan", np.array([np.nan]), np.array([1.0]))["ok"]
    with pytest.raises(E.EquivalenceError, match="x"):
        E.require([E.compare("x", np.ones(2), 2 * np.ones(2))])
    E.require([E.compare("y", np.ones(2), np.ones(2) + 1e-7)])


def test_readme_block_is_the_only_edit(tmp_path):
    import report

    readme = tmp_path / "README.md"
    readme.write_text("# x\n\nkeep me\n")
    bench = tmp_path / "bench.md"
    bench.write_text("# bench\n")
    run = {
        "date": "d",
        "quick": True,
        "workloads": {},
        "matmul_gflops": {"jax": 100.0},
        "machine": {"cpu": "c", "cores": 2, "loadavg_start": [1.0], "loadavg_end": [2.0]},
        "versions": {"jax": "j", "torch": "t"},
    }
    report.finish(run)
    report.write_readme(run, readme, bench)
    report.write_readme(run, readme, bench)  # idempotent
    text = readme.read_text()
    assert text.startswith("# x\n\nkeep me\n") and text.count(report.START) == 1
    assert "## Benchmarks" in text
    # benchmarks/README.md gets the same block from the same run
    block = text[text.index(report.START) : text.index(report.END)]
    assert block in bench.read_text() and bench.read_text().startswith("# bench\n")


def test_torch_mirror_matches_jax(tmp_path):
    pytest.importorskip("torch")
    import jax_side as J
    import torch_side as T

    cfg = Config("t", CFG, TrainConfig(batch_size=4))
    model, params, state = _model()
    x, r = J.data(jax.random.PRNGKey(1), 4, 8, 10, 5)
    from jaxsel.train._step import make_hparams

    hp = make_hparams(cfg, 100)
    J.equivalence_train(cfg, model, params, state, x, r, hp, tmp_path / "t.npz")
    z = np.load(tmp_path / "t.npz")
    _, _, recs = T.check_train(z)
    assert all(r["ok"] for r in recs) and len(recs) > 10
    assert json.loads(str(z["cfg"]))["layers"] == 2
