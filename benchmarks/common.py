"""Helpers shared by both benchmark sides (stdlib + NumPy only: the torch venv has no jax)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def parse_args(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--workload", required=True)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--sizes", default="cpu", choices=("cpu", "gpu"))
    p.add_argument("--exchange", required=True, help="folder of the .npz exchange files")
    p.add_argument("--out", required=True, help="JSON result file")
    return p.parse_args(argv)


def time_calls(fn, repeats: int, warmup: int = 1, sync=lambda r: r) -> dict:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        sync(fn())
    ts = []
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        sync(fn())
        ts.append(time.perf_counter() - t)
    return {
        "median_s": float(np.median(ts)),
        "min_s": float(np.min(ts)),
        "times_s": [round(t, 5) for t in ts],
    }


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (MiB)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg": list(os.getloadavg()),
    }


def write_json(path, obj) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(obj, indent=1, default=float))


def load_workload(name: str, quick: bool, sizes: str = "cpu") -> dict:
    import workloads

    return workloads.get(name, quick, sizes)


def chosen(w: dict, names, key: str = "torch_variants") -> list:
    """``names`` restricted to ``w[key]`` where the workload names a selection."""
    sel = w.get(key)
    return [n for n in names if sel is None or n in sel]
