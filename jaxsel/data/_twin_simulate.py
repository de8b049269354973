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
from jaxsel.data._pixels import norm_budget
from jaxsel.data._stimuli import gabor, natural_like
from jaxsel.data._twin import KINDS, Twin, contrast, twin_rates

if TYPE_CHECKING:
    from jaxsel.data._twin_sessions import SessionTruth


@dataclass(frozen=True)
class TwinConfig:
    """How the population and the experiment are drawn (every field has a default).

    Attributes:
      n_neurons: neurons in the population.
      shape: image (height, width) in pixels.
      n_train, n_validation: images shown once each in those tiers.
      n_test, test_repeats: test images and how often each is shown.
      kind_fractions: fractions of simple, complex, suppressed and unresponsive cells.
      stimuli: ``"dead_leaves"``, ``"pink"`` or ``"mix"``.
      mean_rate: median of the per-neuron mean rate (spikes per trial, log-normal spread
        ``rate_spread``).
      overdispersed_fraction: neurons with gamma-Poisson noise (shape ~ log-normal around
        ``dispersion``); the rest are Poisson.
      norm_budget_fraction: the default MEI/optimal-stimulus L2 budget, as a fraction of the
        median contrast norm of the natural-like images.
    """

    n_neurons: int = 300
    shape: tuple[int, int] = (36, 64)
    n_train: int = 4000
    n_validation: int = 500
    n_test: int = 100
    test_repeats: int = 10
    kind_fractions: tuple[float, float, float, float] = (0.4, 0.35, 0.15, 0.1)
    stimuli: str = "dead_leaves"
    mean_rate: float = 1.5
    rate_spread: float = 0.8
    overdispersed_fraction: float = 0.5
    dispersion: float = 3.0
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
        for name in ("mean_rate", "dispersion", "norm_budget_fraction"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ConfigError(f"{name} = {v!r}: expected a number > 0")


#: the smallest value of each count of :class:`TwinConfig`
TWIN_MINIMUMS = {
    "n_neurons": 1,
    "n_train": 1,
    "n_validation": 1,
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
        "target_rate": (cfg.mean_rate * np.exp(cfg.rate_spread * rng.standard_normal(n))).astype(
            np.float32
        ),
        "baseline": rng.uniform(0.02, 0.2, n).astype(np.float32),
        "saturation": np.exp(rng.uniform(np.log(1.0), np.log(4.0), n)).astype(np.float32),
        "dispersion": np.where(
            rng.random(n) < cfg.overdispersed_fraction,
            np.maximum(cfg.dispersion * np.exp(0.7 * rng.standard_normal(n)), 1.0),
            np.inf,
        ).astype(np.float32),
    }


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


def calibrate(p: dict, shape, images: np.ndarray) -> dict:
    """Set drive and surround scales and gains so each neuron hits its target mean rate."""
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
    base = np.minimum(base, 0.5 * p["target_rate"])  # every responsive cell responds
    gain = (p["target_rate"] - base) / mean_drive
    p["gain"] = np.where(p["kind"] == 3, 0.0, gain).astype(np.float32)
    p["baseline"] = np.where(p["kind"] == 3, p["target_rate"], base).astype(np.float32)
    return p


def true_reliability(rates: np.ndarray, dispersion: np.ndarray, repeats: int) -> dict:
    """Explainable-variance fraction and expected oracle correlation from true test rates.

    Args:
      rates: (image, neuron) noise-free rates on the test images.
      dispersion: (neuron,) gamma shape (inf for Poisson); noise var = r + r^2 / shape.
      repeats: repeats per test image (for the expected jackknife oracle).
    """
    signal = rates.var(0)
    noise = (rates + rates**2 / dispersion[None]).mean(0)
    fev = signal / np.maximum(signal + noise, 1e-12)
    m = max(repeats - 1, 1)
    oracle = signal / np.sqrt(np.maximum((signal + noise) * (signal + noise / m), 1e-24))
    return {"true_fev": fev.astype(np.float32), "true_oracle": oracle.astype(np.float32)}


def sample_responses(
    rates: np.ndarray, dispersion: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Spike counts: Poisson, or gamma-Poisson (negative binomial) where dispersion is finite."""
    finite = np.isfinite(dispersion)
    shape = np.where(finite, dispersion, 1.0)[None]
    lam = np.where(finite[None], rng.gamma(shape, rates / shape), rates)
    return rng.poisson(lam).astype(np.float32)


@overload
def simulate(
    cfg: TwinConfig | None = None, *, seed: int = 0, n_sessions: None = None, **overrides
) -> tuple[xr.Dataset, Twin]: ...
@overload
def simulate(
    cfg: TwinConfig | None = None, *, seed: int = 0, n_sessions: int, **overrides
) -> tuple[dict[str, xr.Dataset], dict[str, SessionTruth]]: ...
def simulate(cfg: TwinConfig | None = None, *, seed: int = 0, n_sessions=None, **overrides):
    """Simulate an experiment on the twin population.

    Args:
      cfg: a :class:`TwinConfig` (defaults if None).
      seed: random seed; the same seed and config give identical data.
      n_sessions: None for one session (below); an integer for that many sessions with
        behaviour and eye position (:func:`jaxsel.data.simulate_sessions`, which also
        takes ``shared_images`` and ``behavior``).
      **overrides: fields of :class:`TwinConfig` to change, e.g. ``n_neurons=50``.

    Returns:
      ``(dataset, twin)``: the dataset in the canonical layout (spike counts, tiers, repeats)
      and the ground truth; with ``n_sessions``, ``(sessions, truth)`` dicts by session id.
    """
    from dataclasses import replace

    if n_sessions is not None:
        from jaxsel.data._twin_sessions import simulate_sessions

        return simulate_sessions(cfg, seed=seed, n_sessions=n_sessions, **overrides)
    cfg = replace(cfg or TwinConfig(), **overrides)
    rng = np.random.default_rng(seed)
    n_img = cfg.n_train + cfg.n_validation + cfg.n_test
    images = natural_like(n_img, cfg.shape, seed=seed, kind=cfg.stimuli)
    p = calibrate(draw_neurons(cfg, rng), cfg.shape, images[: cfg.n_train])
    tier_of_image = np.repeat(
        ["train", "validation", "test"], [cfg.n_train, cfg.n_validation, cfg.n_test]
    )
    image_id = np.concatenate(
        [
            np.arange(cfg.n_train + cfg.n_validation),
            np.tile(np.arange(cfg.n_train + cfg.n_validation, n_img), cfg.test_repeats),
        ]
    )
    test_order = rng.permutation(cfg.n_test * cfg.test_repeats)
    image_id[cfg.n_train + cfg.n_validation :] = image_id[cfg.n_train + cfg.n_validation :][
        test_order
    ]
    params = dict(p)
    twin0 = Twin(params=params, neuron_id=np.arange(cfg.n_neurons), meta={})
    rates_img = twin0.rates(images)
    counts = sample_responses(rates_img[image_id], p["dispersion"], rng)
    params.update(
        true_reliability(
            rates_img[cfg.n_train + cfg.n_validation :], p["dispersion"], cfg.test_repeats
        )
    )
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
        counts=True,
    )
    return ds, twin
