"""``make bench``: JAX vs PyTorch on every workload, results JSON + plot + README table.

Usage::

    .venv/bin/python benchmarks/run.py                 # full run (~15-25 min on 2 cores)
    .venv/bin/python benchmarks/run.py --quick         # tiny sizes: a smoke test (~3 min)
    .venv/bin/python benchmarks/run.py --only lurz_train,mei
    PYTHONPATH=. python benchmarks/run.py --sizes gpu --no-install   # = benchmarks/gpu.sh

For every workload the JAX side (this interpreter) and the PyTorch side (its own interpreter,
see :func:`torch_python`) run as separate processes, one workload each, so peak RSS is per
workload. The JAX side writes weights, inputs and its results to an ``.npz``; the torch side
loads them, re-computes forward/loss/parameter and input gradients and aborts (exit 3) on a
mismatch before timing; the run then stops without writing results.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402
import report  # noqa: E402
import workloads as W  # noqa: E402

TORCH_VERSION = "2.13.0"


def _has_torch(py) -> bool:
    try:
        return (
            subprocess.run(
                [str(py), "-c", "import torch, numpy"], capture_output=True, timeout=120
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def torch_python(install: bool = True) -> str | None:
    """An interpreter with torch + numpy, creating ``.venv-torch`` if none is found.

    Order: ``$JAXSEL_BENCH_TORCH_PYTHON`` (``none``: no torch side); ``.venv-torch/bin/python``;
    this interpreter (GPU machines with jax and torch in one environment); ``python3``; else,
    if ``install``, create ``.venv-torch`` with ``python3.11 -m venv`` and ``pip install
    torch==2.13.0 numpy``; else None (JAX-only numbers).
    """
    env = os.environ.get("JAXSEL_BENCH_TORCH_PYTHON")
    if env:
        return None if env == "none" else env
    venv = ROOT / ".venv-torch" / "bin" / "python"
    for py in (venv, Path(sys.executable), shutil.which("python3")):
        if py and Path(py).exists() and _has_torch(py):
            return str(py)
    if not install:
        return None
    base = shutil.which("python3.11") or "python3.11"
    print(f"[bench] creating .venv-torch with {base} + torch=={TORCH_VERSION}", flush=True)
    subprocess.run([base, "-m", "venv", str(ROOT / ".venv-torch")], check=True)
    pip = [str(venv), "-m", "pip", "install", "-q", f"torch=={TORCH_VERSION}", "numpy"]
    if subprocess.run(pip).returncode != 0:
        wheels = os.environ.get("JAXSEL_BENCH_WHEELS", "/opt/wheels")
        subprocess.run(pip + ["--find-links", wheels], check=True)
    return str(venv)


def run_side(
    py, script, workload, quick, exchange, out, env=None, timeout=1800, sizes="cpu"
) -> tuple:
    """``(exit status, result dict or None, seconds)`` of one side of one workload, in its
    own process (so peak RSS is per workload). ``--quick`` runs the JAX side in this process
    instead (one jax import and compile cache for the whole smoke test)."""
    if quick and script == "jax_side.py" and py == sys.executable:
        import traceback

        import jax_side

        t = time.perf_counter()
        try:
            data = jax_side.run_workload(workload, quick, sizes, exchange)
        except Exception:
            traceback.print_exc()
            return 1, None, time.perf_counter() - t
        return 0, data, time.perf_counter() - t
    cmd = [
        py,
        str(HERE / script),
        "--workload",
        workload,
        "--exchange",
        str(exchange),
        "--out",
        str(out),
        "--sizes",
        sizes,
    ] + (["--quick"] if quick else [])
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env, timeout=timeout, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-3000:] + p.stderr[-6000:])
    data = json.loads(Path(out).read_text()) if Path(out).exists() else None
    return p.returncode, data, dt


def numpy_checks(name: str, npz: Path) -> list[dict]:
    """Without a torch side: the JAX eval-mode rates of the exchanged weights against the
    independent NumPy model (first 4 images; ``equivalence.numpy_forward``)."""
    import numpy as np
    from equivalence import compare, numpy_forward, unflatten

    if not npz.exists():
        return []
    with np.load(npz) as z:
        f = {k: z[k] for k in z.files}
    cfg = json.loads(str(f["cfg"]))
    if name == "inference" or "eval/rates" in f:
        pre = "" if name == "inference" else "eval/"
        p, st = unflatten(f, pre + "params"), unflatten(f, pre + "state")
        want = numpy_forward(p, st, cfg, f["x"][:4])
        return [compare(f"numpy/{name}/rates", f[pre + "rates"][:4], want, rtol=1e-3)]
    if name == "mei":
        p, st = unflatten(f, "params"), unflatten(f, "state")
        u = f["u"].astype(np.float64)
        u = u - u.mean(axis=(1, 2, 3), keepdims=True)
        x = float(f["norm"]) * u / np.sqrt((u**2).sum(axis=(1, 2, 3), keepdims=True) + 1e-16)
        rates = numpy_forward(p, st, cfg, x)
        want = rates[np.arange(len(f["targets"])), f["targets"]]
        return [compare("numpy/mei/activation", f["act"], want, rtol=1e-3)]
    return []


def torch_step(name, a, tpy, tmp, tenv, run) -> tuple[int, dict | None]:
    """The torch side of one workload (or, with no torch, the NumPy checks)."""
    if tpy is None:
        recs = numpy_checks(name, tmp / f"{name}.npz")
        bad = [r for r in recs if not r["ok"]]
        if bad:
            print(f"[bench] {name}: JAX vs NumPy check FAILED: {bad}", flush=True)
            return 3, None
        run["workloads"][name]["numpy_checks"] = recs
        return 0, None
    rc, d, _ = run_side(
        tpy, "torch_side.py", name, a.quick, tmp, tmp / f"torch_{name}.json", tenv, sizes=a.sizes
    )
    if rc == 3:
        print(
            f"[bench] {name}: EQUIVALENCE CHECK FAILED, aborting: "
            f"{(d or {}).get('equivalence_error')}",
            flush=True,
        )
    elif rc != 0:
        print(f"[bench] {name}: torch side failed (exit {rc}); skipping", flush=True)
    return rc, d


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes and repeats (smoke test)")
    ap.add_argument("--only", default="", help=f"comma-separated workloads of {W.ORDER}")
    ap.add_argument("--results", default=str(HERE / "results"), help="output folder")
    ap.add_argument("--no-readme", action="store_true", help="do not touch README.md")
    ap.add_argument("--sizes", default="cpu", choices=("cpu", "gpu"), help="workload sizes")
    ap.add_argument(
        "--no-install",
        action="store_true",
        help="never create .venv-torch: without torch, report JAX-only numbers",
    )
    ap.add_argument(
        "--budget-s", type=float, default=0, help="skip the remaining workloads after this"
    )
    a = ap.parse_args(argv)
    t_start = time.perf_counter()
    if a.quick and "XLA_FLAGS" not in os.environ:
        # a smoke test: XLA's cheapest compilation (halves the CPU time of --quick; the
        # numbers of a quick run are not benchmarks anyway)
        os.environ["XLA_FLAGS"] = (
            "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
        )
    order = W.GPU_ORDER if a.sizes == "gpu" else W.ORDER
    names = [n for n in a.only.split(",") if n] or list(order)
    for n in names:
        W.get(n)  # unknown names fail early
    tpy = torch_python(install=not a.no_install)
    print(f"[bench] torch interpreter: {tpy or 'none (JAX-only numbers)'}", flush=True)
    res_dir = Path(a.results)
    tmp = Path(tempfile.mkdtemp(prefix="jaxsel-bench-"))
    run = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": a.quick,
        "sizes": a.sizes,
        "workloads": {},
        "machine": common.machine(),
        "skipped": [],
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
    run["machine"]["loadavg_start"] = list(os.getloadavg())
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p
    )  # jaxsel from this checkout
    # torch's OpenMP threads spin at barriers by default; on shared cores that wastes the
    # other thread's time slices (measured here under load: 2.5 -> 14 img/s on the Lurz
    # step). PASSIVE makes the baseline robust to other jobs (it only helps torch).
    tenv = dict(env)
    tenv.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    run["torch_env"] = {"OMP_WAIT_POLICY": tenv["OMP_WAIT_POLICY"]}
    # matmul peaks (for the roofline)
    mm = {}
    sides = [("jax", sys.executable, "jax_side.py", env)]
    if tpy:
        sides.append(("torch", tpy, "torch_side.py", tenv))
    for side, py, script, e in sides:
        rc, d, _ = run_side(py, script, "matmul", a.quick, tmp, tmp / f"{side}_matmul.json", e)
        if rc == 0:
            mm[side] = d["matmul_gflops"]
            run.setdefault("versions", {}).update(
                {
                    "jax": d["versions"]["jax"],
                    "jax_backend": d["versions"]["backend"],
                    "jax_device": d["versions"]["device_kind"],
                }
                if side == "jax"
                else {
                    "torch": d["versions"]["torch"],
                    "torch_device": d["versions"]["device"],
                    "torch_device_name": d["versions"]["device_name"],
                    "torch_threads": d["versions"]["threads"],
                }
            )
    run["matmul_gflops"] = mm
    print(f"[bench] matmul GFLOP/s: {mm}", flush=True)
    for name in names:
        if a.budget_s and time.perf_counter() - t_start > a.budget_s:
            run["skipped"].append(name)
            print(f"[bench] {name}: skipped (time budget {a.budget_s:.0f} s spent)", flush=True)
            continue
        rc, d, dt = run_side(
            sys.executable,
            "jax_side.py",
            name,
            a.quick,
            tmp,
            tmp / f"jax_{name}.json",
            env,
            sizes=a.sizes,
        )
        if rc != 0:
            print(
                f"[bench] {name}: JAX side failed (exit {rc}; -9 = killed, e.g. out of "
                "memory); skipping this workload",
                flush=True,
            )
            run["workloads"][name] = {"error": f"JAX side exit {rc}"}
            continue
        run["workloads"][name] = entry = {"jax": d}
        rc, d = torch_step(name, a, tpy, tmp, tenv, run)
        if rc == 3:
            return 3
        if rc != 0:
            entry["torch_error"] = f"torch side exit {rc}"
        elif d is not None:
            entry["torch"] = d
        res_dir.mkdir(parents=True, exist_ok=True)  # partial results after each one
        (res_dir / ("quick-partial.json" if a.quick else "partial.json")).write_text(
            json.dumps(run, indent=1, default=float)
        )
        summary = {
            f"{side}:{k}": round(v["items_per_s"], 3)
            for side in ("jax", "torch")
            for k, v in entry.get(side, {}).get("results", {}).items()
            if "items_per_s" in v
        }
        print(f"[bench] {name} ({dt:.0f} s): {summary}", flush=True)
    run["machine"]["loadavg_end"] = list(os.getloadavg())
    run["wall_s"] = time.perf_counter() - t_start
    res_dir.mkdir(parents=True, exist_ok=True)
    stem = ("quick" if a.quick else "latest") + ("-gpu" if a.sizes == "gpu" else "")
    # raw numbers first, so a reporting error never loses a run
    (res_dir / f"{stem}.json").write_text(json.dumps(run, indent=1, default=float))
    report.finish(run)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    (res_dir / f"{stem}.json").write_text(json.dumps(run, indent=1, default=float))
    if not a.quick:
        (res_dir / f"bench-{stamp}.json").write_text(json.dumps(run, indent=1, default=float))
    report.plot(run, res_dir / f"{stem}.png")
    if not a.no_readme and not a.quick and not a.only and a.sizes == "cpu":
        report.write_readme(run)
    for r in run["ratios"]:
        print(f"  {r['label']:<60s} JAX/torch = {r['ratio']:.2f}", flush=True)
    for g in run["goals"]:
        print(f"  goal {'MET    ' if g['met'] else 'NOT MET'} {g['goal']} ({g['value']})")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
