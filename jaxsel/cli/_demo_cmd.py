"""``jaxsel demo``: the whole pipeline on the digital twin, with no download."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole pipeline on the digital twin (no download needed)",
        description="Simulate the digital twin, select neurons, train LN and CNN models, "
        "evaluate them, compute MEIs (model and truth), gradient RFs, Gabors and "
        "metrics, draw the figures and write OUT/report.html. Uses the embedded "
        "config (= experiments/demo_twin.toml). Rerunning skips finished stages.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder")
    p.add_argument("--neurons", type=int, default=None, help="twin neurons (default: config)")
    p.add_argument("--seed", type=int, default=None, help="seed (default: config)")
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="a config to use instead of the embedded demo config",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (TOML value)",
    )
    p.add_argument("--force", action="store_true", help="recompute finished stages")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args) -> int:
    from jaxsel.cli._run_cmd import load, report
    from jaxsel.pipeline import run_pipeline

    if args.neurons is not None:
        args.overrides.append(f"data.twin.n_neurons={int(args.neurons)}")
    if args.seed is not None:
        args.overrides.append(f"run.seed={int(args.seed)}")
    cfg = load(args)
    res = run_pipeline(cfg, force=args.force)
    m = res["metrics"]
    keys = [
        k
        for k in (
            "n_neurons",
            "n_selected",
            "oracle_spearman_vs_truth",
            "ln_corr_to_truth_median",
            "cnn_corr_to_truth_median",
            "cnn_test_corr_median",
            "mei_truth_r_simple_median",
            "mei_truth_r_complex_median",
            "mei_true_drive_fraction_median",
            "mei_vs_best_natural_ratio_median",
            "gabor_orientation_error_deg_median",
            "runtime_s",
        )
        if k in m
    ]
    for k in keys:
        v = m[k]
        print(f"  {k:38s} {v:.3f}" if isinstance(v, float) else f"  {k:38s} {v}")
    report(res)
    return 0
