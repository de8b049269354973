"""The single-stage subcommands: ``select``, ``train``, ``mei``, ``gabor``, ``report``.

Each runs the stages up to its own on CONFIG's run (CONFIG: a TOML file, or a run folder to
reuse its config.toml); earlier stages finished with the same config are reused, missing ones
are computed first.
"""

from __future__ import annotations

from functools import partial

from jaxsel.cli._help import HelpFormatter, examples

# name -> example command lines (each runs as written; tests/test_cli_help.py runs them)
EXAMPLES = {
    "select": (
        "jaxsel select experiments/demo_twin.toml",
        "jaxsel select experiments/demo_twin.toml --out runs/strict "
        "--set select.percentiles.oracle=75",
    ),
    "train": (
        "jaxsel train experiments/demo_twin.toml",
        "jaxsel train experiments/demo_twin.toml --out runs/lr01 --set train.overrides.lr=0.01",
    ),
    "mei": (
        "jaxsel mei runs/demo",
        "jaxsel mei runs/demo --set mei.seeds=4 --set mei.overrides.steps=200",
    ),
    "gabor": ("jaxsel gabor runs/demo --set gabor.steps=100",),
    "report": ("jaxsel report runs/demo",),
}

# name -> (description, stages it runs, in order)
STAGE_COMMANDS = {
    "select": (
        "Select neurons: reliability and tuning statistics, the selection rule.",
        ("data", "select"),
    ),
    "train": ("Fit the configured models on the selected neurons.", ("data", "select", "train")),
    "mei": (
        "MEIs of the model and of the twin's truth, gradient RFs and recovery scores.",
        ("data", "select", "train", "mei"),
    ),
    "gabor": ("Optimal Gabors, MEI vs Gabor metrics.", ("data", "select", "train", "mei", "gabor")),
    "report": (
        "Draw the figures and write report.html from a run's finished stages.",
        ("figures", "report"),
    ),
}


def add_parser(sub) -> None:
    from jaxsel.cli._run_cmd import add_common

    for name, (description, stages) in STAGE_COMMANDS.items():
        p = sub.add_parser(
            name,
            help=_short(description),
            description=description
            + " Runs the stages "
            + " -> ".join(stages)
            + " of CONFIG's run (CONFIG: a TOML file, or a run folder to reuse its "
            "config.toml); finished stages with the same config are reused, "
            "missing ones are computed first.",
            epilog=examples(*EXAMPLES[name]),
            formatter_class=HelpFormatter,
        )
        add_common(p)
        p.set_defaults(run=partial(run, stages=stages))


def _short(description: str) -> str:
    """'Fit the models.' -> 'fit the models'; acronyms ('MEIs ...') keep their case."""
    text = description.rstrip(".")
    return text if text[:2].isupper() else text[0].lower() + text[1:]


def run(args, stages) -> int:
    from jaxsel.cli._run_cmd import run_stages

    return run_stages(args, list(stages))
