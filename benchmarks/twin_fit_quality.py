"""Fit quality on the digital twin: LN vs the small CNN, against the true noise-free rates.

Simulates the default twin (300 neurons, 4000 train + 500 validation images, 100 test images
x 10 repeats, 36x64 dead-leaves stimuli), fits the ``ln`` and ``small`` named configs, and
prints the acceptance numbers as JSON: training time, epochs, and the median correlation with
the true response on the test images over responsive neurons and per cell kind.

Usage::

    python benchmarks/twin_fit_quality.py [--neurons 300] [--seed 0] [--models ln small]
        [--set small.model.hidden_channels=32 ...] [--out runs/twin_fit_quality]

Acceptance (issue 3): small CNN median truth correlation >= 0.8 over responsive neurons,
trained in <= 10 min on 2 cores; CNN - LN >= 0.2 on complex cells; |CNN - LN| <= 0.1 on
simple cells.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time


def _parse_set(items):
    out = {}
    for item in items or []:
        key, _, value = item.partition("=")
        name, part, field = key.split(".", 2)
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(value)
        out.setdefault(name, {}).setdefault(part, {})[field] = value
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--neurons", type=int, default=300)
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fit-seed", type=int, default=0)
    ap.add_argument("--models", nargs="+", default=["ln", "small"])
    ap.add_argument(
        "--set",
        nargs="*",
        default=[],
        help="overrides like small.model.hidden_channels=32 or ln.train.lr=0.01",
    )
    ap.add_argument("--out", default=None, help="run directory for checkpoints (optional)")
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args(argv)

    import numpy as np

    from jaxsel.data._twin_simulate import simulate
    from jaxsel.measures._evaluation import evaluate
    from jaxsel.models._config import to_dict
    from jaxsel.train._config import Config, named_config
    from jaxsel.train._fit import fit

    t0 = time.perf_counter()
    ds, twin = simulate(seed=args.seed, n_neurons=args.neurons, n_train=args.n_train)
    report = {
        "twin": {
            "seed": args.seed,
            "neurons": args.neurons,
            "trials": int(ds.sizes["trial"]),
            "simulate_s": time.perf_counter() - t0,
        },
        "cpu_count": os.cpu_count(),
        "load_avg_before": os.getloadavg()[0],
        "models": {},
    }
    overrides = _parse_set(args.set)
    kinds = np.asarray(twin.kinds)
    responsive = kinds != "unresponsive"
    for name in args.models:
        base = named_config(name)
        cfg = (
            Config.from_dict({"base": name, **overrides.get(name, {})})
            if name in overrides
            else base
        )
        t0, c0 = time.perf_counter(), time.process_time()
        res = fit(
            cfg,
            ds,
            seed=args.fit_seed,
            progress=args.progress,
            out_dir=None if args.out is None else f"{args.out}/{name}",
            overwrite=True,
        )
        train_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
        ev = evaluate(res, ds, truth=twin)
        tc = ev["truth_correlation"].values
        entry = {
            "train_s": round(train_s, 1),
            "cpu_s": round(cpu_s, 1),
            "load_avg": round(os.getloadavg()[0], 2),
            "epochs": int(res.history.sizes["epoch"]),
            "best_epoch": res.best_epoch,
            "best_val_correlation": round(res.best_score, 4),
            "stopped": res.stopped,
            "s_per_epoch": round(float(np.median(res.history["seconds"].values)), 2),
            "median_truth_corr_responsive": round(float(np.nanmedian(tc[responsive])), 4),
            "n_unfitted_responsive": int(np.sum(tc[responsive] < 0.5)),
            "median_test_corr": round(float(np.nanmedian(ev["test_correlation"].values)), 4),
            "fraction_oracle": round(float(ev.attrs["fraction_oracle"]), 4),
            "median_feve": round(float(np.nanmedian(ev["feve"].values)), 4),
            "config": {"model": to_dict(cfg.model), "train": to_dict(cfg.train)},
        }
        for k in ("simple", "complex", "suppressed"):
            entry[f"median_truth_corr_{k}"] = round(float(np.nanmedian(tc[kinds == k])), 4)
        report["models"][name] = entry
        print(
            json.dumps({name: {k: v for k, v in entry.items() if k != "config"}}),
            file=sys.stderr,
            flush=True,
        )
    m = report["models"]
    if "ln" in m and "small" in m:
        report["acceptance"] = {
            "cnn_median_truth_corr_responsive": m["small"]["median_truth_corr_responsive"],
            "cnn_train_s": m["small"]["train_s"],
            "complex_cnn_minus_ln": round(
                m["small"]["median_truth_corr_complex"] - m["ln"]["median_truth_corr_complex"], 4
            ),
            "simple_cnn_minus_ln": round(
                m["small"]["median_truth_corr_simple"] - m["ln"]["median_truth_corr_simple"], 4
            ),
        }
        a = report["acceptance"]
        a["pass"] = bool(
            a["cnn_median_truth_corr_responsive"] >= 0.8
            and a["cnn_train_s"] <= 600
            and a["complex_cnn_minus_ln"] >= 0.2
            and abs(a["simple_cnn_minus_ln"]) <= 0.1
        )
    report["load_avg_after"] = os.getloadavg()[0]
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
