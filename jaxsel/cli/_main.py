"""``jaxsel`` command line: one subcommand per pipeline stage.

Each command module has ``add_parser(subparsers)``, which registers its subcommand(s) with a
``run`` default; ``stage_cmds`` registers the single-stage commands from one table.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import re
import sys

from jaxsel import __version__
from jaxsel._errors import JaxselError
from jaxsel.cli._help import HelpFormatter, examples

_MODULES = (
    "_simulate_cmd",
    "_stage_cmds",
    "_sweep_cmd",
    "_run_cmd",
    "_demo_cmd",
    "_predict_cmd",
    "_models_cmd",
)


class _Parser(argparse.ArgumentParser):
    """argparse, with "did you mean" for a mistyped subcommand (one line, exit 2)."""

    def error(self, message):
        m = re.match(r"argument COMMAND: invalid choice: '([^']*)'", message)
        if m and self._subparsers is not None:
            commands = [
                name
                for action in self._subparsers._group_actions
                if isinstance(action, argparse._SubParsersAction)
                for name in action.choices
            ]
            near = difflib.get_close_matches(m.group(1), commands, n=1, cutoff=0.5)
            hint = f"did you mean '{near[0]}'?" if near else f"one of {', '.join(commands)}"
            self.exit(
                2,
                f"{self.prog}: error: unknown command '{m.group(1)}' ({hint}); "
                f"'{self.prog} --help' lists the commands\n",
            )
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="jaxsel",
        description="Neural system identification and in-silico selectivity analysis of "
        "visual neurons, in JAX. Run 'jaxsel COMMAND --help' for a command's options.",
        epilog=examples(
            "jaxsel demo",
            "jaxsel simulate --out runs/twin --neurons 300 --seed 3",
            "jaxsel run experiments/demo_twin.toml --out runs/lr01 --set train.overrides.lr=0.01",
            "jaxsel models small",
        ),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"jaxsel {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
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
    except KeyboardInterrupt as err:
        return _interrupted(args.command, err)
    except Exception as err:
        # a Ctrl-C that a library (orbax's event loop, a worker thread) re-raised as another
        # exception is still the user's interrupt, not a bug
        cause = _keyboard_interrupt_in_chain(err)
        if cause is None:
            raise
        return _interrupted(args.command, cause)


def _keyboard_interrupt_in_chain(err: BaseException) -> KeyboardInterrupt | None:
    seen: set[int] = set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def _interrupted(command: str, err: KeyboardInterrupt) -> int:
    where = getattr(err, "jaxsel_where", "")
    print(
        f"jaxsel {command}: interrupted{' ' + where if where else ''}; the same command resumes",
        file=sys.stderr,
    )
    return 130


if __name__ == "__main__":
    sys.exit(main())
