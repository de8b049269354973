"""MEI-vs-truth scores on the digital twin.

All comparisons happen at one L2 budget of the CONTRAST image (``twin.meta['norm_budget']``
by default): an MEI (raw grey image) is turned into its contrast image, its mean removed,
and scaled to the budget before it is shown to the true neuron.

Scores per neuron:
  * ``pearson_r``: Pearson r between the MEI and the true optimal stimulus
    (:func:`jaxsel.data.optimal_stimuli`; meaningful for simple and suppressed cells);
  * ``phase_match``: the norm of the projection of the unit (centred) MEI onto the span of the
    unit quadrature pair ``w_even, w_odd`` (max over phase; 1 = perfect, for complex cells);
  * ``frac_true_max``: true rate to the MEI / true rate to the optimal stimulus, same budget;
  * ``natural_ratio``: true rate to the MEI / the highest true rate over natural images
    (e.g. the test images, shown as they are).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import xarray as xr

from jaxsel._errors import ConfigError
from jaxsel.data import Twin, contrast, optimal_stimuli, to_raw, twin_rates


def twin_fn(params, images):
    """The twin's noise-free rates as a model ``fn(params, raw images) -> (batch, neuron)``."""
    return twin_rates(params, images)


def twin_model(twin: Twin, neurons=None) -> tuple:
    """``(fn, params)`` of the twin's ground truth, optionally restricted to some neurons.

    ``fn`` is a module-level function, so repeated calls reuse compiled programs.
    """
    p = (
        twin.params
        if neurons is None
        else {k: np.asarray(v)[np.asarray(neurons)] for k, v in twin.params.items()}
    )
    return twin_fn, {k: jnp.asarray(v) for k, v in p.items()}


def mei_images(meis) -> np.ndarray:
    """(neuron, [seed,] [channel,] y, x) raw MEIs from a result Dataset or an array.

    A result of :func:`jaxsel.insilico.optimize_meis` with several seeds is reduced to
    the seed with the highest model activation.
    """
    if isinstance(meis, xr.Dataset):
        from jaxsel.insilico._mei import best_seed

        if "seed" in meis.dims:
            meis = best_seed(meis)
        meis = meis["mei"]
    a = np.asarray(meis, np.float32)
    if a.ndim == 4:
        if a.shape[1] != 1:
            raise ConfigError(f"MEIs have shape {a.shape}; the twin takes one channel")
        a = a[:, 0]
    if a.ndim != 3:
        raise ConfigError(f"MEIs have shape {a.shape}; expected (neuron, [1,] y, x)")
    return a


def at_budget(raw, norm: float) -> np.ndarray:
    """Raw images -> centred contrast images with L2 norm ``norm`` (per image)."""
    c = contrast(np.asarray(raw, np.float64))
    c = c - c.mean(axis=(-2, -1), keepdims=True)
    n = np.sqrt((c**2).sum(axis=(-2, -1), keepdims=True))
    return (norm * c / np.maximum(n, 1e-12)).astype(np.float32)


def _unit(a):
    a = a.reshape(len(a), -1).astype(np.float64)
    a = a - a.mean(1, keepdims=True)
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


def phase_match(images, w_even, w_odd) -> np.ndarray:
    """Norm of the projection of each unit, centred image onto span(w_even, w_odd)."""
    x = _unit(np.asarray(images))
    out = np.empty(len(x))
    we = np.asarray(w_even).reshape(len(x), -1)
    wo = np.asarray(w_odd).reshape(len(x), -1)
    for i in range(len(x)):
        q, _ = np.linalg.qr(np.stack([we[i], wo[i]], 1).astype(np.float64))
        out[i] = np.linalg.norm(q.T @ x[i])
    return out


def pearson_rows(a, b) -> np.ndarray:
    """Pearson r between matching rows of two stacks of images."""
    return np.sum(_unit(np.asarray(a)) * _unit(np.asarray(b)), axis=1)


def _diag_rates(twin: Twin, idx, contrast_images) -> np.ndarray:
    """True rate of neuron idx[i] to image i (contrast images)."""
    p = {k: jnp.asarray(np.asarray(v)[idx]) for k, v in twin.params.items()}
    out = np.empty(len(idx), np.float32)
    raw = to_raw(contrast_images).astype(np.float32)
    for s in range(0, len(idx), 256):
        sl = slice(s, s + 256)
        sub = {k: v[sl] for k, v in p.items()}
        r = np.asarray(twin_rates(sub, raw[sl]))
        out[sl] = np.diagonal(r)
    return out


def mei_recovery(
    meis, twin: Twin, neurons=None, *, natural_images=None, norm: float | None = None
) -> xr.Dataset:
    """Score MEIs against the twin's ground truth, at one contrast-norm budget.

    Args:
      meis: an MEI result (best seed is used) or (neuron, [1,] y, x) raw images.
      twin: the ground truth.
      neurons: twin neuron indices the MEIs belong to (default: ``neuron_index`` of the
        result, or ``0..n-1``).
      natural_images: (image, [1,] y, x) raw images for ``natural_ratio`` (e.g. the test
        tier's unique images); omitted -> NaN.
      norm: contrast L2 budget (default ``twin.meta['norm_budget']``).

    Returns:
      ``xarray.Dataset`` over ``neuron`` with ``kind``, ``pearson_r``, ``phase_match``,
      ``rate_mei``, ``rate_optimal``, ``frac_true_max``, ``rate_natural``,
      ``natural_ratio``.
    """
    if neurons is None and isinstance(meis, xr.Dataset) and "neuron_index" in meis.coords:
        neurons = meis["neuron_index"].values
    x = mei_images(meis)
    idx = np.arange(len(x)) if neurons is None else np.asarray(neurons)
    if len(idx) != len(x):
        raise ConfigError(f"{len(x)} MEIs but {len(idx)} neuron indices")
    norm = float(twin.meta["norm_budget"] if norm is None else norm)
    c = at_budget(x, norm)
    opt = optimal_stimuli(twin, norm)[idx]
    p = twin.params
    rate_mei = _diag_rates(twin, idx, c)
    rate_opt = _diag_rates(twin, idx, opt)
    if natural_images is not None:
        nat = np.asarray(natural_images, np.float32)
        r_nat = twin.rates(nat)[:, idx].max(0)
    else:
        r_nat = np.full(len(idx), np.nan, np.float32)
    kinds = twin.kinds[idx]
    return xr.Dataset(
        {
            "kind": ("neuron", kinds),
            "pearson_r": ("neuron", pearson_rows(c, opt)),
            "phase_match": (
                "neuron",
                phase_match(c, np.asarray(p["w_even"])[idx], np.asarray(p["w_odd"])[idx]),
            ),
            "rate_mei": ("neuron", rate_mei),
            "rate_optimal": ("neuron", rate_opt),
            "frac_true_max": ("neuron", rate_mei / np.maximum(rate_opt, 1e-12)),
            "rate_natural": ("neuron", r_nat),
            "natural_ratio": ("neuron", rate_mei / np.maximum(r_nat, 1e-12)),
        },
        coords={
            "neuron_id": ("neuron", np.asarray(twin.neuron_id)[idx]),
            "neuron_index": ("neuron", idx),
        },
        attrs={"norm": norm},
    )


def orientation_error_deg(theta_a, theta_b) -> np.ndarray:
    """Absolute orientation difference in degrees, orientation taken mod pi (0..90)."""
    d = np.mod(np.asarray(theta_a) - np.asarray(theta_b), np.pi)
    return np.degrees(np.minimum(d, np.pi - d))


def gabor_recovery(gabors: xr.Dataset, twin: Twin, neurons=None) -> xr.Dataset:
    """Orientation and spatial-frequency errors of fitted Gabors against the twin's truth.

    Args:
      gabors: a result of :func:`jaxsel.insilico.optimal_gabors` (or of the
        bank screening) with per-neuron ``theta`` and ``sf``.
      twin: the ground truth.
      neurons: twin neuron indices (default: the result's ``neuron_index``).

    Returns:
      Dataset over ``neuron``: ``kind``, ``theta_error_deg``, ``sf_rel_error``.
    """
    if neurons is None:
        neurons = gabors["neuron_index"].values
    idx = np.asarray(neurons)
    p = twin.params
    return xr.Dataset(
        {
            "kind": ("neuron", twin.kinds[idx]),
            "theta_error_deg": (
                "neuron",
                orientation_error_deg(gabors["theta"].values, np.asarray(p["theta"])[idx]),
            ),
            "sf_rel_error": ("neuron", np.abs(gabors["sf"].values / np.asarray(p["sf"])[idx] - 1)),
        },
        coords={
            "neuron_id": ("neuron", np.asarray(twin.neuron_id)[idx]),
            "neuron_index": ("neuron", idx),
        },
    )


def summarize(scores: xr.Dataset) -> dict:
    """Median of every numeric score per neuron kind (plain dict, JSON-ready)."""
    out = {}
    kinds = scores["kind"].values
    for kind in np.unique(kinds):
        sel = kinds == kind
        row: dict[str, int | float | None] = {"n": int(sel.sum())}
        for name, v in scores.data_vars.items():
            if name != "kind" and v.dtype.kind == "f":
                vals = v.values[sel]
                vals = vals[np.isfinite(vals)]
                row[str(name)] = float(np.median(vals)) if len(vals) else None
        out[str(kind)] = row
    return out
