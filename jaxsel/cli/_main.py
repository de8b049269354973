"""``jaxsel`` command line: one subcommand per pipeline stage.

Each command module has ``add_parser(subparsers)``, which registers its subcommand(s) with a
``run`` default; ``stage_cmds`` registers the single-stage commands from one table.
"""

from __future__ import annotations

import argparse
import sys

from jaxsel._errors import JaxselError

_MODULES = ("_simulate_cmd", "_stage_cmds", "_sweep_cmd", "_run_cmd", "_demo_cmd", "_predict_cmd")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxsel",
        description="Neural system identification and in-silico selectivity analysis of "
        "visual neurons, in JAX. Run 'jaxsel COMMAND --help' for a command's options.",
        epilog="Example: jaxsel simulate --out runs/twin --neurons 300 --seed 3",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    import importlib

    for module in _MODULES:
        importlib.import_module(f"jaxsel.cli.{module}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except JaxselError as err:
        print(f"jaxsel {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
