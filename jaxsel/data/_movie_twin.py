"""The dynamic digital twin's ground truth: V1 neurons with spatiotemporal receptive fields.

Every neuron has a spatial quadrature pair of zero-mean, unit-norm Gabors ``(w_even, w_odd)``
(the static twin's, :func:`jaxsel.data.gabor`) and a temporal quadrature pair over the last
``K`` frames (``tau = 0`` is the current frame; the filters are CAUSAL, before the movie the
screen is grey)::

    k_even(tau) = G(tau) cos(2 pi tf (tau - tau_peak)),  k_odd(tau) = G(tau) sin(...)
    G(tau) = ((tau + 1) / tau0)^2 exp(-(tau + 1) / tau0)       (peak at tau_peak)

so ``k_even`` is a biphasic kernel. With ``P_s(t) = <w_s, c(t)>`` the contrast frame
``c = (x - BACKGROUND) / SCALE`` projected on a spatial filter and ``*`` causal filtering
over time, the space-time filters are

* ``S = w_even k_even`` (space-time SEPARABLE: no direction preference),
* ``A = w_even k_even + m w_odd k_odd`` and ``B = w_odd k_even - m w_even k_odd`` with
  ``m = direction_weight`` in (0, 1] (space-time ORIENTED quadrature pair; for ``m = 1``,
  ``A ~ E G cos(2 pi (sf u + tf tau) + phase)``: tuned to motion along ``theta`` at
  ``tf / sf`` pixels per frame; a smaller ``m`` mixes in the separable filter and lowers
  the direction selectivity).

Kinds (drives in units of their std over natural-like training movies):

* ``simple``: ``rect(S - t)^1.5`` (separable, biphasic in time);
* ``direction``: ``rect(A - t)^1.5`` (direction-selective simple cell);
* ``motion_energy``: ``rect(A^2 + B^2 - t)`` (direction-selective complex cell, phase
  invariant: Adelson-Bergen motion energy);
* ``suppressed``: a ``simple`` drive divided by ``1 + s * (h * <w_surround, c^2>)``, the
  surround's contrast energy low-passed in time by ``h``;
* ``unresponsive``: ``r = b``.

As in the static twin, a drive ``d`` saturates as ``d / (1 + d / c50)``, and the rate per
frame is ``r(t) = b + g * m(t) * d(t)`` with the behavioural gain
``m(t) = exp(sum_j beta_j * behavior_j(t))`` (1 without behaviour). :func:`movie_rates` is
a pure, jittable JAX function of ``(params, videos[, behavior])``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from jaxsel.data._pixels import to_contrast
from jaxsel.data._truth_files import ascend_on_sphere, read_truth, save_truth

MOVIE_KINDS = ("simple", "direction", "motion_energy", "suppressed", "unresponsive")
"""Names of the dynamic twin's neuron kinds, indexed by ``params["kind"]``."""
_FILTERS = ("w_even", "w_odd", "w_surround", "k_even", "k_odd", "k_surround", "beta")
_FORMAT = 1


def _rect(u):
    return jax.nn.softplus(4.0 * u) / 4.0


def causal_filter(p, k):
    """``out[b, t, n] = sum_tau k[n, tau] * p[b, t - tau, n]`` with ``p = 0`` before t = 0.

    One grouped 1-D convolution (a channel per neuron) over the left-padded time axis.
    """
    K = k.shape[1]
    x = jnp.pad(jnp.swapaxes(p, 1, 2), ((0, 0), (0, 0), (K - 1, 0)))  # (batch, neuron, T+K-1)
    w = jnp.asarray(k, p.dtype)[:, None, ::-1]  # (neuron, 1, K), flipped: conv correlates
    out = jax.lax.conv_general_dilated(
        x,
        w,
        (1,),
        "VALID",
        dimension_numbers=("NCH", "OIH", "NCH"),
        feature_group_count=p.shape[2],
    )
    return jnp.swapaxes(out, 1, 2)


def _frames(videos) -> jax.Array:
    v = jnp.asarray(videos, jnp.float32)
    if v.ndim == 5:
        v = v[:, 0]
    return to_contrast(v).reshape(v.shape[0], v.shape[1], -1)


def linear_drives(params: dict, videos) -> dict:
    """The causally filtered projections (batch, time, neuron) every kind is built from."""
    c = _frames(videos)
    n = params["w_even"].shape[0]
    we = params["w_even"].reshape(n, -1)
    wo = params["w_odd"].reshape(n, -1)
    pe, po = c @ we.T, c @ wo.T
    ke = params["k_even"]
    ko = params["k_odd"] * params["direction_weight"][:, None]
    ds = params["drive_scale"]
    surround = causal_filter((c**2) @ params["w_surround"].reshape(n, -1).T, params["k_surround"])
    return {
        "separable": causal_filter(pe, ke) / ds,
        "a": (causal_filter(pe, ke) + causal_filter(po, ko)) / ds,
        "b": (causal_filter(po, ke) - causal_filter(pe, ko)) / ds,
        "surround": surround / params["surround_scale"],
    }


def movie_rates(params: dict, videos, behavior=None) -> jax.Array:
    """Noise-free rate of every neuron at every frame.

    Args:
      params: the twin's parameters (``MovieTwin.params``).
      videos: (batch, time, y, x) or (batch, 1, time, y, x) raw movies (0..255 scale).
      behavior: optional (batch, time, n_behavior) traces (z-scored) for the gain.

    Returns:
      (batch, time, neuron) rates in spikes per frame; the rate at frame ``t`` depends on
      frames ``t - K + 1 .. t`` only (causal).
    """
    d = linear_drives(params, videos)
    t, kind = params["threshold"], params["kind"]
    simple = _rect(d["separable"] - t) ** 1.5
    direction = _rect(d["a"] - t) ** 1.5
    energy = _rect(d["a"] ** 2 + d["b"] ** 2 - t)
    suppressed = simple / (1.0 + params["suppression"] * d["surround"])
    drive = jnp.select(
        [kind == 0, kind == 1, kind == 2, kind == 3],
        [simple, direction, energy, suppressed],
        jnp.zeros_like(simple),
    )
    drive = drive / (1.0 + drive / params["c50"])
    gain = params["gain"]
    if behavior is not None:
        gain = gain * jnp.exp(jnp.asarray(behavior, jnp.float32) @ params["beta"].T)
    return params["baseline"] + gain * drive


_rates_jit = jax.jit(movie_rates)


@dataclass(frozen=True)
class MovieTwin:
    """A simulated population with spatiotemporal receptive fields.

    Attributes:
      params: per-neuron arrays (leading neuron axis): filters, kinds, scales, and the truth
        (``pref_direction``, ``pref_speed``, ``pref_tf``, ``sf``, ``true_dsi``, ``true_osi``).
      neuron_id: (neuron,) ids matching the dataset's ``neuron_id``.
      meta: frame shape, frame rate, kernel length, seed, norm budget, config.
    """

    params: dict
    neuron_id: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        """Frame (height, width)."""
        h, w = self.meta["shape"]
        return (int(h), int(w))

    @property
    def kinds(self) -> np.ndarray:
        """(neuron,) kind names."""
        return np.asarray(MOVIE_KINDS)[np.asarray(self.params["kind"])]

    def rates(self, videos, behavior=None, batch_size: int = 16) -> np.ndarray:
        """Noise-free rates (trial, time, neuron) for raw movies (trial, [1,] time, y, x),
        in chunks of ``batch_size`` trials (the last chunk is padded: one compile per
        movie shape)."""
        v = np.asarray(videos, np.float32)
        n = len(v)
        if n == 0:
            return np.zeros((0, v.shape[-3], len(self.neuron_id)), np.float32)
        bs = min(int(batch_size), n)
        p = {k: jnp.asarray(a) for k, a in self.params.items()}
        out = []
        for s in range(0, n, bs):
            vb = v[s : s + bs]
            b = None if behavior is None else np.asarray(behavior[s : s + bs], np.float32)
            m = len(vb)
            if m < bs:  # pad the last chunk to the compiled batch size
                vb = np.concatenate([vb, np.repeat(vb[-1:], bs - m, 0)])
                b = None if b is None else np.concatenate([b, np.repeat(b[-1:], bs - m, 0)])
            out.append(np.asarray(_rates_jit(p, vb, b))[:m])
        return np.concatenate(out)

    def table(self) -> xr.Dataset:
        """Per-neuron scalars (kind, tuning, truth) as a labelled table."""
        data = {
            k: ("neuron", np.asarray(v))
            for k, v in self.params.items()
            if k not in _FILTERS and np.ndim(v) == 1
        }
        data["kind_name"] = ("neuron", self.kinds)
        return xr.Dataset(data, coords={"neuron_id": ("neuron", self.neuron_id)})


def space_time_filters(twin: MovieTwin) -> tuple[np.ndarray, np.ndarray]:
    """The linear space-time filters ``(F, B)``, each (neuron, K, y, x), in contrast units
    per drive unit: ``F`` is ``S`` for simple/suppressed cells and ``A`` otherwise; ``B`` is
    the quadrature partner of ``A``. Lag ``tau`` multiplies the frame ``tau`` frames back."""
    p = {k: np.asarray(v, np.float64) for k, v in twin.params.items()}
    we, wo = p["w_even"][:, None], p["w_odd"][:, None]
    ke = p["k_even"][:, :, None, None]
    ko = (p["k_odd"] * p["direction_weight"][:, None])[:, :, None, None]
    kind = np.asarray(twin.params["kind"])
    sep = (kind == 0) | (kind == 3)
    f = np.where(sep[:, None, None, None], we * ke, we * ke + wo * ko)
    b = wo * ke - we * ko
    return f, b


def optimal_movies(
    twin: MovieTwin, n_frames: int | None = None, norm: float | None = None, *, steps: int = 200
) -> np.ndarray:
    """Each neuron's true optimal movie: the clip that maximises its rate at the LAST frame
    under an L2 budget on the whole clip (contrast units).

    Closed forms: a linear drive (``simple``, ``direction``) is maximised by its space-time
    filter played backwards in time into the clip's last ``K`` frames (grey before), scaled
    to the budget; a ``motion_energy`` cell by the top right singular vector of its
    quadrature pair ``[A; B]`` (any quadrature phase is equally optimal: a Gabor-windowed
    grating drifting in the preferred direction for ``K`` frames). ``suppressed`` cells:
    projected gradient ascent on the sphere from the separable solution.
    ``unresponsive``: grey (zeros).

    Args:
      twin: the twin.
      n_frames: clip length (default the kernel length ``K``); lags beyond it are cut.
      norm: the clip's L2 norm (default ``twin.meta["norm_budget"]``, defined for K-frame
        clips).
      steps: ascent steps for suppressed cells.

    Returns:
      (neuron, n_frames, y, x) float32 contrast movies (``from_contrast`` gives raw ones).
    """
    K = int(twin.meta["kernel_frames"])
    T = K if n_frames is None else int(n_frames)
    norm = float(twin.meta["norm_budget"] if norm is None else norm)
    f, b = space_time_filters(twin)
    L = min(K, T)
    n = len(twin.neuron_id)
    kind = np.asarray(twin.params["kind"])
    out = np.zeros((n, T) + twin.shape)
    # frame T-1-tau of the clip meets lag tau of the filter
    flip = lambda a: a[:, :L][:, ::-1]  # noqa: E731
    lin = flip(f).reshape(n, -1)
    best = norm * lin / np.maximum(np.linalg.norm(lin, axis=1, keepdims=True), 1e-12)
    for i in np.flatnonzero(kind == 2):
        m = np.stack([flip(f)[i].ravel(), flip(b)[i].ravel()])
        v = np.linalg.svd(m, full_matrices=False)[2][0]
        best[i] = norm * v * np.sign(v @ m[0] or 1.0)
    out[:, T - L :] = best.reshape((n, L) + twin.shape)
    sup = np.flatnonzero(kind == 3)
    if len(sup):
        out[sup] = _ascend(twin, sup, out[sup], norm, steps)
    out[kind == 4] = 0.0
    return out.astype(np.float32)


def _ascend(twin: MovieTwin, idx: np.ndarray, c0: np.ndarray, norm: float, steps: int):
    from jaxsel.data._pixels import from_contrast

    def drive(pi, c):
        pi1 = jax.tree.map(lambda a: a[None], pi)
        return movie_rates(pi1, from_contrast(c)[None])[0, -1, 0]

    params = {k: np.asarray(v)[idx] for k, v in twin.params.items()}
    return ascend_on_sphere(drive, params, c0, norm, steps)


def save_movie_twin(twin: MovieTwin, path: str | Path) -> Path:
    """Write the ground truth to a folder: ``params.npz``, ``neurons.csv``, ``twin.json``."""
    header = {"format": _FORMAT, "kinds": MOVIE_KINDS, "twin": "movies"}
    return save_truth(path, twin.params, twin.neuron_id, twin.table(), header, twin.meta)


def load_movie_twin(path: str | Path) -> MovieTwin:
    """Read a folder written by :func:`save_movie_twin`."""
    arrays, neuron_id, meta = read_truth(
        path,
        header={"format": _FORMAT, "twin": "movies"},
        writer="jaxsel.data.save_movie_twin",
    )
    return MovieTwin(params=arrays, neuron_id=neuron_id, meta=meta)
