"""How well the ground truth itself predicts single trials: the ceiling any model of a twin
dataset can reach, and the statistic the twin's presets are calibrated on."""

from __future__ import annotations

import numpy as np
import xarray as xr

from jaxsel._errors import DataError
from jaxsel.data import subset, unique_images
from jaxsel.measures._evaluation import pearson


def truth_correlation(ds: xr.Dataset, twin, tier: str = "test") -> xr.DataArray:
    """Per-neuron Pearson correlation of the true noise-free rates with single-trial responses.

    The truth is the best possible predictor (``E[response | image]``), so this is the
    ceiling of a model's single-trial test correlation on the same trials (up to sampling
    error); on recorded V1 a state-of-the-art CNN reaches a median of about 0.29
    (Sensorium 2022).

    Args:
      ds: a twin dataset (its neurons a subset of the twin's, matched by ``neuron_id``).
      twin: the :class:`~jaxsel.data.Twin` the dataset was simulated from.
      tier: the tier whose trials are correlated.

    Returns:
      (neuron,) correlations labelled by ``neuron_id`` (and ``kind``); NaN where the
      responses or the rates are constant. attrs: ``tier``, ``n_trials``, ``units``.

    Raises:
      DataError: the tier is empty or a neuron of ``ds`` is not in the twin.
    """
    if not (hasattr(twin, "rates") and hasattr(twin, "neuron_id")):
        raise DataError(
            f"truth_correlation: twin is a {type(twin).__name__}",
            field="twin",
            expected="the Twin of the dataset (js.simulate returns (ds, twin); "
            "jaxsel.data.load_twin reads a ground_truth folder)",
        )
    sel = subset(ds, tiers=tier)
    if sel.sizes["trial"] == 0:
        raise DataError(f"truth_correlation: no trials in tier '{tier}'", field="tier")
    ids = np.asarray(ds["neuron_id"].values)
    twin_ids = np.asarray(twin.neuron_id)
    idx = np.searchsorted(twin_ids, ids)
    idx = np.clip(idx, 0, len(twin_ids) - 1)
    if len(twin_ids) == 0 or not np.array_equal(twin_ids[idx], ids):
        raise DataError(
            "truth_correlation: the dataset has neurons the twin does not",
            field="neuron_id",
            expected="the twin the dataset was simulated from",
        )
    imgs = unique_images(ds, tier)
    rates = np.asarray(twin.rates(imgs.values))[:, idx]
    trial_img = np.searchsorted(imgs["image_id"].values, sel["image_id"].values)
    corr = pearson(rates[trial_img], sel["responses"].values)
    coords = {"neuron_id": ("neuron", ids)}
    if hasattr(twin, "kinds"):
        coords["kind"] = ("neuron", np.asarray(twin.kinds)[idx].astype(str))
    return xr.DataArray(
        corr,
        dims="neuron",
        coords=coords,
        name="truth_single_trial_correlation",
        attrs={"tier": tier, "n_trials": int(sel.sizes["trial"]), "units": "Pearson r"},
    )


__all__ = ["truth_correlation"]
