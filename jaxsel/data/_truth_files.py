"""The ground-truth folder every twin writes (``params.npz``, ``neurons.csv``,
``twin.json``) and reads back with checked files and format, and the projected gradient
ascent on the norm sphere the twins use for their suppressed cells' optimal stimuli."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from jaxsel._errors import DataError


def save_truth(
    path: str | Path, params: dict, neuron_id, table: xr.Dataset, header: dict, meta: dict
) -> Path:
    """Write ``params.npz`` (with ``neuron_id``), ``neurons.csv`` (``table``) and
    ``twin.json`` (``header`` then ``meta``) to the folder ``path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    # Any values: numpy's stub would let a ndarray ** entry fill the bool ``allow_pickle``
    arrays: dict[str, Any] = {k: np.asarray(v) for k, v in params.items()}
    np.savez_compressed(path / "params.npz", neuron_id=np.asarray(neuron_id), **arrays)
    table.to_dataframe().to_csv(path / "neurons.csv")
    (path / "twin.json").write_text(json.dumps({**header, **meta}, indent=2))
    return path


def read_truth(path: str | Path, *, header: dict, writer: str) -> tuple[dict, np.ndarray, dict]:
    """``(params, neuron_id, meta)`` of a folder written by :func:`save_truth` whose
    ``twin.json`` holds ``header``'s values (DataError naming the file otherwise; ``writer``
    says what writes such folders). A key ``kinds`` in ``twin.json`` is dropped."""
    path = Path(path)
    for name in ("params.npz", "twin.json"):
        if not (path / name).is_file():
            raise DataError(
                "ground-truth file missing",
                file=path / name,
                field=name,
                expected=f"a folder written by {writer}",
            )
    meta = json.loads((path / "twin.json").read_text())
    found = {k: meta.pop(k, None) for k in ("format", "twin")}
    wanted = {"format": None, "twin": None, **header}
    if found != wanted:
        raise DataError(
            f"unsupported ground-truth format {found}",
            file=path / "twin.json",
            field="format",
            expected=f"{wanted} (a folder written by {writer})",
        )
    meta.pop("kinds", None)
    with np.load(path / "params.npz") as z:
        arrays = {k: z[k] for k in z.files}
    neuron_id = arrays.pop("neuron_id")
    return arrays, neuron_id, meta


def ascend_on_sphere(
    drive: Callable[[dict, jax.Array], jax.Array], params: dict, c0, norm: float, steps: int
) -> np.ndarray:
    """Projected gradient ascent of ``drive(neuron params, stimulus)`` for each neuron (the
    leading axis of ``params`` and ``c0``) on the sphere ``||stimulus|| = norm``: each step
    moves ``0.05 * norm`` along the normalised tangent gradient, then renormalises."""
    p = {k: jnp.asarray(np.asarray(v)) for k, v in params.items()}
    grad = jax.vmap(jax.grad(drive, argnums=1))

    def sq_norm(a):
        return jnp.sum(a**2, tuple(range(1, a.ndim)), keepdims=True)

    @jax.jit
    def run(p, c):
        def body(_, c):
            g = grad(p, c)
            axes = tuple(range(1, c.ndim))
            g = g - jnp.sum(g * c, axes, keepdims=True) * c / norm**2  # tangent component
            g = g / (jnp.sqrt(sq_norm(g)) + 1e-12)
            c = c + 0.05 * norm * g
            return norm * c / jnp.sqrt(sq_norm(c))

        return jax.lax.fori_loop(0, steps, body, c)

    return np.asarray(run(p, jnp.asarray(c0, jnp.float32)))


__all__ = ["ascend_on_sphere", "read_truth", "save_truth"]
