"""``jaxsel demo``: the whole pipeline on the digital twin, with no download."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "demo", help="run the demo on the digital twin (no download needed)",
        description="Simulate the digital twin into OUT/data and summarise it. Later stages "
                    "(selection, training, MEIs, report) join as they land.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder")
    p.add_argument("--neurons", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="recompute finished stages")
    p.set_defaults(run=run)


def run(args) -> int:
    from jaxsel.cli.simulate_cmd import write_twin
    from jaxsel.data.static_folder import load_static
    from jaxsel.data.twin import load_twin

    t0 = time.time()
    data = args.out / "data"
    if args.force or not (data / "static").is_dir():
        write_twin(data, force=True, seed=args.seed, n_neurons=args.neurons)
    ds = load_static(data / "static")
    twin = load_twin(data / "ground_truth")
    print(f"dataset: {ds.sizes['neuron']} neurons, {ds.sizes['trial']} trials, "
          f"images {ds.sizes['y']}x{ds.sizes['x']}")
    for k in ("simple", "complex", "suppressed", "unresponsive"):
        sel = twin.kinds == k
        print(f"  {k:13s} {int(sel.sum()):4d} neurons, median true FEV "
              f"{float(__import__('numpy').median(twin.params['true_fev'][sel])):.2f}")
    print(f"done in {time.time() - t0:.1f} s; run folder: {args.out}")
    return 0
