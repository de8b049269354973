"""``benchmarks/gpu.sh --quick`` runs end to end on CPU without torch: JAX-only numbers for
every GPU workload, each checked (JAX vs the NumPy reference model, JAX-internal forms)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import workloads as W  # noqa: E402


@pytest.mark.slow
def test_gpu_script_quick_runs_jax_only(tmp_path):
    env = {
        **os.environ,
        "OUT": str(tmp_path),
        "PYTHON": sys.executable,
        "JAXSEL_BENCH_TORCH_PYTHON": "none",  # the GPU script must work without torch
        "BENCH_BUDGET_S": "0",  # no time budget: every workload runs
    }
    env.pop("XLA_FLAGS", None)
    p = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--quick"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    run = json.loads((tmp_path / "quick-gpu.json").read_text())
    assert run["sizes"] == "gpu" and run["quick"] and not run["skipped"]
    assert set(run["workloads"]) == set(W.GPU_ORDER)
    for name, entry in run["workloads"].items():
        assert "torch" not in entry
        res = entry["jax"]["results"]
        assert res and all(v["items_per_s"] > 0 for v in res.values()), name
        # the GPU forms ran: the per-neuron models and the sweep vmapped
        if name in ("per_neuron", "sweep"):
            assert "vmap" in res
    # the checks ran and passed: NumPy reference for the forward models ...
    for name in ("lurz_train", "small_train", "inference", "mei", "per_neuron"):
        recs = run["workloads"][name]["numpy_checks"]
        assert recs and all(r["ok"] for r in recs), name
    # ... and the sweep's vmapped step against its loop of single-model steps
    sweep = run["workloads"]["sweep"]["jax"]["checks"]
    assert sweep and all(r["ok"] for r in sweep)
    assert (tmp_path / "quick-gpu.png").exists()


def test_gpu_sizes_follow_the_issue():
    assert W.get("lurz_train", sizes="gpu")["batch"] == 256
    assert W.get("mei", sizes="gpu")["neurons"][-1] == 10000
    pn = W.get("per_neuron", sizes="gpu")
    assert pn["n_models"] == 1000 and "vmap" in pn["jax_variants"]
    assert "vmap" in W.get("sweep", sizes="gpu")["jax_variants"]
    assert W.get("sweep", quick=True, sizes="gpu")["jax_variants"][0] == "vmap"
    with pytest.raises(KeyError, match="sizes"):
        W.get("sweep", sizes="tpu")
    script = (ROOT / "benchmarks" / "gpu.sh").read_text()
    assert "pip install" not in script and "--no-install" in script
