"""Many recordings at once: a multi-session dataset is a plain ``dict[str, xr.Dataset]``.

Session id -> one canonical dataset (see :func:`jaxsel.data.make_dataset`), in session
order. Every session has its own neurons and possibly its own images; all share the image
shape and channels, and either every session carries a per-trial variable (``behavior``,
``pupil_center``) or none does. :func:`load_sessions` reads a folder of Sensorium-style
static folders (or their ``.zip`` files), :func:`save_sessions` writes one, and
:func:`validate_sessions` checks a dict built by hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from jaxsel._atomic import atomic_directory
from jaxsel._errors import DataError
from jaxsel.data._dataset import STAT_VARS, TIERS, validate
from jaxsel.data._static_folder import load_static
from jaxsel.data._static_read import ANCHOR
from jaxsel.data._static_save import save_static

#: per-trial variables that must be in every session or in none, and the folder holding them
_SHARED_TRIAL_VARS = {"behavior": "data/behavior", "pupil_center": "data/pupil_center"}
_REQUIRED = {
    "images": ("trial", "channel", "y", "x"),
    "responses": ("trial", "neuron"),
    "image_id": ("trial",),
    "tier": ("trial",),
    "neuron_id": ("neuron",),
}


def _where(sid: str, ds: xr.Dataset | None = None) -> str:
    src = ds.attrs.get("source", "") if ds is not None else ""
    return f"session '{sid}'" + (f" ({src})" if src else "")


def validate_sessions(
    sessions: Mapping[str, xr.Dataset],
    *,
    require_tiers: Sequence[str] = (),
    require_repeats: bool = False,
) -> dict[str, xr.Dataset]:
    """Check a multi-session dataset; return it as a plain dict in the same order.

    Checks: at least one session; ids are unique non-empty strings; every value is a
    canonical dataset (:func:`jaxsel.data.validate`, with the train-tier statistics);
    all sessions have the same image channels and shape; ``behavior`` and
    ``pupil_center`` are in every session or in none, with the same ``behavior_var``.

    Args:
      sessions: session id -> dataset.
      require_tiers: tiers every session must have trials in.
      require_repeats: every session's test tier must hold repeated images.

    Returns:
      ``dict(sessions)``.

    Raises:
      DataError: one line naming the session and the field, with a fix.
    """
    if not isinstance(sessions, Mapping):
        raise DataError(
            f"got {type(sessions).__name__}",
            field="sessions",
            expected="a dict session id -> dataset (API: {'a': ds_a, 'b': ds_b} or "
            "load_sessions(folder))",
        )
    if not sessions:
        raise DataError(
            "no sessions", field="sessions", expected="at least one session id -> dataset"
        )
    seen: dict[str, str] = {}
    for sid in sessions:
        if not isinstance(sid, str) or not sid.strip():
            raise DataError(
                f"session id {sid!r}",
                field="sessions",
                expected="non-empty string ids (API: {str(k): v for k, v in sessions.items()})",
            )
        key = sid.strip().lower()
        if key in seen:
            raise DataError(
                f"session ids {seen[key]!r} and {sid!r} differ only in case or spaces",
                field="sessions",
                expected="distinct ids (they name folders on disk): rename one",
            )
        seen[key] = sid
    for sid, ds in sessions.items():
        _validate_one(sid, ds, require_tiers, require_repeats)
    _same_images(sessions)
    _same_trial_vars(sessions)
    return dict(sessions)


def _validate_one(sid: str, ds, require_tiers, require_repeats) -> None:
    if not isinstance(ds, xr.Dataset):
        raise DataError(
            f"is a {type(ds).__name__}",
            file=_where(sid),
            field="dataset",
            expected="an xarray.Dataset (API: jaxsel.data.make_dataset or load_static)",
        )
    for name, dims in _REQUIRED.items():
        if name not in ds.variables:
            raise DataError(
                "missing",
                file=_where(sid, ds),
                field=name,
                expected="a canonical dataset (API: jaxsel.data.make_dataset)",
            )
        if ds[name].dims != dims:
            raise DataError(
                f"has dims {ds[name].dims}",
                file=_where(sid, ds),
                field=name,
                expected=f"dims {dims} (API: jaxsel.data.make_dataset)",
            )
    missing = [k for k in STAT_VARS if k not in ds.variables]
    if missing:
        raise DataError(
            f"statistics {missing} missing",
            file=_where(sid, ds),
            field="statistics",
            expected="train-tier statistics (API: jaxsel.data.with_statistics(ds))",
        )
    try:
        validate(
            ds,
            source=_where(sid, ds),
            require_tiers=tuple(require_tiers),
            require_repeats=require_repeats,
        )
    except DataError:
        raise
    except (KeyError, ValueError, TypeError) as err:
        raise DataError(
            f"not a canonical dataset ({type(err).__name__}: {err})",
            file=_where(sid, ds),
            field="dataset",
            expected="a dataset from jaxsel.data.make_dataset",
        ) from None


def _same_images(sessions: Mapping[str, xr.Dataset]) -> None:
    first, ref = None, None
    for sid, ds in sessions.items():
        shape = tuple(ds["images"].shape[1:])
        if ref is None:
            first, ref = sid, shape
        elif shape != ref:
            raise DataError(
                f"images are (channel, y, x) = {shape} but session '{first}' has {ref}",
                file=_where(sid, ds),
                field="images",
                expected="one image shape across sessions: resize or crop the images "
                "(API: make_dataset(images=...))",
            )


def _same_trial_vars(sessions: Mapping[str, xr.Dataset]) -> None:
    for var, folder in _SHARED_TRIAL_VARS.items():
        have = [sid for sid, ds in sessions.items() if var in ds.variables]
        lack = [sid for sid in sessions if sid not in have]
        if have and lack:
            raise DataError(
                f"sessions {lack} have no {var} but {have} do",
                file=_where(lack[0], sessions[lack[0]]),
                field=var,
                expected=f"{var} in every session or in none: add its {folder} files, or "
                f"leave it out everywhere (API: ds.drop_vars('{var}'))",
            )
    ref_sid, ref = None, None
    for sid, ds in sessions.items():
        if "behavior" not in ds.variables:
            continue
        coord = ds["behavior"].coords.get("behavior_var")
        names = None if coord is None else [str(v) for v in np.asarray(coord.values)]
        if ref_sid is None:
            ref_sid, ref = sid, names
        elif names != ref:
            raise DataError(
                f"behavior_var = {names} but session '{ref_sid}' has {ref}",
                file=_where(sid, ds),
                field="behavior",
                expected="the same behaviour variables in the same order in every session",
            )


def _is_static(path: Path) -> bool:
    """Looks like a static folder (possibly a broken one, which load_static then names)."""
    return (path / ANCHOR).is_file() or any(
        (path / "data" / d).is_dir() for d in ("images", "responses")
    )


def _session_id(path: Path) -> str:
    return path.stem if path.suffix.lower() == ".zip" and not path.is_dir() else path.name


def session_paths(path_or_paths) -> dict[str, Path]:
    """Session id -> static folder or ``.zip``, as :func:`load_sessions` finds them.

    Args:
      path_or_paths: a folder of static folders / ``.zip`` files (subfolders without
        ``meta/trials/tiers.npy``, ``data/images`` or ``data/responses`` and hidden
        entries are skipped; where a folder and its
        ``.zip`` both exist the folder is read), one static folder or ``.zip`` (one
        session), a list of them (ids from their names) or a dict id -> path.

    Raises:
      DataError: a path is missing, nothing is found, or two paths give one id.
    """
    if isinstance(path_or_paths, Mapping):
        out = {str(k): Path(v) for k, v in path_or_paths.items()}
    elif isinstance(path_or_paths, (str, Path)):
        root = Path(path_or_paths)
        if not root.exists():
            raise DataError(
                "not found", file=root, field="path", expected="a folder of static folders"
            )
        if root.is_file() or _is_static(root):
            return {_session_id(root): root}
        entries = sorted(p for p in root.iterdir() if not p.name.startswith((".", "__")))
        dirs = {p.name: p for p in entries if p.is_dir() and _is_static(p)}
        zips = {
            p.stem: p
            for p in entries
            if p.is_file() and p.suffix.lower() == ".zip" and p.stem not in dirs
        }
        out = dict(sorted({**dirs, **zips}.items()))
        if not out:
            raise DataError(
                f"no static folders or .zip files in it (found {[p.name for p in entries][:5]})",
                file=root,
                field="path",
                expected="subfolders with data/images, data/responses and meta/ (Sensorium "
                "layout) or their .zip "
                "files (API: load_sessions([folder_a, folder_b]))",
            )
    else:
        out = {}
        for p in map(Path, path_or_paths):
            sid = _session_id(p)
            if sid in out:
                raise DataError(
                    f"{out[sid]} and {p} both give session id '{sid}'",
                    file=p,
                    field="session id",
                    expected="distinct folder names, or ids chosen by you "
                    "(API: load_sessions({'a': path_a, 'b': path_b}))",
                )
            out[sid] = p
    for sid, p in out.items():
        if not p.exists():
            raise DataError(
                "not found", file=p, field=f"session '{sid}'", expected="a static folder or .zip"
            )
    return out


def load_sessions(
    path_or_paths,
    *,
    require_tiers: Sequence[str] = TIERS,
    require_repeats: bool = True,
    final_test: str = "merge",
    allow_pickle: bool = False,
) -> dict[str, xr.Dataset]:
    """Load many recording sessions (Sensorium 2022 style static folders or their zips).

    Each session is read with :func:`jaxsel.data.load_static` (images, responses, tiers,
    image ids, neuron ids, ``cell_motor_coordinates`` as ``cortex_x/y/z``, and, when their
    files exist, ``behavior``, ``pupil_center`` and ``trial_idx``). Everything is read and
    checked (:func:`validate_sessions`) before anything is returned.

    Args:
      path_or_paths: a folder holding the session folders / zips, one static folder, a
        list of folders / zips, or a dict session id -> folder / zip (see
        :func:`session_paths`). Ids default to the folder names (zips without ``.zip``).
      require_tiers, require_repeats, final_test, allow_pickle: as in
        :func:`jaxsel.data.load_static`, for every session.

    Returns:
      Session id -> dataset, ids sorted by name unless a list or dict gave the order.

    Raises:
      DataError: naming the session's file and field.
    """
    paths = session_paths(path_or_paths)
    sessions = {
        sid: load_static(
            p,
            require_tiers=require_tiers,
            require_repeats=require_repeats,
            final_test=final_test,
            allow_pickle=allow_pickle,
            name=sid,
        )
        for sid, p in paths.items()
    }
    return validate_sessions(sessions, require_tiers=require_tiers, require_repeats=require_repeats)


def save_sessions(
    sessions: Mapping[str, xr.Dataset], path: str | Path, *, overwrite: bool = False
) -> Path:
    """Write every session as a static folder ``path/<session id>`` (all or nothing).

    :func:`load_sessions` reads ``path`` back (same ids; order by name).

    Args:
      sessions: session id -> dataset (checked with :func:`validate_sessions`).
      path: the folder to create (new or empty unless ``overwrite``).
      overwrite: replace an existing folder.

    Returns:
      The folder written.
    """
    sessions = validate_sessions(sessions)
    for sid in sessions:
        if sid != sid.strip() or sid in (".", "..") or any(c in sid for c in '/\\:*?"<>|'):
            raise DataError(
                f"session id {sid!r} is not a plain folder name",
                field="sessions",
                expected='ids without / \\ : * ? " < > | or surrounding spaces: rename it',
            )
    path = Path(path)
    with atomic_directory(path, overwrite=overwrite) as tmp:
        for sid, ds in sessions.items():
            save_static(ds, tmp / sid)
    return path


__all__ = ["load_sessions", "save_sessions", "session_paths", "validate_sessions"]
