"""Help texts of the command line: one formatter for every subcommand and the examples
block of each (``examples(...)``), which ``tests/test_cli_help.py`` extracts and runs.

The formatter wraps description paragraphs, keeps example lines (indented) verbatim and
shows a ``(default: X)`` only where X says something: not for options without a default
(``None``), flags (``False``) or repeatable options (``[]``).
"""

from __future__ import annotations

import argparse
import textwrap

EXAMPLE_INDENT = "  "
"""Example command lines in a help epilog start with this indent and ``jaxsel ``."""


class HelpFormatter(argparse.HelpFormatter):
    """Wrapped paragraphs, verbatim indented lines, defaults only where meaningful."""

    def _fill_text(self, text, width, indent):
        out = []
        for line in text.splitlines():
            if line.startswith(" ") or not line.strip():
                out.append(indent + line)
            else:
                out.append(
                    textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent)
                )
        return "\n".join(out)

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or default is argparse.SUPPRESS
            or default is None
            or default is False
            or default == []
            or not (action.option_strings or action.nargs in ("?", "*"))
        ):
            return text
        return text + " (default: %(default)s)"


def examples(*lines: str) -> str:
    """An ``examples:`` epilog: one command line per entry, each a valid invocation."""
    return "examples:\n" + "\n".join(EXAMPLE_INDENT + line for line in lines)


def example_lines(text: str | None) -> list[str]:
    """The example command lines (``jaxsel ...``) of a help text."""
    return [
        line.strip()
        for line in (text or "").splitlines()
        if line.startswith(EXAMPLE_INDENT) and line.strip().startswith("jaxsel ")
    ]


__all__ = ["EXAMPLE_INDENT", "HelpFormatter", "example_lines", "examples"]
