"""``jaxsel demo``: the whole pipeline on the digital twin, with no download."""

from __future__ import annotations

from pathlib import Path

from jaxsel.cli._help import HelpFormatter, examples
from jaxsel.cli._run_cmd import add_run_options


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
    add_run_options(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from jaxsel.cli._run_cmd import load, report
    from jaxsel.pipeline import HEADLINE_METRICS, run_pipeline

    if args.neurons is not None:
        args.overrides.append(f"data.twin.n_neurons={int(args.neurons)}")
    if args.seed is not None:
        args.overrides.append(f"run.seed={int(args.seed)}")
    cfg = load(args)
    res = run_pipeline(cfg, force=args.force)
    m = res["metrics"]
    keys = [k for k in HEADLINE_METRICS if k in m]
    for k in keys:
        v = m[k]
        print(f"  {k:38s} {v:.3f}" if isinstance(v, float) else f"  {k:38s} {v}")
    report(res)
    return 0
