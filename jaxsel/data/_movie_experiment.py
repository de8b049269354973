"""A simulated movie experiment on the dynamic twin: :func:`simulate_movies`."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import xarray as xr

from jaxsel.data._movie_stimuli import natural_movies
from jaxsel.data._movie_twin import MovieTwin
from jaxsel.data._movie_twin_simulate import (
    MovieTwinConfig,
    calibrate_movies,
    direction_tuning,
    draw_movie_neurons,
    tuning_indices,
)
from jaxsel.data._pixels import norm_budget, to_contrast
from jaxsel.data._twin_simulate import sample_responses
from jaxsel.data._video_dataset import make_video_dataset


def _smooth(x: np.ndarray, tau: float) -> np.ndarray:
    """Causal exponential smoothing along axis 1."""
    out = np.empty_like(x)
    a = np.exp(-1.0 / tau)
    acc = x[:, 0]
    for t in range(x.shape[1]):
        acc = a * acc + (1 - a) * x[:, t]
        out[:, t] = acc
    return out


def simulate_movie_behavior(
    n_trials: int, n_frames: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Behaviour traces, z-scored: (trial, time, 2) pupil dilation and running speed, and
    (trial, time, 2) pupil centre (pixels of the eye camera, a slow random walk).

    Running switches between rest and bouts (a two-state process, ~1 switch per 3 s at 30
    Hz), smoothed; the pupil follows running plus slow noise.
    """
    state = np.zeros((n_trials, n_frames))
    s = rng.random(n_trials) < 0.4
    for t in range(n_frames):
        flip = rng.random(n_trials) < 1.0 / 90.0
        s = np.where(flip, ~s, s)
        state[:, t] = s
    running = _smooth(state * rng.uniform(5, 20, (n_trials, 1)), 8.0)
    running += 0.5 * np.abs(rng.standard_normal(running.shape))
    pupil = _smooth(0.05 * running + rng.standard_normal(running.shape), 20.0)
    beh = np.stack([pupil, running], -1)
    beh = (beh - beh.mean((0, 1))) / (beh.std((0, 1)) + 1e-9)
    centre = np.cumsum(0.3 * rng.standard_normal((n_trials, n_frames, 2)), axis=1)
    return beh.astype(np.float32), centre.astype(np.float32)


def _design(cfg: MovieTwinConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Trial order: train and validation movies once, test movies repeated (shuffled)."""
    n_seen = cfg.n_train + cfg.n_validation
    n_movies = n_seen + cfg.n_test
    video_id = np.concatenate(
        [
            np.arange(n_seen),
            rng.permutation(np.repeat(np.arange(n_seen, n_movies), cfg.test_repeats)),
        ]
    )
    tier = np.repeat(
        ["train", "validation", "test"],
        [cfg.n_train, cfg.n_validation, cfg.n_test * cfg.test_repeats],
    )
    return video_id, tier


def _cortex_positions(p: dict, rng: np.random.Generator) -> np.ndarray:
    """(neuron, 3) cortical positions in um, retinotopic in x/y (as the static twin's)."""
    n = len(p["kind"])
    return np.stack(
        [
            12.0 * np.asarray(p["x0"]) + rng.normal(0, 20, n),
            12.0 * np.asarray(p["y0"]) + rng.normal(0, 20, n),
            rng.uniform(150, 350, n),
        ],
        axis=1,
    )


def with_truth(twin: MovieTwin, cfg: MovieTwinConfig, train_movies: np.ndarray) -> MovieTwin:
    """The twin with its tuning truth and the optimal-movie norm budget added."""
    p = twin.params
    clips = to_contrast(train_movies[:, : cfg.kernel_frames])
    meta = {**twin.meta, "norm_budget": norm_budget(clips, cfg.norm_budget_fraction)}
    ind = tuning_indices(direction_tuning(twin))
    params = {
        **p,
        "pref_direction": np.asarray(p["theta"], np.float32),
        "pref_speed": (p["tf"] / p["sf"]).astype(np.float32),
        "pref_tf_hz": (p["tf"] * cfg.frame_rate_hz).astype(np.float32),
        "true_dsi": ind["dsi"],
        "true_osi": ind["osi"],
    }
    return MovieTwin(params=params, neuron_id=twin.neuron_id, meta=meta)


def simulate_movies(
    cfg: MovieTwinConfig | None = None, *, seed: int = 0, **overrides
) -> tuple[xr.Dataset, MovieTwin]:
    """Simulate a movie experiment on the dynamic twin.

    Args:
      cfg: a :class:`MovieTwinConfig` (defaults if None).
      seed: random seed; the same seed and config give identical data.
      **overrides: fields of :class:`MovieTwinConfig`, e.g. ``n_neurons=20``.

    Returns:
      ``(dataset, twin)``: the canonical video dataset (spike counts per frame, tiers, test
      repeats, behaviour when ``cfg.behavior``) and the ground truth, whose ``params`` hold
      per neuron ``pref_direction`` (radians; for the non-direction-selective kinds,
      ``pref_direction + pi`` is as good), ``pref_speed`` (pixels per frame), ``pref_tf_hz``,
      ``sf``, ``true_dsi`` and ``true_osi`` (from :func:`jaxsel.data.direction_tuning`).
    """
    cfg = replace(cfg or MovieTwinConfig(), **overrides)
    rng = np.random.default_rng(seed)
    n_movies = cfg.n_train + cfg.n_validation + cfg.n_test
    movies = natural_movies(
        n_movies, cfg.n_frames, cfg.shape, seed=seed, frame_rate_hz=cfg.frame_rate_hz
    )
    lo = max(int(np.ceil((1 - cfg.length_jitter) * cfg.n_frames)), 2)
    movie_len = rng.integers(lo, cfg.n_frames + 1, n_movies)
    p = calibrate_movies(draw_movie_neurons(cfg, rng), cfg.shape, movies[: cfg.n_train])
    video_id, tier = _design(cfg, rng)
    n_trials = len(video_id)
    beh, centre = (
        simulate_movie_behavior(n_trials, cfg.n_frames, rng) if cfg.behavior else (None, None)
    )
    meta = {
        "shape": list(cfg.shape),
        "seed": seed,
        "kernel_frames": cfg.kernel_frames,
        "frame_rate_hz": cfg.frame_rate_hz,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()},
    }
    twin = MovieTwin(params=p, neuron_id=np.arange(cfg.n_neurons), meta=meta)
    rates = twin.rates(movies[video_id], beh)
    counts = sample_responses(rates.reshape(-1, cfg.n_neurons), p["dispersion"], rng).reshape(
        rates.shape
    )
    twin = with_truth(twin, cfg, movies[: cfg.n_train])
    ds = make_video_dataset(
        movies[video_id],
        counts,
        video_id=video_id,
        tier=tier,
        n_frames=movie_len[video_id],
        frame_rate_hz=cfg.frame_rate_hz,
        behavior=beh,
        pupil_center=centre,
        neuron_id=twin.neuron_id,
        area=np.full(cfg.n_neurons, "V1"),
        cortex_xyz=_cortex_positions(p, rng),
        name=f"movie_twin_seed{seed}",
        source="dynamic digital twin",
        counts=True,
    )
    return ds, twin
