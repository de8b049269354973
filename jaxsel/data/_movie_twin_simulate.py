"""Simulate the dynamic twin: draw spatiotemporal neurons, calibrate them on natural-like
movies, simulate behaviour, add Poisson (or gamma-Poisson) noise per frame.

:func:`simulate_movies` returns ``(dataset, twin)``: the canonical video dataset
(:func:`jaxsel.data.make_video_dataset`) and the :class:`~jaxsel.data.MovieTwin` holding the
truth. The spatial part of every neuron is drawn by the static twin's machinery
(:func:`jaxsel.data.simulate`'s neuron draw and :func:`jaxsel.data.gabor` filters); the
temporal part, kinds and behaviour are new.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from jaxsel._errors import ConfigError
from jaxsel.data._movie_stimuli import drifting_gratings
from jaxsel.data._movie_twin import MOVIE_KINDS, MovieTwin, linear_drives, movie_rates
from jaxsel.data._stimuli import gabor
from jaxsel.data._twin_simulate import TwinConfig, draw_neurons


@dataclass(frozen=True)
class MovieTwinConfig:
    """How the dynamic population and the movie experiment are drawn (all have defaults).

    Attributes:
      n_neurons: neurons.
      shape: frame (height, width) in pixels.
      n_frames: frames of the longest trial.
      length_jitter: trial lengths are uniform in ``[(1 - jitter) n_frames, n_frames]``
        (0: all equal); repeats of a test movie share a length.
      n_train, n_validation: movies shown once in those tiers.
      n_test, test_repeats: test movies and how often each is shown.
      kind_fractions: fractions of simple, direction, motion_energy, suppressed and
        unresponsive cells.
      kernel_frames: temporal kernel length K in frames.
      frame_rate_hz: frames per second.
      tf_range_hz: preferred temporal frequencies are uniform in this range (Hz).
      mean_rate: median per-neuron mean rate in spikes per FRAME (log-normal spread
        ``rate_spread``).
      overdispersed_fraction, dispersion: gamma-Poisson neurons (as in :class:`TwinConfig`).
      behavior: simulate pupil/running traces and pupil centre, and modulate gains.
      norm_budget_fraction: optimal-movie budget as a fraction of the median contrast norm of
        K-frame training clips.
    """

    n_neurons: int = 60
    shape: tuple[int, int] = (36, 64)
    n_frames: int = 150
    length_jitter: float = 0.2
    n_train: int = 40
    n_validation: int = 8
    n_test: int = 5
    test_repeats: int = 4
    kind_fractions: tuple[float, ...] = (0.25, 0.25, 0.3, 0.1, 0.1)
    kernel_frames: int = 15
    frame_rate_hz: float = 30.0
    tf_range_hz: tuple[float, float] = (1.5, 4.0)
    mean_rate: float = 0.3
    rate_spread: float = 0.6
    overdispersed_fraction: float = 0.0
    dispersion: float = 3.0
    behavior: bool = True
    norm_budget_fraction: float = 0.15

    def __post_init__(self):
        mins = {
            "n_neurons": 1,
            "n_frames": 2,
            "n_train": 1,
            "n_validation": 1,
            "n_test": 1,
            "test_repeats": 2,
            "kernel_frames": 2,
        }
        for name, lo in mins.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ConfigError(f"{name} = {v!r}: expected an integer >= {lo}")
        if len(self.kind_fractions) != len(MOVIE_KINDS) or min(self.kind_fractions) < 0:
            raise ConfigError(
                f"kind_fractions = {self.kind_fractions!r}: expected {len(MOVIE_KINDS)} "
                f"fractions >= 0 for {MOVIE_KINDS}"
            )
        if not 0 <= self.length_jitter < 1:
            raise ConfigError(f"length_jitter = {self.length_jitter!r}: expected 0 <= x < 1")
        if not self.frame_rate_hz > 0 or not self.mean_rate > 0:
            raise ConfigError("frame_rate_hz and mean_rate must be > 0")


def _temporal(tf, tau0, K):
    """Temporal quadrature pair (neuron, K) and a low-pass kernel, from tf (cycles/frame)."""
    tau = np.arange(K, dtype=np.float64)[None]
    g = ((tau + 1) / tau0[:, None]) ** 2 * np.exp(-(tau + 1) / tau0[:, None])
    peak = 2 * tau0[:, None] - 1
    arg = 2 * np.pi * tf[:, None] * (tau - peak)
    ke, ko = g * np.cos(arg), g * np.sin(arg)
    scale = np.sqrt((ke**2 + ko**2).sum(1, keepdims=True))
    low = np.exp(-tau / 3.0) * np.ones_like(g)
    return ke / scale, ko / scale, low / low.sum(1, keepdims=True)


def draw_movie_neurons(cfg: MovieTwinConfig, rng: np.random.Generator) -> dict:
    """Kinds, spatial Gabors (static twin draw), temporal kernels and behaviour gains."""
    static = TwinConfig(
        n_neurons=cfg.n_neurons,
        shape=cfg.shape,
        kind_fractions=(1.0, 0.0, 0.0, 0.0),
        mean_rate=cfg.mean_rate,
        rate_spread=cfg.rate_spread,
        overdispersed_fraction=cfg.overdispersed_fraction,
        dispersion=cfg.dispersion,
    )
    p = draw_neurons(static, rng)
    n = cfg.n_neurons
    frac = np.asarray(cfg.kind_fractions, float)
    counts = np.floor(frac / frac.sum() * n).astype(int)
    counts[int(np.argmax(frac))] += n - counts.sum()
    kind = rng.permutation(np.repeat(np.arange(len(MOVIE_KINDS)), counts)).astype(np.int32)
    p["kind"] = kind
    p["sf"] = np.clip(p["sf"], 0.03, 0.2).astype(np.float32)
    tf = rng.uniform(*cfg.tf_range_hz, n) / cfg.frame_rate_hz
    tau0 = rng.uniform(1.5, 3.0, n)
    ke, ko, low = _temporal(tf, tau0, cfg.kernel_frames)
    p.update(
        tf=tf.astype(np.float32),
        tau0=tau0.astype(np.float32),
        k_even=ke.astype(np.float32),
        k_odd=ko.astype(np.float32),
        direction_weight=rng.uniform(0.5, 1.0, n).astype(np.float32),
        k_surround=low.astype(np.float32),
        threshold=np.where(kind == 2, rng.uniform(0.5, 1.5, n), rng.uniform(0.0, 0.5, n)).astype(
            np.float32
        ),
        suppression=np.where(kind == 3, rng.uniform(1.0, 3.0, n), 0.0).astype(np.float32),
        beta=np.stack([rng.normal(0.1, 0.05, n), rng.normal(0.25, 0.1, n)], 1).astype(np.float32)
        * float(cfg.behavior),
    )
    return p


def spatial_filters(p: dict, shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zero-mean unit-norm quadrature Gabors and a unit-sum surround annulus per neuron."""
    args = [
        np.asarray(p[k], np.float32)[:, None, None]
        for k in ("x0", "y0", "sigma", "theta", "sf", "phase")
    ]
    hw = (int(shape[0]), int(shape[1]))
    x0, y0, sigma, theta, sf, phase = args  # (neuron, 1, 1): gabor broadcasts over neurons

    def both(x0, y0, s, th, f, ph):  # one compiled call for the quadrature pair
        return gabor(hw, x0, y0, s, th, f, ph), gabor(hw, x0, y0, s, th, f, ph + np.pi / 2)

    pair = jax.jit(both)
    even, odd = (np.asarray(g, np.float64) for g in pair(x0, y0, sigma, theta, sf, phase))

    def unit(a):
        a = a - a.mean(axis=(1, 2), keepdims=True)
        return a / np.linalg.norm(a.reshape(len(a), -1), axis=1)[:, None, None]

    yy, xx = np.mgrid[: shape[0], : shape[1]]
    r = np.hypot(xx[None] - p["x0"][:, None, None], yy[None] - p["y0"][:, None, None])
    s = p["sigma"][:, None, None]
    ann = np.exp(-((r - 3.0 * s) ** 2) / (2 * s**2))
    ann = np.where((p["kind"] == 3)[:, None, None], ann / ann.sum(axis=(1, 2), keepdims=True), 0)
    return unit(even).astype(np.float32), unit(odd).astype(np.float32), ann.astype(np.float32)


def calibrate_movies(p: dict, shape, movies: np.ndarray) -> dict:
    """Drive/surround scales, saturation and gains so each neuron hits its target rate."""
    p = dict(p)
    p["w_even"], p["w_odd"], p["w_surround"] = spatial_filters(p, shape)
    n = len(p["kind"])
    p.update(
        drive_scale=np.ones(n, np.float32),
        surround_scale=np.ones(n, np.float32),
        gain=np.ones(n, np.float32),
        c50=np.full(n, np.inf, np.float32),
    )
    d = {k: np.asarray(v) for k, v in jax.jit(linear_drives)(p, movies).items()}
    sep = (p["kind"] == 0) | (p["kind"] == 3)
    lin = np.where(sep[None, None], d["separable"], d["a"])
    p["drive_scale"] = np.maximum(lin.reshape(-1, n).std(0), 1e-6).astype(np.float32)
    p["surround_scale"] = np.maximum(d["surround"].reshape(-1, n).mean(0), 1e-6).astype(np.float32)
    base = p["baseline"]
    p["baseline"] = np.zeros(n, np.float32)
    rates = jax.jit(movie_rates)
    unsat = np.asarray(rates(p, movies)).reshape(-1, n)
    p["c50"] = np.maximum(p["saturation"] * np.quantile(unsat, 0.999, axis=0), 1e-6).astype(
        np.float32
    )
    raw = np.asarray(rates(p, movies)).reshape(-1, n)
    target = p["target_rate"]
    base = np.minimum(base * target, 0.5 * target)
    gain = (target - base) / np.maximum(raw.mean(0), 1e-9)
    p["gain"] = np.where(p["kind"] == 4, 0.0, gain).astype(np.float32)
    p["baseline"] = np.where(p["kind"] == 4, target, base).astype(np.float32)
    return p


def direction_tuning(
    twin: MovieTwin,
    directions=None,
    *,
    contrast: float = 0.5,
    n_frames: int | None = None,
) -> xr.DataArray:
    """True direction tuning: each neuron's mean rate to full-field gratings drifting at its
    own ``sf`` and ``tf``, averaged over frames after the kernel length ``K`` (the burn-in).

    Args:
      twin: the twin.
      directions: (d,) radians (default 16 evenly spaced).
      contrast: grating contrast (0..1).
      n_frames: movie length (default ``K + 30``).

    Returns:
      (neuron, direction) rates, coords ``neuron_id`` and ``direction`` (radians).
    """
    K = int(twin.meta["kernel_frames"])
    T = K + 30 if n_frames is None else int(n_frames)
    dirs = np.linspace(0, 2 * np.pi, 16, endpoint=False) if directions is None else directions
    dirs = np.asarray(dirs, np.float64)
    p = twin.params
    n = len(twin.neuron_id)

    @jax.jit
    def one(pi, movies):
        pi1 = jax.tree.map(lambda a: a[None], pi)
        return movie_rates(pi1, movies)[:, K:, 0].mean(1)

    out = np.empty((n, len(dirs)), np.float32)
    for i in range(n):
        movies = drifting_gratings(
            dirs,
            T,
            twin.shape,
            sf=float(p["sf"][i]),
            tf=float(p["tf"][i]),
            contrast=contrast,
        )
        pi = {k: jnp.asarray(np.asarray(v)[i]) for k, v in p.items()}
        out[i] = np.asarray(one(pi, movies))
    return xr.DataArray(
        out,
        dims=("neuron", "direction"),
        coords={"neuron_id": ("neuron", twin.neuron_id), "direction": dirs},
        name="rate",
        attrs={"units": "spikes per frame", "contrast": contrast},
    )


def tuning_indices(tuning: xr.DataArray) -> dict[str, np.ndarray]:
    """DSI, OSI and preferred direction (SPEC 14) from (neuron, direction) rates.

    ``DSI = (R_pref - R_opp) / (R_pref + R_opp)`` with ``R_opp`` the rate at the direction
    closest to ``pref + pi``; ``OSI = |sum R e^{2i theta}| / sum R``.
    """
    r = np.asarray(tuning.values, np.float64)
    th = np.asarray(tuning["direction"].values, np.float64)
    k = np.argmax(r, axis=1)
    opp = np.argmin(np.abs(np.angle(np.exp(1j * (th[None] - th[k][:, None] - np.pi)))), axis=1)
    rp, ro = r[np.arange(len(r)), k], r[np.arange(len(r)), opp]
    dsi = (rp - ro) / np.maximum(rp + ro, 1e-12)
    osi = np.abs((r * np.exp(2j * th)[None]).sum(1)) / np.maximum(r.sum(1), 1e-12)
    return {"dsi": dsi.astype(np.float32), "osi": osi.astype(np.float32), "pref": th[k]}
