"""Write a folder all at once: into a temporary sibling, renamed into place on success."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from jaxsel._errors import DataError

_MARK = "jaxsel-tmp"  # temp folders: .<name>.jaxsel-tmp-<kind>-<pid>-<random>


def _sibling(path: Path, kind: str) -> Path:
    """Create a fresh hidden folder next to ``path`` (permissions follow the umask); its
    name says it is ours and which process made it (see :func:`clean_stale`)."""
    while True:
        cand = path.parent / f".{path.name}.{_MARK}-{kind}-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            cand.mkdir()
            return cand
        except FileExistsError:
            continue


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (EPERM): alive
        return True
    return True


def clean_stale(parent: str | Path) -> list[Path]:
    """Remove the temp folders in ``parent`` left by writers that died (``kill -9``): the
    ones whose process is gone. Returns what was removed."""
    gone = []
    parent = Path(parent)
    if not parent.is_dir():
        return gone
    pat = re.compile(rf"^\..+\.{_MARK}-(tmp|old)-(\d+)-[0-9a-f]+$")
    for p in parent.iterdir():
        m = pat.match(p.name)
        if m and p.is_dir() and not _alive(int(m.group(2))):
            shutil.rmtree(p, ignore_errors=True)
            gone.append(p)
    return gone


def check_target(path: str | Path, *, overwrite: bool = False) -> Path:
    """Raise :class:`DataError` unless ``path`` can become a new folder: not a file, not
    under a file, empty or ``overwrite``. Call it before expensive work."""
    path = Path(path)
    for up in [path, *path.parents]:
        if up.exists():
            if not up.is_dir():
                raise DataError(
                    "exists and is not a folder" if up == path else f"{up} is a file, not a folder",
                    file=path,
                    field="path",
                    expected="a folder path whose parents are folders (CLI: --out DIR)",
                )
            break
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise DataError(
            "folder exists and is not empty",
            file=path,
            field="path",
            expected="a new or empty folder; pass overwrite=True (CLI: --force) to replace it",
        )
    return path


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
    path = check_target(path, overwrite=overwrite)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(
            f"cannot create its parent folder ({err.strerror or err})",
            file=path,
            field="path",
            expected="a writable location (CLI: --out DIR)",
        ) from None
    clean_stale(path.parent)
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
