"""Cross-activation: every neuron's response to every MEI, normalised per neuron."""

from __future__ import annotations

import numpy as np
import xarray as xr

from jaxsel._errors import ConfigError
from jaxsel.insilico._mei import best_seed, neuron_indices, output_size
from jaxsel.models import predict

NORMALIZE = ("max", "none")


def cross_activation(
    fn, params, meis, *, neurons=None, normalize: str = "max", batch_size: int = 256
) -> xr.DataArray:
    """Response of every neuron to every MEI.

    Args:
      fn, params: the model on raw images.
      meis: an MEI result (best seed per neuron is used; its ``neuron_index`` tells which
        model neuron each MEI belongs to) or an array (mei, C, H, W) of raw images.
      neurons: model neuron indices to read out (default: the MEIs' own neurons, so the
        matrix is square).
      normalize: ``"max"`` divides each neuron's column by its largest response over the
        MEIs (FENS), ``"none"`` keeps rates.
      batch_size: images per model call.

    Returns:
      ``DataArray`` (mei, neuron); a good MEI set has its maxima on the diagonal.
    """
    if normalize not in NORMALIZE:
        raise ConfigError(f"normalize = {normalize!r}: expected one of {NORMALIZE}")
    if isinstance(meis, xr.Dataset):
        res = best_seed(meis) if "seed" in meis.dims else meis
        images = res["mei"].values
        mei_index = res["neuron_index"].values
        mei_id = res["neuron_id"].values
    else:
        images = np.asarray(meis, np.float32)
        mei_index = np.arange(len(images))
        mei_id = mei_index
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4:
        raise ConfigError(f"MEIs have shape {images.shape}; expected (mei, [C,] H, W)")
    n_out = output_size(fn, params, images.shape[1:])
    idx = neuron_indices(mei_index if neurons is None else neurons, n_out)
    rates = predict((fn, params), images, batch_size=batch_size)[:, idx]
    if normalize == "max":
        rates = rates / np.where(rates.max(0) > 0, rates.max(0), 1.0)
    return xr.DataArray(
        rates.astype(np.float32),
        dims=("mei", "neuron"),
        name="cross_activation",
        coords={
            "mei_neuron_index": ("mei", mei_index),
            "mei_neuron_id": ("mei", mei_id),
            "neuron_index": ("neuron", idx),
        },
        attrs={"normalize": normalize},
    )


def diagonal_selectivity(ca: xr.DataArray) -> float:
    """Fraction of neurons whose own MEI drives them most (needs a square cross-activation)."""
    a = ca.values
    if a.shape[0] != a.shape[1]:
        raise ConfigError(f"cross-activation has shape {a.shape}; expected square")
    return float(np.mean(np.argmax(a, axis=0) == np.arange(a.shape[1])))
