"""Simulated behaviour of one recording session: running bouts, pupil size, eye position.

Trials are taken in presentation order (one step per trial):

* running: a two-state (still / running) Markov chain with mean bout length
  ``bout_trials`` and a stationary running fraction ``run_fraction``; the speed (cm/s) is
  an AR(1) process around ``run_speed`` during a bout and near zero when still;
* pupil dilation (eye-camera pixels): the exponential of an AR(1) (discrete Ornstein-
  Uhlenbeck) process around ``log(pupil_radius)``, dilated during running; ``dpupil`` is
  its difference from the previous trial;
* pupil centre (eye-camera pixels, x and y): an AR(1) process around a per-session centre.

Together they fill the Sensorium per-trial variables ``behavior`` = (pupil, dpupil,
running) and ``pupil_center`` = (x, y).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jaxsel._errors import ConfigError


@dataclass(frozen=True)
class BehaviorConfig:
    """How behaviour is simulated and how it modulates the twin (defaults: mouse-like).

    Attributes:
      run_fraction: fraction of trials in running bouts (0..1).
      bout_trials: mean length of a running bout, in trials.
      run_speed: mean running speed during a bout (cm/s).
      pupil_radius: median pupil size (eye-camera pixels).
      tau_trials: time constant of the pupil and eye-position processes, in trials.
      eye_std: standard deviation of each pupil-centre coordinate (eye-camera pixels).
      coupling_mean, coupling_std: each neuron's log-gain per standard deviation of
        (pupil, dpupil, running) is drawn from a normal with these means and stds.
      shift_per_eye: receptive-field shift (image pixels) per eye-camera pixel of pupil
        movement (the scale of each session's affine eye-to-RF mapping).
    """

    run_fraction: float = 0.3
    bout_trials: float = 20.0
    run_speed: float = 15.0
    pupil_radius: float = 20.0
    tau_trials: float = 10.0
    eye_std: float = 4.0
    coupling_mean: tuple[float, float, float] = (0.05, 0.0, 0.15)
    coupling_std: tuple[float, float, float] = (0.1, 0.05, 0.15)
    shift_per_eye: float = 0.25

    def __post_init__(self):
        if not 0.0 <= self.run_fraction < 1.0:
            raise ConfigError(f"run_fraction = {self.run_fraction!r}: expected 0 <= value < 1")
        for name in ("bout_trials", "run_speed", "pupil_radius", "tau_trials"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ConfigError(f"{name} = {v!r}: expected a number > 0")
        for name in ("eye_std", "shift_per_eye"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise ConfigError(f"{name} = {v!r}: expected a number >= 0")
        for name in ("coupling_mean", "coupling_std"):
            v = tuple(getattr(self, name))
            if len(v) != 3 or (name == "coupling_std" and min(v) < 0):
                raise ConfigError(
                    f"{name} = {v!r}: expected 3 numbers (pupil, dpupil, running)"
                    + (", each >= 0" if name == "coupling_std" else "")
                )


def _ar1(rng: np.random.Generator, n: int, rho: float, std: float, dims: int = 1) -> np.ndarray:
    """Stationary zero-mean AR(1) process (n, dims) with lag-1 correlation ``rho``."""
    out = np.empty((n, dims))
    x = std * rng.standard_normal(dims)
    step = std * np.sqrt(1.0 - rho**2)
    for t in range(n):
        if t:
            x = rho * x + step * rng.standard_normal(dims)
        out[t] = x
    return out


def simulate_behavior(
    rng: np.random.Generator, n_trial: int, cfg: BehaviorConfig | None = None
) -> dict[str, np.ndarray]:
    """One session's behaviour in presentation order.

    Args:
      rng: the random generator (consumed).
      n_trial: trials, in the order they were shown.
      cfg: the behaviour model (defaults if None).

    Returns:
      ``behavior`` (n_trial, 3) float32: pupil dilation, its derivative, running speed;
      ``pupil_center`` (n_trial, 2) float32: x, y in eye-camera pixels;
      ``running`` (n_trial,) bool: in a running bout.
    """
    cfg = cfg or BehaviorConfig()
    leave = 1.0 / max(cfg.bout_trials, 1.0)
    enter = cfg.run_fraction * leave / (1.0 - cfg.run_fraction)
    running = np.empty(n_trial, bool)
    state = rng.random() < cfg.run_fraction
    u = rng.random(n_trial)
    for t in range(n_trial):
        if t:
            state = u[t] >= leave if state else u[t] < enter
        running[t] = state
    rho = float(np.exp(-1.0 / cfg.tau_trials))
    speed_noise = _ar1(rng, n_trial, 0.8, 0.3 * cfg.run_speed)[:, 0]
    speed = np.where(
        running,
        np.maximum(cfg.run_speed + speed_noise, 0.5),
        np.abs(0.3 * rng.standard_normal(n_trial)),
    )
    # pupil dilates with running, smoothed by the pupil's own time constant
    drive = np.zeros(n_trial)
    for t in range(n_trial):
        drive[t] = (rho * drive[t - 1] if t else 0.0) + (1 - rho) * 0.3 * running[t]
    log_pupil = np.log(cfg.pupil_radius) + drive + _ar1(rng, n_trial, rho, 0.15)[:, 0]
    pupil = np.exp(log_pupil)
    dpupil = np.diff(pupil, prepend=pupil[:1])
    center = np.array([160.0, 120.0]) + rng.normal(0.0, 10.0, 2)
    eye = center + _ar1(rng, n_trial, rho, cfg.eye_std, dims=2)
    return {
        "behavior": np.stack([pupil, dpupil, speed], axis=1).astype(np.float32),
        "pupil_center": eye.astype(np.float32),
        "running": running,
    }
