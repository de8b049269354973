"""``jaxsel demo``: the whole pipeline on the digital twin, with no download."""

from __future__ import annotations

from pathlib import Path

from jaxsel.cli._help import HelpFormatter, examples


def add_parser(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole pipeline on the digital twin (no download needed)",
        description="Simulate the digital twin, select neurons, train LN and CNN models, "
        "evaluate them, compute MEIs (model and truth), gradient RFs, Gabors and "
        "metrics, draw the figures and write OUT/report.html. Uses the embedded "
        "config (= experiments/demo_twin.toml). Rerunning skips finished stages.",
        epilog=examples(
            "jaxsel demo",
            "jaxsel demo --out runs/demo --set mei.seeds=4 --set mei.overrides.steps=200",
            "jaxsel report runs/demo",
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder")
    p.add_argument(
        "--neurons",
        type=int,
        default=None,
        help="twin neurons (default: the config's data.twin.n_neurons)",
    )
    p.add_argument("--seed", type=int, default=None, help="seed (default: the config's run.seed)")
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
        help="override a config key, e.g. --set train.overrides.lr=0.01 (repeatable; "
        "VALUE is TOML; 'jaxsel run --defaults' lists every key)",
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
