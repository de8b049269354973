"""Simulate the digital twin: draw neurons, calibrate them on natural-like images, add noise.

``simulate`` returns a dataset in the canonical layout (static-folder compatible) and the
:class:`~jaxsel.data.Twin` holding the ground truth: parameters, noise-free response
function, true reliability and true optimal stimuli.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, overload

import numpy as np
import xarray as xr

from jaxsel._errors import ConfigError
from jaxsel.data._dataset import make_dataset
from jaxsel.data._observation import (
    OBSERVATIONS,
    noise_variance,
    sample_responses,
    sample_zig,
    true_reliability,
)
from jaxsel.data._pixels import norm_budget
from jaxsel.data._stimuli import gabor, natural_like
from jaxsel.data._twin import KINDS, Twin, contrast, twin_rates
from jaxsel.data._twin_presets import PRESETS, check_preset

if TYPE_CHECKING:
    from jaxsel.data._twin_sessions import SessionTruth


@dataclass(frozen=True)
class TwinConfig:
    """How the population and the experiment are drawn (every field has a default).

    The defaults are the ``clean`` preset; :func:`twin_config` (or ``simulate(preset=...)``,
    ``jaxsel simulate --preset``, ``[data.twin] preset``) starts from another preset
    (:data:`jaxsel.data.TWIN_PRESETS`; values and calibration in docs/twin-presets.md):

    * ``clean``: spike counts (Poisson / gamma-Poisson), 4,000 + 500 images shown once,
      100 test images x 10; sparse, heavy-tailed rates (single trials up to ~300 spikes),
      far more reliable than recordings;
    * ``sensorium``: calcium-like zero-inflated gamma responses, 4,500 + 500 images shown once
      and 100 test images x 10 (one Sensorium 2022 mouse); compressed peak rates; the true
      rates reach a median single-trial test correlation of 0.30-0.40 over responsive
      neurons (the SOTA CNN on the real data: 0.286);
    * ``allen``: spike counts in a 250 ms window of an Allen Neuropixels natural-scenes
      session: 118 images x 50 repeats (83 train / 12 validation / 23 test images, the
      split of the ``allen`` data source), ~1 spike per presentation, bounded tail.

    Attributes:
      preset: the preset the other fields start from: ``clean``, ``sensorium`` or
        ``allen`` (applied by :func:`twin_config`, ``simulate(preset=...)`` and
        ``[data.twin] preset``, where the table's other keys override it).
      n_neurons: neurons in the population.
      shape: image (height, width) in pixels.
      n_train, n_validation: images in those tiers.
      train_repeats: presentations of each train and validation image.
      n_test, test_repeats: test images and how often each is shown.
      kind_fractions: fractions of simple, complex, suppressed and unresponsive cells.
      stimuli: ``"dead_leaves"``, ``"pink"`` or ``"mix"``.
      mean_rate: median of the per-neuron mean rate (spikes per trial).
      rate_spread: log-normal spread (sigma) of the per-neuron mean rates.
      max_mean_rate: cap on the per-neuron mean rate (0: no cap).
      saturation_range: the contrast saturation ``c50`` of each neuron is its unsaturated
        drive's 99.9th percentile times a log-uniform factor in this range; smaller values
        compress the peak rates (the tail of the responses).
      baseline_fraction: the spontaneous rate of each responsive neuron is at least this
        fraction of its mean rate (the image-driven part carries the rest); larger values
        flatten the responses (less signal variance, a shorter tail).
      observation: ``"counts"`` (spike counts) or ``"zig"`` (calcium-like zero-inflated
        gamma; ``jaxsel.data`` module ``_observation`` documents both).
      overdispersed_fraction: ``"counts"``: neurons with gamma-Poisson noise; the rest
        are Poisson.
      dispersion: ``"counts"``: median gamma shape of the overdispersed neurons (log-normal
        spread, at least 1); noise variance ``r + r^2 / dispersion``.
      zig_gate: ``"zig"``: median over neurons of the rate (relative to the neuron's mean
        rate) at which 63 % of trials are non-zero; larger = more zeros, noisier.
      zig_shape: ``"zig"``: median gamma shape of the non-zero responses (larger = less
        skewed).
      norm_budget_fraction: the default MEI/optimal-stimulus L2 budget, as a fraction of the
        median contrast norm of the natural-like images.
    """

    preset: str = "clean"
    n_neurons: int = 300
    shape: tuple[int, int] = (36, 64)
    n_train: int = 4000
    n_validation: int = 500
    train_repeats: int = 1
    n_test: int = 100
    test_repeats: int = 10
    kind_fractions: tuple[float, float, float, float] = (0.4, 0.35, 0.15, 0.1)
    stimuli: str = "dead_leaves"
    mean_rate: float = 1.5
    rate_spread: float = 0.8
    max_mean_rate: float = 0.0
    saturation_range: tuple[float, float] = (1.0, 4.0)
    baseline_fraction: float = 0.0
    observation: str = "counts"
    overdispersed_fraction: float = 0.5
    dispersion: float = 3.0
    zig_gate: float = 1.0
    zig_shape: float = 2.0
    norm_budget_fraction: float = 0.15

    def __post_init__(self):
        for name, lo in TWIN_MINIMUMS.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                why = " (the oracle correlation needs repeated test images)" if lo == 2 else ""
                raise ConfigError(f"{name} = {v!r}: expected an integer >= {lo}{why}")
        if len(tuple(self.shape)) != 2 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 8
            for v in self.shape
        ):
            raise ConfigError(f"shape = {self.shape!r}: expected (height, width), each >= 8")
        if isinstance(self.baseline_fraction, bool) or not 0 <= self.baseline_fraction < 1:
            raise ConfigError(
                f"baseline_fraction = {self.baseline_fraction!r}: expected a number in [0, 1)"
            )
        if isinstance(self.max_mean_rate, bool) or not self.max_mean_rate >= 0:
            raise ConfigError(
                f"max_mean_rate = {self.max_mean_rate!r}: expected a number >= 0 (0: no cap)"
            )
        for name in (
            "mean_rate",
            "dispersion",
            "zig_gate",
            "zig_shape",
            "norm_budget_fraction",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ConfigError(f"{name} = {v!r}: expected a number > 0")
        lo_hi = tuple(self.saturation_range)
        if len(lo_hi) != 2 or not 0 < lo_hi[0] <= lo_hi[1] < float("inf"):
            raise ConfigError(
                f"saturation_range = {self.saturation_range!r}: expected (low, high) with "
                "0 < low <= high"
            )
        if self.observation not in OBSERVATIONS:
            raise ConfigError(
                f"observation = {self.observation!r}: expected one of {list(OBSERVATIONS)}"
            )
        check_preset(self.preset)


#: the smallest value of each count of :class:`TwinConfig`
TWIN_MINIMUMS = {
    "n_neurons": 1,
    "n_train": 1,
    "n_validation": 1,
    "train_repeats": 1,
    "n_test": 1,
    "test_repeats": 2,
}


def draw_neurons(cfg: TwinConfig, rng: np.random.Generator) -> dict:
    """Draw kinds, Gabor parameters, thresholds, rates and noise of every neuron."""
    n = cfg.n_neurons
    h, w = cfg.shape
    frac = np.asarray(cfg.kind_fractions, float)
    counts = np.floor(frac / frac.sum() * n).astype(int)
    counts[0] += n - counts.sum()
    kind = rng.permutation(np.repeat(np.arange(len(KINDS)), counts))
    sigma = rng.uniform(0.07, 0.12, n) * h
    cycles = rng.uniform(0.45, 0.75, n)  # carrier cycles per envelope sigma
    k = kind
    return {
        "kind": k.astype(np.int32),
        "x0": rng.uniform(0.3 * w, 0.7 * w, n).astype(np.float32),
        "y0": rng.uniform(0.3 * h, 0.7 * h, n).astype(np.float32),
        "sigma": sigma.astype(np.float32),
        "theta": rng.uniform(0, np.pi, n).astype(np.float32),
        "sf": (cycles / sigma).astype(np.float32),
        "phase": rng.uniform(0, 2 * np.pi, n).astype(np.float32),
        "threshold": np.where(k == 1, rng.uniform(0.5, 1.5, n), rng.uniform(0.0, 0.5, n)).astype(
            np.float32
        ),
        "suppression": np.where(k == 2, rng.uniform(1.0, 3.0, n), 0.0).astype(np.float32),
        "target_rate": _capped(
            cfg.mean_rate * np.exp(cfg.rate_spread * rng.standard_normal(n)), cfg.max_mean_rate
        ).astype(np.float32),
        "baseline": rng.uniform(0.02, 0.2, n).astype(np.float32),
        "saturation": np.exp(
            rng.uniform(np.log(cfg.saturation_range[0]), np.log(cfg.saturation_range[1]), n)
        ).astype(np.float32),
        "dispersion": np.where(
            rng.random(n) < cfg.overdispersed_fraction,
            np.maximum(cfg.dispersion * np.exp(0.7 * rng.standard_normal(n)), 1.0),
            np.inf,
        ).astype(np.float32),
    }


def _capped(rates: np.ndarray, cap: float) -> np.ndarray:
    return np.minimum(rates, cap) if cap > 0 else rates


def _filters(p: dict, shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zero-mean unit-norm quadrature Gabors and a unit-sum surround annulus per neuron."""
    import jax

    args = [np.asarray(p[k]) for k in ("x0", "y0", "sigma", "theta", "sf", "phase")]
    make = jax.vmap(lambda x0, y0, s, th, f, ph: gabor(shape, x0, y0, s, th, f, ph))
    even = np.asarray(make(*args))
    x0, y0, sigma, theta, sf, phase = args
    odd = np.asarray(make(x0, y0, sigma, theta, sf, phase + np.pi / 2))

    def unit(a):
        a = a - a.mean(axis=(1, 2), keepdims=True)
        return a / np.linalg.norm(a.reshape(len(a), -1), axis=1)[:, None, None]

    yy, xx = np.mgrid[: shape[0], : shape[1]]
    r = np.sqrt((xx[None] - p["x0"][:, None, None]) ** 2 + (yy[None] - p["y0"][:, None, None]) ** 2)
    s = p["sigma"][:, None, None]
    ann = np.exp(-((r - 3.0 * s) ** 2) / (2 * s**2))
    ann = ann / ann.sum(axis=(1, 2), keepdims=True)
    ann = np.where((p["kind"] == 2)[:, None, None], ann, 0.0)
    return unit(even).astype(np.float32), unit(odd).astype(np.float32), ann.astype(np.float32)


def calibrate(p: dict, shape, images: np.ndarray, baseline_fraction: float = 0.0) -> dict:
    """Set drive and surround scales and gains so each neuron hits its target mean rate.

    The spontaneous rate (baseline) of a responsive neuron is at least ``baseline_fraction``
    and at most ``max(0.5, baseline_fraction)`` of its target rate."""
    p = dict(p)
    p["w_even"], p["w_odd"], p["w_surround"] = _filters(p, shape)
    n = len(p["kind"])
    c = contrast(images).reshape(len(images), -1)
    drive = c @ p["w_even"].reshape(n, -1).T
    p["drive_scale"] = np.maximum(drive.std(0), 1e-6).astype(np.float32)
    surround = (c**2) @ p["w_surround"].reshape(n, -1).T
    p["surround_scale"] = np.maximum(surround.mean(0), 1e-6).astype(np.float32)
    p["gain"] = np.ones(n, np.float32)
    p["c50"] = np.full(n, np.inf, np.float32)
    base = p["baseline"]
    p["baseline"] = np.zeros(n, np.float32)
    unsat = np.asarray(twin_rates(p, images))
    p["c50"] = np.maximum(p["saturation"] * np.quantile(unsat, 0.999, axis=0), 1e-6).astype(
        np.float32
    )
    raw = np.asarray(twin_rates(p, images))
    p["baseline"] = base
    mean_drive = np.maximum(raw.mean(0), 1e-9)
    # every responsive cell responds
    base = np.minimum(
        np.maximum(base, baseline_fraction * p["target_rate"]),
        max(0.5, baseline_fraction) * p["target_rate"],
    )
    gain = (p["target_rate"] - base) / mean_drive
    p["gain"] = np.where(p["kind"] == 3, 0.0, gain).astype(np.float32)
    p["baseline"] = np.where(p["kind"] == 3, p["target_rate"], base).astype(np.float32)
    return p


def twin_config(preset: str = "clean", **overrides) -> TwinConfig:
    """The :class:`TwinConfig` of a preset, with fields changed by ``overrides``.

    Args:
      preset: a name of :data:`jaxsel.data.TWIN_PRESETS` (``clean``, ``sensorium``,
        ``allen``; documented in :class:`TwinConfig` and docs/twin-presets.md).
      **overrides: fields of :class:`TwinConfig` applied on top of the preset.

    Raises:
      ConfigError: an unknown preset (naming the valid ones) or field.
    """
    import difflib
    from dataclasses import fields

    check_preset(preset)
    names = [f.name for f in fields(TwinConfig)]
    for key in overrides:
        if key not in names or key == "preset":
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close and key != "preset" else ""
            raise ConfigError(f"unknown TwinConfig field '{key}'{hint} (valid: {', '.join(names)})")
    return TwinConfig(**{**PRESETS[preset], **overrides, "preset": preset})


def _trial_images(cfg: TwinConfig, rng: np.random.Generator) -> np.ndarray:
    """(trial,) image ids: train and validation images ``train_repeats`` times each (shuffled
    within the tier when repeated), then the test images ``test_repeats`` times, shuffled."""
    n_tv = cfg.n_train + cfg.n_validation
    n_img = n_tv + cfg.n_test
    if cfg.train_repeats == 1:
        front = np.arange(n_tv)
    else:
        order = np.random.default_rng([cfg.train_repeats, n_tv, 7])
        train = np.repeat(np.arange(cfg.n_train), cfg.train_repeats)
        val = np.repeat(np.arange(cfg.n_train, n_tv), cfg.train_repeats)
        front = np.concatenate([order.permutation(train), order.permutation(val)])
    test = np.tile(np.arange(n_tv, n_img), cfg.test_repeats)
    return np.concatenate([front, test[rng.permutation(cfg.n_test * cfg.test_repeats)]])


def _draw_zig(cfg: TwinConfig, p: dict, seed: int) -> dict:
    """Per-neuron ZIG parameters (a stream of their own: the counts twin stays unchanged)."""
    zrng = np.random.default_rng([seed, 0x216])
    n = cfg.n_neurons
    gate = cfg.zig_gate * p["target_rate"] * np.exp(0.3 * zrng.standard_normal(n))
    shape = cfg.zig_shape * np.exp(0.3 * zrng.standard_normal(n))
    return {"zig_gate": gate.astype(np.float32), "zig_shape": shape.astype(np.float32)}


@overload
def simulate(
    seed: int | TwinConfig = 0,
    *,
    preset: str | None = None,
    cfg: TwinConfig | None = None,
    n_sessions: None = None,
    **overrides,
) -> tuple[xr.Dataset, Twin]: ...
@overload
def simulate(
    seed: int | TwinConfig = 0,
    *,
    preset: str | None = None,
    cfg: TwinConfig | None = None,
    n_sessions: int,
    **overrides,
) -> tuple[dict[str, xr.Dataset], dict[str, SessionTruth]]: ...
def simulate(
    seed: int | TwinConfig = 0,
    *,
    preset: str | None = None,
    cfg: TwinConfig | None = None,
    n_sessions: int | None = None,
    **overrides,
):
    """Simulate an experiment on the twin population.

    Args:
      seed: random seed; the same seed and config give identical data.
      preset: start from this preset of :data:`jaxsel.data.TWIN_PRESETS`: ``"clean"`` (the
        default), ``"sensorium"`` (calcium-like zero-inflated gamma responses, Sensorium 2022
        trial counts, single-trial reliability of recorded V1) or ``"allen"`` (Neuropixels
        spike counts, 118 images x 50 repeats); see :class:`TwinConfig`.
      cfg: a whole :class:`TwinConfig` instead of a preset.
      n_sessions: None for one session (below); an integer for that many sessions with
        behaviour and eye position (:func:`jaxsel.data.simulate_sessions`, which also
        takes ``shared_images`` and ``behavior``; spike-count observations only).
      **overrides: fields of :class:`TwinConfig` to change, e.g. ``n_neurons=50`` (applied
        on top of the preset or ``cfg``).

    Returns:
      ``(dataset, twin)``: the dataset in the canonical layout (spike counts or calcium-like
      responses, tiers, repeats) and the ground truth; the twin's rates are the conditional
      mean response ``E[response | image]`` under every preset. With ``n_sessions``,
      ``(sessions, truth)`` dicts by session id.

    Raises:
      ConfigError: an unknown preset or field, or both ``preset`` and ``cfg``.
    """
    from dataclasses import replace

    if isinstance(seed, TwinConfig):  # the former signature simulate(cfg, seed=...)
        cfg, seed = seed, 0
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"simulate: seed = {seed!r}: expected an integer")
    if cfg is not None and preset is not None:
        raise ConfigError("simulate: give preset or cfg, not both")
    session_opts = {k: overrides.pop(k) for k in ("shared_images", "behavior") if k in overrides}
    cfg = (
        replace(cfg, **overrides)
        if cfg is not None
        else twin_config(preset or "clean", **overrides)
    )
    if n_sessions is None and session_opts:
        raise ConfigError(f"simulate: {sorted(session_opts)} need n_sessions (e.g. n_sessions=4)")
    if n_sessions is not None:
        from jaxsel.data._twin_sessions import simulate_sessions

        if cfg.observation != "counts":
            raise ConfigError(
                f"simulate: observation = {cfg.observation!r} is not available with n_sessions "
                "yet; use a spike-count preset (clean or allen) for several sessions"
            )
        return simulate_sessions(cfg, seed=int(seed), n_sessions=n_sessions, **session_opts)
    return _simulate(cfg, int(seed))


def _simulate(cfg: TwinConfig, seed: int) -> tuple[xr.Dataset, Twin]:
    rng = np.random.default_rng(seed)
    n_img = cfg.n_train + cfg.n_validation + cfg.n_test
    images = natural_like(n_img, cfg.shape, seed=seed, kind=cfg.stimuli)
    p = calibrate(draw_neurons(cfg, rng), cfg.shape, images[: cfg.n_train], cfg.baseline_fraction)
    tier_of_image = np.repeat(
        ["train", "validation", "test"], [cfg.n_train, cfg.n_validation, cfg.n_test]
    )
    image_id = _trial_images(cfg, rng)
    params = dict(p)
    twin0 = Twin(params=params, neuron_id=np.arange(cfg.n_neurons), meta={})
    rates_img = twin0.rates(images)
    test_rates = rates_img[cfg.n_train + cfg.n_validation :]
    if cfg.observation == "zig":
        params.update(_draw_zig(cfg, p, seed))
        counts = sample_zig(rates_img[image_id], params["zig_gate"], params["zig_shape"], rng)
        noise = noise_variance(test_rates, params)
    else:
        counts = sample_responses(rates_img[image_id], p["dispersion"], rng)
        noise = None
    params.update(true_reliability(test_rates, p["dispersion"], cfg.test_repeats, noise))
    budget = norm_budget(contrast(images[: cfg.n_train]), cfg.norm_budget_fraction)
    meta = {
        "shape": list(cfg.shape),
        "seed": seed,
        "norm_budget": budget,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()},
    }
    twin = Twin(params=params, neuron_id=np.arange(cfg.n_neurons), meta=meta)
    xyz = np.stack(
        [
            12.0 * p["x0"] + rng.normal(0, 20, cfg.n_neurons),
            12.0 * p["y0"] + rng.normal(0, 20, cfg.n_neurons),
            rng.uniform(150, 350, cfg.n_neurons),
        ],
        axis=1,
    )
    ds = make_dataset(
        images[image_id],
        counts,
        image_id=image_id,
        tier=tier_of_image[image_id],
        neuron_id=twin.neuron_id,
        area=np.full(cfg.n_neurons, "V1"),
        cortex_xyz=xyz,
        name=f"twin_seed{seed}",
        source="digital twin",
        counts=True,  # spike counts or ZIG values: never negative
    )
    return ds, twin
