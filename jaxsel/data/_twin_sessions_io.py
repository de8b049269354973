"""Writing and reading a simulated multi-session experiment: ``OUT/sessions/<id>`` (static
folders with behaviour and pupil files) and ``OUT/ground_truth/<id>`` (each session's
:class:`~jaxsel.data.SessionTruth`), written in one atomic step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from jaxsel._atomic import atomic_directory, check_target
from jaxsel._errors import DataError
from jaxsel.data._sessions import load_sessions, save_sessions
from jaxsel.data._twin import load_twin, save_twin
from jaxsel.data._twin_modulation import MODULATION_KEYS
from jaxsel.data._twin_sessions import SessionTruth

_TRIAL_VARS = ("gain", "rf_shift", "rates")


def save_session_truth(truth: SessionTruth, path: str | Path) -> Path:
    """Write one session's ground truth: the twin (:func:`jaxsel.data.save_twin`) plus
    ``modulation.npz`` and ``trials.npz`` (gain, rf_shift, rates, image_id per trial)."""
    path = save_twin(truth.twin, path)
    # Any values: numpy's stub would let a ndarray ** entry fill the bool ``allow_pickle``
    mod: dict[str, Any] = {k: np.asarray(truth.modulation[k]) for k in MODULATION_KEYS}
    np.savez_compressed(path / "modulation.npz", **mod)
    t = truth.trials
    trials: dict[str, Any] = {k: t[k].values for k in ("image_id", *_TRIAL_VARS)}
    np.savez_compressed(path / "trials.npz", **trials)
    return path


def load_session_truth(path: str | Path) -> SessionTruth:
    """Read one session's ground truth written by :func:`save_session_truth`."""
    path = Path(path)
    twin = load_twin(path)
    for name in ("modulation.npz", "trials.npz"):
        if not (path / name).is_file():
            raise DataError(
                "ground-truth file missing",
                file=path / name,
                expected="a folder written by jaxsel simulate --sessions / save_session_truth",
            )
    with np.load(path / "modulation.npz") as z:
        missing = [k for k in MODULATION_KEYS if k not in z.files]
        if missing:
            raise DataError(
                f"arrays {missing} missing",
                file=path / "modulation.npz",
                field="modulation",
                expected=f"{list(MODULATION_KEYS)} (rewrite it with jaxsel simulate --sessions)",
            )
        mod = {k: z[k] for k in MODULATION_KEYS}
    with np.load(path / "trials.npz") as z:
        arrays = {k: z[k] for k in z.files}
    trials = xr.Dataset(
        {
            "gain": (("trial", "neuron"), arrays["gain"]),
            "rf_shift": (("trial", "xy"), arrays["rf_shift"], {"units": "pixels"}),
            "rates": (("trial", "neuron"), arrays["rates"], {"units": "spikes per trial"}),
        },
        coords={
            "xy": ["x", "y"],
            "image_id": ("trial", arrays["image_id"]),
            "neuron_id": ("neuron", twin.neuron_id),
        },
    )
    return SessionTruth(twin=twin, modulation=mod, trials=trials)


def write_twin_sessions(
    out: str | Path, *, force: bool = False, seed: int = 0, n_sessions: int = 2, **options
):
    """Simulate several sessions and write ``out/sessions`` and ``out/ground_truth``.

    ``jaxsel.data.load_sessions(out / "sessions")`` reads the sessions back.

    Args:
      out: the output folder (must be new or empty unless ``force``).
      force: replace an existing ``out``.
      seed: the simulation seed.
      n_sessions: number of sessions.
      **options: ``preset``, ``shared_images``, ``behavior`` and fields of
        :class:`jaxsel.data.TwinConfig`, passed to :func:`jaxsel.data.simulate`.

    Returns:
      ``(sessions, truth)`` as :func:`jaxsel.data.simulate_sessions`.
    """
    check_target(out, overwrite=force)  # before the (long) simulation
    from jaxsel.data._twin_simulate import simulate

    sessions, truth = simulate(seed=seed, n_sessions=n_sessions, **options)
    with atomic_directory(Path(out), overwrite=force) as tmp:
        save_sessions(sessions, tmp / "sessions")
        for sid, t in truth.items():
            save_session_truth(t, tmp / "ground_truth" / sid)
    return sessions, truth


def load_twin_sessions(out: str | Path, **options):
    """Read what :func:`write_twin_sessions` wrote: ``(sessions, truth)``.

    Args:
      out: the folder holding ``sessions/`` and ``ground_truth/``.
      **options: passed to :func:`jaxsel.data.load_sessions`.

    Raises:
      DataError: a session without its ground truth (or the other way round).
    """
    out = Path(out)
    sessions = load_sessions(out / "sessions", **options)
    gt = out / "ground_truth"
    found = sorted(p.name for p in gt.iterdir() if p.is_dir()) if gt.is_dir() else []
    if found != sorted(sessions):
        raise DataError(
            f"ground truth for sessions {found} but data for {sorted(sessions)}",
            file=gt,
            field="ground_truth",
            expected="one ground-truth folder per session (rewrite with jaxsel simulate "
            "--sessions S --force)",
        )
    return sessions, {sid: load_session_truth(gt / sid) for sid in sessions}


__all__ = ["load_session_truth", "load_twin_sessions", "save_session_truth", "write_twin_sessions"]
