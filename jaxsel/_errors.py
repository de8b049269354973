"""Error types that name what went wrong, where, and how to fix it."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class JaxselError(Exception):
    """Base class of every error jaxsel raises on purpose."""


class DataError(JaxselError, ValueError):
    """Bad or missing input data.

    The message names the file (if any), the field, what was found and what was expected.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        field: str | None = None,
        expected: str | None = None,
    ):
        parts = []
        if file is not None:
            parts.append(f"{file}")
        if field is not None:
            parts.append(f"field '{field}'")
        prefix = ": ".join(parts)
        text = f"{prefix}: {message}" if prefix else message
        if expected:
            text += f" (expected {expected})"
        super().__init__(text)
        self.file = None if file is None else str(file)
        self.field = field
        self.expected = expected


class ConfigError(JaxselError, ValueError):
    """Invalid configuration: unknown key, wrong type, missing path."""


class TrainingError(JaxselError, RuntimeError):
    """Training could not continue (e.g. a non-finite loss).

    Raised by :func:`jaxsel.fit` with ``result`` (the fit up to the last finite epoch),
    ``epoch``, ``step`` and ``batch`` (where the loss became non-finite) attached.
    """

    result: Any
    epoch: int
    step: int
    batch: int


class MissingInput(JaxselError):
    """A pipeline stage lacks an input it needs to run (e.g. no trained model, no twin
    ground truth). The message says which input and how to provide it; the run reports
    the stage as not applicable for that reason."""
