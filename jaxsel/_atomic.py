"""Write a folder all at once: into a temporary sibling, renamed into place on success."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from jaxsel._errors import DataError


def _sibling(path: Path, kind: str) -> Path:
    """Create a fresh hidden folder next to ``path`` (permissions follow the umask)."""
    while True:
        cand = path.parent / f".{path.name}.{kind}-{secrets.token_hex(4)}"
        try:
            cand.mkdir()
            return cand
        except FileExistsError:
            continue


@contextlib.contextmanager
def atomic_directory(path: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder that replaces ``path`` when the block succeeds.

    On any error the temporary folder is removed and ``path`` is left as it was. An
    existing non-empty ``path`` is refused unless ``overwrite`` (an empty one is replaced).

    Args:
      path: the final folder.
      overwrite: replace an existing non-empty folder.

    Yields:
      The temporary folder to write into.
    """
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise DataError("exists and is not a folder", file=path, field="path")
        if any(path.iterdir()) and not overwrite:
            raise DataError(
                "folder exists and is not empty",
                file=path,
                field="path",
                expected="a new or empty folder; pass overwrite=True (CLI: --force) to replace it",
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(path, "tmp")
    try:
        yield tmp
        old = None
        if path.exists():
            old = _sibling(path, "old")
            os.rename(path, old / "x")
        try:
            os.rename(tmp, path)
        except BaseException:
            if old is not None:
                os.rename(old / "x", path)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
