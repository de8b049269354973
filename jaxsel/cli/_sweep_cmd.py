"""``jaxsel sweep``: fit many models (a hyperparameter sweep) in one vectorised program."""

from __future__ import annotations

from jaxsel.cli._help import HelpFormatter, examples
from jaxsel.cli._run_cmd import add_common, load


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="hyperparameter sweep: many models trained at once (vmap)",
        description="Run the data and select stages of CONFIG, then train one model per "
        "value x seed of the [sweep] section with jaxsel.fit_many "
        "(all points in one compiled step, each early-stopping on its own) and "
        "write RUN/sweep/summary.csv (value, seed, best validation correlation, "
        "best epoch, stop reason).",
        epilog=examples(
            "jaxsel sweep experiments/sweep_lr.toml",
            "jaxsel sweep experiments/sweep_lr.toml --set sweep.values=[0.001,0.01] "
            "--set sweep.seeds=2",
        ),
        formatter_class=HelpFormatter,
    )
    add_common(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from jaxsel.pipeline import run_config_sweep

    run_config_sweep(load(args), force=args.force)
    return 0
