"""Summaries of a hyperparameter sweep's per-neuron metric (point, seed, neuron), e.g. the
single-neuron information of every model of a sweep (:func:`jaxsel.train.run_sweep`): the
informative-count table per swept value and the ranked curves per point."""

from __future__ import annotations

import numpy as np
import xarray as xr

from jaxsel.measures._information_summaries import ranked_information, sweep_table


def sweep_summary(
    metric: xr.DataArray, *, threshold: float = 2.0 / 3.0, n_neurons: int | None = None
):
    """The seed-001 summary table of a per-neuron metric (point, seed, neuron).

    One row per (swept hyperparameter, value): informative counts (``metric >= threshold``)
    mean and SEM over seeds, fraction, max, top-10 mean, runs
    (:func:`jaxsel.measures.sweep_table`). With several swept fields, a value
    is the tuple of a point's values under the joint name ``"a,b"``.

    Returns:
      ``pandas.DataFrame``.
    """
    names = [c for c in metric.coords if metric.coords[c].dims == ("point",) and c != "point"]
    if not names:
        names = ["point"]
    label = ",".join(map(str, names))
    by_value: dict = {}
    for i in range(metric.sizes["point"]):
        vals = tuple(_py(metric.coords[n].values[i]) for n in names)
        v = vals[0] if len(vals) == 1 else str(vals)
        a = metric.isel(point=i).values
        by_value[v] = np.concatenate([by_value[v], a]) if v in by_value else a
    return sweep_table({label: by_value}, threshold=threshold, n_neurons=n_neurons)


def ranked_curves(metric: xr.DataArray) -> xr.Dataset:
    """Ranked per-neuron metric curves per point: each seed's values sorted descending, mean
    and sd over seeds -> ``xr.Dataset`` (point, rank) with ``mean``, ``sd``."""
    parts = [ranked_information(metric.isel(point=i).values) for i in range(metric.sizes["point"])]
    out = xr.concat(parts, dim="point")
    return out.assign_coords(
        {
            k: v
            for k, v in metric.coords.items()
            if k == "point" or metric.coords[k].dims == ("point",)
        }
    )


def _py(v):
    return v.item() if isinstance(v, np.generic) else v


__all__ = ["ranked_curves", "sweep_summary"]
