"""``jaxsel gabor``: optimal Gabors, MEI vs Gabor metrics.

Runs the stages data -> select -> train -> mei -> gabor of a run (earlier stages finished with the
same config are reused, missing ones are computed first).
"""

from __future__ import annotations

import argparse

DESCRIPTION = ("Optimal Gabors, MEI vs Gabor metrics.")
STAGES = ('data', 'select', 'train', 'mei', 'gabor',)


def add_parser(sub) -> None:
    from jaxsel.cli.run_cmd import add_common

    p = sub.add_parser(
        "gabor", help="optimal Gabors, MEI vs Gabor metrics",
        description=DESCRIPTION + " Runs the stages " + " -> ".join(STAGES)
                    + " of CONFIG's run (CONFIG: a TOML file, or a run folder to reuse its "
                      "config.toml); finished stages with the same config are reused, "
                      "missing ones are computed first.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_common(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from jaxsel.cli.run_cmd import run_stages

    return run_stages(args, list(STAGES))
