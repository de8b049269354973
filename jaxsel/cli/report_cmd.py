"""``jaxsel report``: draw the figures and write report.html from a run's finished stages.

Runs the stages figures -> report of a run (earlier stages finished with the
same config are reused, missing ones are computed first).
"""

from __future__ import annotations

import argparse

DESCRIPTION = ("Draw the figures and write report.html from a run's finished stages.")
STAGES = ('figures', 'report',)


def add_parser(sub) -> None:
    from jaxsel.cli.run_cmd import add_common

    p = sub.add_parser(
        "report", help="draw the figures and write report.html from a run's finished stages",
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
