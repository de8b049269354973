"""``jaxsel mei``: MEIs of the model and of the twin's truth, gradient RFs and recovery scores.

Runs the stages data -> select -> train -> mei of a run (earlier stages finished with the
same config are reused, missing ones are computed first).
"""

from __future__ import annotations

import argparse

DESCRIPTION = ("MEIs of the model and of the twin's truth, gradient RFs and recovery scores.")
STAGES = ('data', 'select', 'train', 'mei',)


def add_parser(sub) -> None:
    from jaxsel.cli.run_cmd import add_common

    p = sub.add_parser(
        "mei", help=DESCRIPTION.split(".")[0].lower()[:1] + DESCRIPTION.split(".")[0][1:],
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
