"""Labels carried from an input to a measure's result."""

from __future__ import annotations

import xarray as xr


def neuron_coords(a) -> dict:
    """The coordinates of ``a`` that live on the ``neuron`` dim (neuron_id, area, kind, ...),
    as ``{name: ("neuron", values)}`` for a new Dataset; ``{}`` for a plain array."""
    if isinstance(a, (xr.DataArray, xr.Dataset)):
        return {k: ("neuron", v.values) for k, v in a.coords.items() if v.dims == ("neuron",)}
    return {}
