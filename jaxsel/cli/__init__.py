"""The ``jaxsel`` command line (``jaxsel --help``)."""

from jaxsel.cli._main import build_parser, main

__all__ = ["build_parser", "main"]
