"""The data side of multi-session training: checks, per-session standardized tiers with
behaviour and pupil centre, and the LongCycler batch schedule.

A multi-session dataset is a ``dict[str, xarray.Dataset]`` in session order (session id ->
canonical dataset, each with its own neurons and possibly its own images); optional per-trial
``behavior`` (trial, behavior_var) and ``pupil_center`` (trial, xy).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import xarray as xr

from jaxsel._errors import DataError
from jaxsel.data import n_batches
from jaxsel.models import ModelConfig, SessionModelConfig
from jaxsel.train._fit_parts import TrainData, prepare_data


def check_sessions(where: str, sessions) -> dict:
    """``sessions`` as an ordered ``{str id: xarray.Dataset}``; a dict or a sequence of
    ``(id, dataset)`` pairs is accepted; duplicate or non-string ids are refused."""
    if isinstance(sessions, xr.Dataset):
        raise DataError(
            f"{where}: got one dataset",
            field="sessions",
            expected="a dict {session id: xarray.Dataset} (for one dataset: {'s0': ds}, "
            "or use jaxsel.fit)",
        )
    if isinstance(sessions, dict):
        pairs = list(sessions.items())
    else:
        try:
            pairs = [(k, v) for k, v in sessions]
        except (TypeError, ValueError):
            raise DataError(
                f"{where}: sessions is a {type(sessions).__name__}",
                field="sessions",
                expected="a dict {session id: xarray.Dataset}",
            ) from None
    if not pairs:
        raise DataError(f"{where}: no sessions", field="sessions", expected="at least one session")
    out: dict = {}
    for sid, ds in pairs:
        if not isinstance(sid, str) or not sid:
            raise DataError(
                f"{where}: session id {sid!r} is not a non-empty string",
                field="sessions",
                expected="string session ids, e.g. {'mouse1_s1': ds}",
            )
        if sid in out:
            raise DataError(
                f"{where}: duplicate session id {sid!r}",
                field="sessions",
                expected="each session id once (rename one of them)",
            )
        if not isinstance(ds, xr.Dataset):
            raise DataError(
                f"{where}: session {sid!r} is a {type(ds).__name__}",
                field="sessions",
                expected="an xarray.Dataset per session",
            )
        out[sid] = ds
    return out


def check_trial_vars(sid: str, ds: xr.Dataset, scfg: SessionModelConfig) -> None:
    """The behaviour / pupil-centre variables a session needs for this model, with their
    shapes, checked before anything else (one-line errors naming session and field)."""
    if scfg.behavior != "none":
        if "behavior" not in ds.variables:
            raise DataError(
                f"session {sid!r} has no per-trial behaviour but the model uses it "
                f"(sessions.behavior = {scfg.behavior!r})",
                field="behavior",
                expected="a (trial, behavior_var) variable with "
                f"{list(scfg.behavior_vars)}, or model.sessions.behavior = 'none'",
            )
        b = ds["behavior"]
        if b.dims != ("trial", "behavior_var"):
            raise DataError(
                f"session {sid!r}: behavior has dims {b.dims}",
                field="behavior",
                expected="dims ('trial', 'behavior_var')",
            )
        have = [str(v) for v in b["behavior_var"].values] if "behavior_var" in b.coords else []
        missing = [v for v in scfg.behavior_vars if v not in have]
        if missing:
            raise DataError(
                f"session {sid!r}: behavior lacks {missing} (has {have})",
                field="behavior",
                expected=f"behavior_var entries {list(scfg.behavior_vars)}, or set "
                "model.sessions.behavior_vars to the ones every session has",
            )
    if scfg.shifter:
        if "pupil_center" not in ds.variables:
            raise DataError(
                f"session {sid!r} has no pupil_center but the model has a shifter",
                field="pupil_center",
                expected="a (trial, xy) variable with xy of size 2, or "
                "model.sessions.shifter = false",
            )
        p = ds["pupil_center"]
        if p.dims != ("trial", "xy") or p.shape[1] != 2:
            raise DataError(
                f"session {sid!r}: pupil_center has dims {p.dims} and shape {p.shape}",
                field="pupil_center",
                expected="dims ('trial', 'xy') with xy of size 2 (x, y)",
            )


@dataclass
class SessionData:
    """One session's standardized train and validation tiers, with z-scored behaviour and
    pupil centre (None where the model does not use them) and their train statistics."""

    data: TrainData
    b_train: np.ndarray | None
    b_val: np.ndarray | None
    p_train: np.ndarray | None
    p_val: np.ndarray | None
    stats: dict  # behavior_mean/std, pupil_mean/std (float32) where used

    @property
    def n_train(self) -> int:
        return self.data.n_train

    def standardizer(self) -> dict:
        """The session's standardizer arrays (images, responses, behaviour, pupil)."""
        return {**self.data.standardizer_arrays(), **self.stats}


def prepare_session(sid: str, ds: xr.Dataset, mcfg: ModelConfig, train) -> SessionData:
    """Validate and standardize one session (errors name the session)."""
    scfg = mcfg.sessions or SessionModelConfig()
    check_trial_vars(sid, ds, scfg)
    try:
        data = prepare_data(ds, train)
    except DataError as err:
        raise DataError(f"session {sid!r}: {err}") from None
    tier = data.ds["tier"].values
    stats: dict = {}
    b_tr = b_va = p_tr = p_va = None
    if scfg.behavior != "none":
        b = data.ds["behavior"].sel(behavior_var=list(scfg.behavior_vars)).values.astype(np.float64)
        b_tr, b_va, mean, std = _zscore(b, tier)
        stats.update(behavior_mean=mean, behavior_std=std)
    if scfg.shifter:
        p = data.ds["pupil_center"].values.astype(np.float64)
        p_tr, p_va, mean, std = _zscore(p, tier)
        stats.update(pupil_mean=mean, pupil_std=std)
    return SessionData(data, b_tr, b_va, p_tr, p_va, stats)


def _zscore(a: np.ndarray, tier: np.ndarray):
    tr = a[tier == "train"]
    mean = tr.mean(0)
    std = tr.std(0)
    std = np.where(std > 1e-6 * (1 + np.abs(mean)), std, 1.0)
    z = ((a - mean) / std).astype(np.float32)
    return (
        np.ascontiguousarray(z[tier == "train"]),
        np.ascontiguousarray(z[tier == "validation"]),
        mean.astype(np.float32),
        std.astype(np.float32),
    )


def pass_order(n: int, seed: int, epoch: int, k: int) -> np.ndarray:
    """The trial permutation of pass ``k`` through a session's train tier in an epoch.

    Pass ``k = cycle * n_sessions + session_index``; pass 0 (the first session's first pass)
    is exactly :func:`jaxsel.data.iterate`'s order, so one session trains like ``fit``."""
    return np.random.default_rng([seed, epoch] if k == 0 else [seed, epoch, k]).permutation(n)


def batch_indices(order: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(take, trial)`` per fixed-size batch: padding repeats the batch's first trial and
    has ``trial == -1`` (the convention of :func:`jaxsel.data.iterate`)."""
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        trial = np.full(batch_size, -1, dtype=np.int64)
        trial[: len(idx)] = idx
        yield np.where(trial >= 0, trial, idx[0]), trial


def long_cycler(sizes: list[int], batch_size: int, seed: int, epoch: int):
    """One epoch of the LongCycler schedule (neuralpredictors ``LongCycler``).

    Yields ``rounds`` lists, one ``(take, trial)`` batch per session in session order, where
    ``rounds`` is the largest session's batch count; a shorter session starts a new shuffled
    pass when it runs out (it is cycled), so every round holds one batch of every session.
    """
    n_sess = len(sizes)
    rounds = max(n_batches(n, batch_size) for n in sizes)
    gens = []
    for i, n in enumerate(sizes):
        gens.append(_cycle(n, batch_size, seed, epoch, i, n_sess))
    for _ in range(rounds):
        yield [next(g) for g in gens]


def _cycle(n: int, batch_size: int, seed: int, epoch: int, i: int, n_sess: int):
    c = 0
    while True:
        yield from batch_indices(pass_order(n, seed, epoch, c * n_sess + i), batch_size)
        c += 1


__all__ = [
    "SessionData",
    "batch_indices",
    "check_sessions",
    "check_trial_vars",
    "long_cycler",
    "pass_order",
    "prepare_session",
]
