"""The run configuration's multi-session keys and their checks.

A run is *multi-session* when ``[data] source = "sessions"`` (recordings: ``data.path`` a
folder of Sensorium-style static folders / zips, or ``data.sessions`` a list of them) or
``[data] source = "twin"`` with ``[data.twin] n_sessions`` > 1 (the twin simulated as that
many sessions with behaviour and eye movements, :func:`jaxsel.data.simulate_sessions`).
Such a run fits each model of ``[train] models`` that can be shared across sessions (a CNN
with a Gaussian readout) with :func:`jaxsel.train.fit_sessions`; the session parts of the
model (behaviour modulator, shifter, feature sharing) come from ``[train.overrides]
sessions = {...}`` (the fields of :class:`jaxsel.models.SessionModelConfig`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from jaxsel._errors import ConfigError
from jaxsel.data import TwinConfig
from jaxsel.models import SessionModelConfig


@dataclass(frozen=True)
class TwinSection(TwinConfig):
    """``[data.twin]``: the fields of :class:`jaxsel.data.TwinConfig` plus ``n_sessions``.

    Attributes:
      n_sessions: 1 simulates one recording (the single-session pipeline); more simulates
        that many sessions with behaviour and eye position (the multi-session pipeline).
    """

    n_sessions: int = field(
        default=1,
        metadata={
            "doc": "sessions simulated: 1 = one recording; more = that many sessions with "
            "behaviour and eye movements (one shared-core model over all of them)"
        },
    )

    def __post_init__(self):
        super().__post_init__()
        v = self.n_sessions
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(
                f"key 'data.twin.n_sessions' must be an integer >= 1, got {v!r} "
                "(1 = one recording; e.g. --set data.twin.n_sessions=4)"
            )

    def twin_config(self) -> TwinConfig:
        """The :class:`jaxsel.data.TwinConfig` part (without ``n_sessions``)."""
        return TwinConfig(**twin_fields(self))


def twin_fields(twin) -> dict:
    """The :class:`jaxsel.data.TwinConfig` fields of ``[data.twin]`` as keyword arguments."""
    d = asdict(twin)
    d.pop("n_sessions", None)
    return d


def uses_sessions(cfg) -> bool:
    """Whether the run is multi-session (see the module docstring)."""
    d = cfg.data
    return d.source == "sessions" or (d.source == "twin" and d.twin.n_sessions > 1)


def session_sources(cfg):
    """What :func:`jaxsel.data.load_sessions` reads: ``data.sessions`` (a list) if set,
    else ``data.path`` (a folder of session folders)."""
    d = cfg.data
    return list(d.sessions) if d.sessions else d.path


def check_session_config(cfg) -> None:
    """One-line ConfigErrors naming the key for a multi-session run's data paths and
    session model config (called before anything runs)."""
    d = cfg.data
    hint = f"; where to get it: {d.hint}" if d.hint else ""
    if d.source == "sessions":
        if not d.path and not d.sessions:
            raise ConfigError(
                "key 'data.path' is empty but data.source = 'sessions' needs it: set it to a "
                f"folder of static session folders (or list them in data.sessions){hint}"
            )
        for i, p in enumerate(d.sessions):
            if not Path(p).exists():
                raise ConfigError(f"key 'data.sessions[{i}]': {p} does not exist{hint}")
        if not d.sessions and not Path(d.path).exists():
            raise ConfigError(
                f"key 'data.path': {d.path} does not exist (data.source = 'sessions'); "
                f"put the session folders there or edit data.path{hint}"
            )
    elif d.sessions:
        raise ConfigError(
            f"key 'data.sessions' is set but data.source = {d.source!r}: set "
            "data.source = 'sessions' or remove data.sessions"
        )
    session_model_config(cfg.train.overrides.get("sessions"), "train.overrides.sessions")
    for name, ov in cfg.train.per_model.items():
        if isinstance(ov, dict):
            session_model_config(ov.get("sessions"), f"train.per_model.{name}.sessions")


def session_model_config(value, key: str) -> SessionModelConfig:
    """``[train.overrides] sessions`` (a table, None or a SessionModelConfig) as a
    :class:`jaxsel.models.SessionModelConfig`; a ConfigError names ``key``."""
    if value is None:
        return SessionModelConfig()
    if isinstance(value, SessionModelConfig):
        return value
    if not isinstance(value, dict):
        raise ConfigError(f"key '{key}' must be a table such as {{shifter = true}}, got {value!r}")
    valid = set(SessionModelConfig.__dataclass_fields__)
    for k in value:
        if k not in valid:
            raise ConfigError(f"unknown key '{key}.{k}' (valid: {sorted(valid)})")
    try:
        return SessionModelConfig(**value)
    except (ConfigError, TypeError) as err:
        raise ConfigError(f"key '{key}': {err}") from None
