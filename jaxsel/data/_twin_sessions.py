"""Many animals on the digital twin: one population per session, behaviour and eye position.

:func:`simulate_sessions` (``simulate(n_sessions=S)``) draws every session's neurons from
the same cell-type distributions as :func:`jaxsel.data.simulate` (own neurons, own
cortical coordinates, own or shared images), simulates per-trial behaviour and pupil
centre (:func:`jaxsel.data.simulate_behavior`) and lets them modulate the rates
(:func:`jaxsel.data.session_rates`): a per-neuron gain from behaviour and one
receptive-field shift per trial from the eye position. The ground truth of each session
is a :class:`SessionTruth`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from jaxsel._errors import ConfigError
from jaxsel.data._behavior_sim import BehaviorConfig, simulate_behavior
from jaxsel.data._dataset import BEHAVIOR_VARS, make_dataset
from jaxsel.data._observation import sample_responses, true_reliability
from jaxsel.data._pixels import norm_budget
from jaxsel.data._stimuli import natural_like
from jaxsel.data._twin import Twin, contrast
from jaxsel.data._twin_modulation import session_modulation, session_rates
from jaxsel.data._twin_simulate import TwinConfig, calibrate, draw_neurons

_session_rates_jit = jax.jit(session_rates)
_modulation_jit = jax.jit(session_modulation)


@dataclass(frozen=True)
class SessionTruth:
    """Ground truth of one simulated session.

    Attributes:
      twin: the session's population at the mean behavioural state (gain 1, no shift);
        its rates, :func:`jaxsel.data.optimal_stimuli` and true reliability
        (``true_fev``, ``true_oracle``) are those of that state.
      modulation: arrays ``coupling`` (neuron, 3) log-gain per standard deviation of
        (pupil, dpupil, running), ``behavior_mean`` / ``behavior_std`` (3,) (the session's
        behaviour statistics that define z), ``shift_matrix`` (2, 2) and ``shift_offset``
        (2,): RF shift in image pixels = ``shift_matrix @ pupil_center + shift_offset``.
      trials: per-trial truth in the dataset's trial order: ``gain`` (trial, neuron),
        ``rf_shift`` (trial, xy) in image pixels and noise-free ``rates`` (trial, neuron).
    """

    twin: Twin
    modulation: dict
    trials: xr.Dataset

    @property
    def params(self) -> dict:
        """The twin's parameters and the modulation arrays: the ``params`` argument of
        :func:`jaxsel.data.session_rates`."""
        return {**self.twin.params, **self.modulation}

    def mean_state(self) -> tuple[np.ndarray, np.ndarray]:
        """``(behavior, pupil_center)`` of the mean state: gain 1 and zero RF shift."""
        a = np.asarray(self.modulation["shift_matrix"], np.float64)
        b = np.asarray(self.modulation["shift_offset"], np.float64)
        eye = np.linalg.solve(a, -b) if abs(np.linalg.det(a)) > 1e-12 else np.zeros(2)
        return (
            np.asarray(self.modulation["behavior_mean"], np.float32),
            eye.astype(np.float32),
        )

    def rates(self, images, behavior, pupil_center, batch_size: int = 1024) -> np.ndarray:
        """Noise-free rates (batch, neuron) for raw images under behaviour and eye position."""
        images = np.asarray(images, np.float32)
        behavior = np.asarray(behavior, np.float32)
        pupil_center = np.asarray(pupil_center, np.float32)
        p = {k: jnp.asarray(v) for k, v in self.params.items()}
        out = [
            np.asarray(
                _session_rates_jit(
                    p,
                    images[s : s + batch_size],
                    behavior[s : s + batch_size],
                    pupil_center[s : s + batch_size],
                )
            )
            for s in range(0, len(images), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, len(self.twin.neuron_id)), np.float32)

    def table(self) -> xr.Dataset:
        """Per-neuron parameters, true reliability and couplings as a labelled table."""
        t = self.twin.table()
        return t.assign(
            coupling=(
                ("neuron", "behavior_var"),
                np.asarray(self.modulation["coupling"]),
            )
        ).assign_coords(behavior_var=list(BEHAVIOR_VARS))


def session_ids(seed: int, n_sessions: int) -> list[str]:
    """The ids :func:`simulate_sessions` gives its sessions."""
    return [f"twin_seed{seed}_session{s}" for s in range(n_sessions)]


def _design(cfg: TwinConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Trials' image ids (train, validation once; test repeated, shuffled) and tiers."""
    n_once = cfg.n_train + cfg.n_validation
    n_img = n_once + cfg.n_test
    test = np.tile(np.arange(n_once, n_img), cfg.test_repeats)
    image_id = np.concatenate([np.arange(n_once), test[rng.permutation(len(test))]])
    tier_of_image = np.repeat(
        ["train", "validation", "test"], [cfg.n_train, cfg.n_validation, cfg.n_test]
    )
    return image_id, tier_of_image[image_id]


def _draw_modulation(
    n: int, bcfg: BehaviorConfig, behavior: np.ndarray, eye: np.ndarray, rng
) -> dict:
    coupling = np.asarray(bcfg.coupling_mean)[None] + np.asarray(bcfg.coupling_std)[
        None
    ] * rng.standard_normal((n, 3))
    angle = rng.uniform(-0.4, 0.4)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    mirror = np.diag([rng.choice([-1.0, 1.0]), 1.0])  # eye cameras may be mirrored
    stretch = np.diag(np.exp(rng.normal(0.0, 0.1, 2)))
    a = bcfg.shift_per_eye * rot @ stretch @ mirror
    return {
        "coupling": coupling.astype(np.float32),
        "behavior_mean": behavior.mean(0).astype(np.float32),
        "behavior_std": np.maximum(behavior.std(0), 1e-6).astype(np.float32),
        "shift_matrix": a.astype(np.float32),
        "shift_offset": (-a @ eye.mean(0)).astype(np.float32),
    }


def _one_session(
    cfg, bcfg, images, rng, sid: str, meta: dict, id_offset: int
) -> tuple[xr.Dataset, SessionTruth]:
    p = calibrate(draw_neurons(cfg, rng), cfg.shape, images[: cfg.n_train], cfg.baseline_fraction)
    index, tier = _design(cfg, rng)  # index into this session's images
    image_id = index + id_offset
    n_trial = len(index)
    trial_idx = rng.permutation(n_trial)  # presentation order: tiers interleave in time
    sim = simulate_behavior(rng, n_trial, bcfg)
    behavior, eye = sim["behavior"][trial_idx], sim["pupil_center"][trial_idx]
    mod = _draw_modulation(cfg.n_neurons, bcfg, behavior, eye, rng)
    params = dict(p)
    neuron_id = np.arange(cfg.n_neurons)
    n_once = cfg.n_train + cfg.n_validation
    rates_mean = Twin(params=params, neuron_id=neuron_id).rates(images[n_once:])
    params.update(true_reliability(rates_mean, p["dispersion"], cfg.test_repeats))
    twin = Twin(params=params, neuron_id=neuron_id, meta={**meta, "session": sid})
    truth0 = SessionTruth(twin=twin, modulation=mod, trials=xr.Dataset())
    rates = truth0.rates(images[index], behavior, eye)
    gain, shift = _modulation_jit({k: jnp.asarray(v) for k, v in mod.items()}, behavior, eye)
    counts = sample_responses(rates, p["dispersion"], rng)
    offset = rng.uniform(-300.0, 300.0, 2)  # each animal's own cortical coordinate origin
    xyz = np.stack(
        [
            12.0 * p["x0"] + rng.normal(0, 20, cfg.n_neurons) + offset[0],
            12.0 * p["y0"] + rng.normal(0, 20, cfg.n_neurons) + offset[1],
            rng.uniform(150, 350, cfg.n_neurons),
        ],
        axis=1,
    )
    ds = make_dataset(
        images[index],
        counts,
        image_id=image_id,
        tier=tier,
        neuron_id=neuron_id,
        area=np.full(cfg.n_neurons, "V1"),
        cortex_xyz=xyz,
        name=sid,
        source="digital twin",
        counts=True,
    )
    ds = ds.assign(
        behavior=xr.DataArray(
            behavior,
            dims=("trial", "behavior_var"),
            coords={"behavior_var": list(BEHAVIOR_VARS)},
            attrs={"description": "pupil dilation, its derivative, running speed"},
        ),
        pupil_center=xr.DataArray(eye, dims=("trial", "xy"), coords={"xy": ["x", "y"]}),
        trial_idx=xr.DataArray(trial_idx.astype(np.int64), dims=("trial",)),
    )
    trials = xr.Dataset(
        {
            "gain": (("trial", "neuron"), np.asarray(gain, np.float32)),
            "rf_shift": (("trial", "xy"), np.asarray(shift, np.float32), {"units": "pixels"}),
            "rates": (("trial", "neuron"), rates, {"units": "spikes per trial"}),
        },
        coords={
            "xy": ["x", "y"],
            "image_id": ("trial", image_id),
            "neuron_id": ("neuron", neuron_id),
        },
    )
    return ds, replace(truth0, trials=trials)


def simulate_sessions(
    cfg: TwinConfig | None = None,
    *,
    seed: int = 0,
    n_sessions: int = 2,
    shared_images: bool = False,
    behavior: BehaviorConfig | None = None,
    **overrides,
) -> tuple[dict[str, xr.Dataset], dict[str, SessionTruth]]:
    """Simulate several recording sessions (animals) on the twin, with behaviour.

    Args:
      cfg: a :class:`jaxsel.data.TwinConfig` for every session (defaults if None).
      seed: random seed; the same arguments give identical data.
      n_sessions: number of sessions (>= 1).
      shared_images: show every session the same images (same ``image_id``); otherwise
        each session draws its own (ids offset by ``session * n_images``, so an id names
        one image across sessions).
      behavior: a :class:`jaxsel.data.BehaviorConfig` (defaults if None).
      **overrides: fields of :class:`jaxsel.data.TwinConfig`.

    Returns:
      ``(sessions, truth)``: session id -> dataset (with ``behavior``, ``pupil_center``
      and ``trial_idx``; a valid multi-session dataset) and session id ->
      :class:`SessionTruth`; ids are :func:`session_ids`.
    """
    if isinstance(n_sessions, bool) or not isinstance(n_sessions, (int, np.integer)):
        raise ConfigError(f"n_sessions = {n_sessions!r}: expected an integer >= 1")
    if n_sessions < 1:
        raise ConfigError(f"n_sessions = {n_sessions!r}: expected an integer >= 1")
    cfg = replace(cfg or TwinConfig(), **overrides)
    bcfg = behavior or BehaviorConfig()
    n_img = cfg.n_train + cfg.n_validation + cfg.n_test
    shared = natural_like(n_img, cfg.shape, seed=seed, kind=cfg.stimuli) if shared_images else None
    sessions: dict[str, xr.Dataset] = {}
    truth: dict[str, SessionTruth] = {}
    for s, sid in enumerate(session_ids(seed, int(n_sessions))):
        seq = np.random.SeedSequence([seed, s])
        rng = np.random.default_rng(seq)
        if shared is None:
            img_seed = int(seq.generate_state(1)[0] % (2**31 - 8))
            images = natural_like(n_img, cfg.shape, seed=img_seed, kind=cfg.stimuli)
        else:
            images = shared
        meta = {
            "shape": list(cfg.shape),
            "seed": seed,
            "norm_budget": norm_budget(contrast(images[: cfg.n_train]), cfg.norm_budget_fraction),
            "config": {
                k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()
            },
            "behavior_config": {
                k: (list(v) if isinstance(v, tuple) else v) for k, v in bcfg.__dict__.items()
            },
            "shared_images": bool(shared_images),
        }
        offset = 0 if shared_images else s * n_img
        sessions[sid], truth[sid] = _one_session(cfg, bcfg, images, rng, sid, meta, offset)
    return sessions, truth
