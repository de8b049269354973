"""The digital twin's ground truth: a V1 population whose mean response function is known.

Neuron kinds (all act on the contrast image ``c = (x - background) / scale`` of a raw grey
image ``x``; filters are zero-mean, unit-norm Gabors, drives are in units of their std over
natural images):

* ``simple``: ``r = b + g * rect(e - t)^1.5`` with ``e = <w_even, c>`` (linear filter,
  smooth expansive rectification);
* ``complex``: ``r = b + g * rect(e^2 + o^2 - t)`` with the quadrature pair ``(w_even, w_odd)``
  (energy model, phase invariant);
* ``suppressed``: a simple cell divided by the contrast energy in a surround annulus,
  ``r = b + g * rect(e - t)^1.5 / (1 + s * <w_surround, c^2>)``;
* ``unresponsive``: ``r = b`` for every image.

Every drive ``d`` above saturates as ``d / (1 + d / c50)`` (contrast saturation; ``c50`` per
neuron, ``inf`` for none) before the gain ``g`` multiplies it.

``rect(u) = softplus(4u) / 4`` is a smooth rectifier, so gradients never vanish exactly.
The response function is a pure JAX function of ``(params, images)`` (:func:`twin_rates`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from jaxsel.data._pixels import from_contrast, to_contrast
from jaxsel.data._truth_files import ascend_on_sphere, read_truth, save_truth

KINDS = ("simple", "complex", "suppressed", "unresponsive")
_FORMAT = 1
_FILTERS = ("w_even", "w_odd", "w_surround")


def _rect(u):
    return jax.nn.softplus(4.0 * u) / 4.0


def contrast(images):
    """Raw grey images (..., [1,] y, x) -> contrast images in about [-1, 1]."""
    return to_contrast(images)


def twin_rates(params: dict, images) -> jax.Array:
    """Noise-free mean response of every neuron to every image.

    Args:
      params: the twin's parameter dict (``Twin.params``); only the arrays used here are read.
      images: (batch, y, x) or (batch, 1, y, x) raw grey images (0..255 scale).

    Returns:
      (batch, neuron) rates in spikes per trial.
    """
    c = contrast(jnp.asarray(images, jnp.float32))
    c = c.reshape(c.shape[0], -1)
    n = params["w_even"].shape[0]
    we = params["w_even"].reshape(n, -1)
    wo = params["w_odd"].reshape(n, -1)
    ws = params["w_surround"].reshape(n, -1)
    e = c @ we.T / params["drive_scale"]
    o = c @ wo.T / params["drive_scale"]
    t = params["threshold"]
    kind = params["kind"]
    simple = _rect(e - t) ** 1.5
    complex_ = _rect(e**2 + o**2 - t)
    surround = (c**2) @ ws.T / params["surround_scale"]
    suppressed = simple / (1.0 + params["suppression"] * surround)
    drive = jnp.select(
        [kind == 0, kind == 1, kind == 2], [simple, complex_, suppressed], jnp.zeros_like(simple)
    )
    drive = drive / (1.0 + drive / params["c50"])
    return params["baseline"] + params["gain"] * drive


_rates_jit = jax.jit(twin_rates)


@dataclass(frozen=True)
class Twin:
    """A simulated population: parameters (per-neuron arrays) and metadata.

    Attributes:
      params: dict of arrays with a leading neuron axis; see :data:`PARAM_DOCS`.
      neuron_id: (neuron,) ids matching the dataset's ``neuron_id``.
      meta: image shape, seed, norm budget, true reliability inputs, ...
    """

    params: dict
    neuron_id: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.meta["shape"])

    @property
    def kinds(self) -> np.ndarray:
        """(neuron,) kind names."""
        return np.asarray(KINDS)[np.asarray(self.params["kind"])]

    def rates(self, images, batch_size: int = 1024) -> np.ndarray:
        """Noise-free rates (batch, neuron) for raw images, computed in chunks."""
        images = np.asarray(images, np.float32)
        p = {k: jnp.asarray(v) for k, v in self.params.items()}
        out = [
            np.asarray(_rates_jit(p, images[s : s + batch_size]))
            for s in range(0, len(images), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, len(self.neuron_id)), np.float32)

    def table(self) -> xr.Dataset:
        """Per-neuron parameters and true reliability as a labelled table."""
        data = {k: ("neuron", np.asarray(v)) for k, v in self.params.items() if k not in _FILTERS}
        data["kind_name"] = ("neuron", self.kinds)
        return xr.Dataset(data, coords={"neuron_id": ("neuron", self.neuron_id)})


def optimal_stimuli(twin: Twin, norm: float | None = None, *, steps: int = 300) -> np.ndarray:
    """Each neuron's true optimal contrast image under an L2-norm budget.

    Simple cells: the even filter scaled to ``norm``; complex cells: the top singular vector
    of the quadrature pair (any phase of it is optimal; this is one); suppressed cells:
    projected gradient ascent on the sphere ``|c| = norm`` from the even filter;
    unresponsive cells: zeros.

    Args:
      twin: the twin.
      norm: L2 norm of the contrast image (default ``twin.meta['norm_budget']``).
      steps: ascent steps for suppressed cells.

    Returns:
      (neuron, y, x) contrast images; multiply by ``SCALE`` and add ``BACKGROUND``
      (``jaxsel.data``) to get raw grey images (:func:`to_raw`).
    """
    norm = float(twin.meta["norm_budget"] if norm is None else norm)
    p = twin.params
    n = len(twin.neuron_id)
    we = np.asarray(p["w_even"]).reshape(n, -1)
    wo = np.asarray(p["w_odd"]).reshape(n, -1)
    kind = np.asarray(p["kind"])
    out = norm * we / np.linalg.norm(we, axis=1, keepdims=True)
    for i in np.flatnonzero(kind == 1):
        _, _, vt = np.linalg.svd(np.stack([we[i], wo[i]]), full_matrices=False)
        v = vt[0] * np.sign(vt[0] @ we[i] or 1.0)
        out[i] = norm * v
    sup = np.flatnonzero(kind == 2)
    if len(sup):
        out[sup] = _ascend_on_sphere(twin, sup, out[sup], norm, steps)
    out[kind == 3] = 0.0
    return out.reshape((n,) + twin.shape).astype(np.float32)


def to_raw(contrast_images):
    """Contrast images -> raw grey images (inverse of :func:`contrast`)."""
    return from_contrast(np.asarray(contrast_images))


def _ascend_on_sphere(
    twin: Twin, idx: np.ndarray, c0: np.ndarray, norm: float, steps: int
) -> np.ndarray:
    def drive(pi, c):
        pi1 = jax.tree.map(lambda a: a[None], pi)
        return twin_rates(pi1, from_contrast(c)[None])[0, 0]

    params = {k: np.asarray(v)[idx] for k, v in twin.params.items()}
    return ascend_on_sphere(drive, params, c0, norm, steps)


def save_twin(twin: Twin, path: str | Path) -> Path:
    """Write the ground truth to a folder: ``params.npz``, ``neurons.csv``, ``twin.json``."""
    header = {"format": _FORMAT, "kinds": KINDS}
    return save_truth(path, twin.params, twin.neuron_id, twin.table(), header, twin.meta)


def load_twin(path: str | Path) -> Twin:
    """Read a ground-truth folder written by :func:`save_twin`."""
    arrays, neuron_id, meta = read_truth(
        path, header={"format": _FORMAT}, writer="jaxsel simulate / save_twin"
    )
    return Twin(params=arrays, neuron_id=neuron_id, meta=meta)
