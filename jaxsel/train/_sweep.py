"""Hyperparameter sweeps as few compiled programs: spec, expansion, results, summary (seed 001).

A sweep spec (dict / TOML / JSON)::

    {"base": "small",                       # named config or a Config dict
     "grid": {"lr": [1e-3, 3e-3, 1e-2]},    # cartesian product ... or
     "list": [{"lr": 1e-3, "gamma_readout": 0.1}, ...],   # explicit points
     "seeds": [0, 1, 2],
     "targets": null}                       # or "per_neuron"

Every (point, seed) is one model. Points that differ only in per-model fields
(:data:`jaxsel.train.PER_MODEL_FIELDS`: learning rate, regularizer strengths, schedule,
readout init) run in ONE :func:`~jaxsel.fit_many` program; other fields (layers,
channels, batch size, ...) split the sweep into one program per distinct value.

Results are ``xarray`` with dims ``(point, seed)`` and the swept hyperparameters as coords
along ``point``; :func:`member_metric` collects a per-neuron metric of every model, and
:func:`jaxsel.measures.sweep_summary` (and :func:`jaxsel.measures.ranked_curves`) summarises it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from jaxsel._errors import ConfigError
from jaxsel.train._config import Config
from jaxsel.train._fit_parts import resolve_config
from jaxsel.train._many import PER_MODEL_FIELDS, fit_many

_KEYS = ("base", "grid", "list", "seeds", "targets", "name")


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep.

    Attributes:
      base: the base :class:`~jaxsel.train.Config`.
      points: tuple of ``{field: value}`` dicts, one per sweep point.
      seeds: seeds run at every point.
      targets: passed to ``fit_many`` (None or ``"per_neuron"``).
      name: a label.
    """

    base: Config
    points: tuple
    seeds: tuple = (0,)
    targets: object = None
    name: str = "sweep"
    names: tuple = field(default=())

    @property
    def n_models(self) -> int:
        return len(self.points) * len(self.seeds)


def sweep_spec(d: dict) -> SweepSpec:
    """Parse a sweep dict (see module docstring); exactly one of ``grid`` / ``list``.

    Raises:
      ConfigError: unknown keys, both or neither of grid/list, unknown config fields,
        empty value lists.
    """
    d = dict(d)
    bad = [k for k in d if k not in _KEYS]
    if bad:
        raise ConfigError(f"unknown sweep keys {bad} (valid: {', '.join(_KEYS)})")
    if ("grid" in d) == ("list" in d):
        raise ConfigError(
            "a sweep needs exactly one of 'grid' (name -> values) or 'list' (list of {name: value})"
        )
    base = resolve_config(d.get("base", "small"))
    if "grid" in d:
        grid = dict(d["grid"])
        for k, v in grid.items():
            if not isinstance(v, (list, tuple)) or not v:
                raise ConfigError(f"sweep grid '{k}' must be a non-empty list of values")
        names = tuple(grid)
        points = tuple(
            dict(zip(names, combo, strict=True)) for combo in itertools.product(*grid.values())
        )
    else:
        points = tuple(dict(p) for p in d["list"])
        if not points:
            raise ConfigError("sweep 'list' is empty")
        names = tuple(dict.fromkeys(k for p in points for k in p))
    for p in points:
        base.replace(**p)  # validates names (ConfigError naming fixes)
    seeds = d.get("seeds", [0])
    seeds = tuple(int(s) for s in (seeds if isinstance(seeds, (list, tuple)) else [seeds]))
    return SweepSpec(base, points, seeds, d.get("targets"), str(d.get("name", "sweep")), names)


def expand(spec: SweepSpec) -> list[tuple[Config, dict, list[int]]]:
    """Group the (point, seed) models into programs.

    Returns:
      ``[(config, hparams, point_indices)]``: per program its static config, the per-model
      ``hparams`` (K = len(point_indices) * len(seeds), point-major) for ``fit_many``.
    """
    groups: dict[str, tuple[Config, list[int]]] = {}
    for i, p in enumerate(spec.points):
        static = {k: v for k, v in p.items() if k not in PER_MODEL_FIELDS}
        cfg = spec.base.replace(**static)
        key = repr(sorted(cfg.to_dict().items(), key=lambda kv: kv[0]))
        groups.setdefault(key, (cfg, []))[1].append(i)
    out = []
    ns = len(spec.seeds)
    for cfg, idx in groups.values():
        hp = {}
        per = sorted({k for i in idx for k in spec.points[i] if k in PER_MODEL_FIELDS})
        for k in per:
            vals = [spec.points[i].get(k, _default(cfg, k)) for i in idx]
            hp[k] = np.repeat(np.asarray(vals), ns)
        out.append((cfg, hp, idx))
    return out


def _default(cfg: Config, k: str):
    return getattr(cfg.train, k) if hasattr(cfg.train, k) else getattr(cfg.model, k)


@dataclass
class SweepRun:
    """A finished sweep: ``results`` (xr.Dataset (point, seed)), the ``fits`` (one
    :class:`~jaxsel.ManyResult` per program) and where each (point, seed) lives:
    ``where[(point, seed_index)] = (program, model)``."""

    spec: SweepSpec
    results: xr.Dataset
    fits: list
    where: dict


def run_sweep(
    spec,
    dataset: xr.Dataset,
    *,
    mesh=None,
    max_epochs: int | None = None,
    out_dir: str | Path | None = None,
    formulation: str = "auto",
    progress: bool | None = None,
) -> SweepRun:
    """Train every (point, seed) of a sweep with :func:`fit_many` (one program per group).

    Args:
      spec: a :class:`SweepSpec` or a sweep dict.
      dataset: the training dataset.
      mesh, max_epochs, formulation, progress: passed to ``fit_many``.
      out_dir: checkpoints go to ``out_dir/program<i>``.

    Returns:
      A :class:`SweepRun`; ``results`` has ``best_score`` (validation correlation),
      ``best_epoch``, ``epochs``, ``stopped`` over (point, seed), coords ``seed`` and one
      coord per swept field along ``point``.
    """
    if isinstance(spec, dict):
        spec = sweep_spec(spec)
    ns = len(spec.seeds)
    n_p = len(spec.points)
    best = np.full((n_p, ns), np.nan)
    bepoch = np.full((n_p, ns), -1)
    epochs = np.zeros((n_p, ns), int)
    stopped = np.full((n_p, ns), "", dtype=object)
    fits, where = [], {}
    for g, (cfg, hp, idx) in enumerate(expand(spec)):
        seeds = np.tile(np.asarray(spec.seeds), len(idx))
        r = fit_many(
            cfg,
            dataset,
            seeds=seeds,
            hparams=hp,
            targets=spec.targets,
            mesh=mesh,
            max_epochs=max_epochs,
            formulation=formulation,
            progress=progress,
            out_dir=None if out_dir is None else Path(out_dir) / f"program{g}",
        )
        fits.append(r)
        summ = r.summary()
        for j, i in enumerate(idx):
            for s in range(ns):
                m = j * ns + s
                where[(i, s)] = (g, m)
                best[i, s] = float(summ["best_score"][m])
                bepoch[i, s] = int(summ["best_epoch"][m])
                epochs[i, s] = int(summ["epochs"][m])
                stopped[i, s] = str(summ["stopped"][m].values)
    coords = {"point": np.arange(n_p), "seed": np.asarray(spec.seeds)}
    for name in spec.names:
        vals = [p.get(name, _default(spec.base, name)) for p in spec.points]
        coords[name] = ("point", np.asarray(vals))
    res = xr.Dataset(
        {
            "best_score": (("point", "seed"), best),
            "best_epoch": (("point", "seed"), bepoch),
            "epochs": (("point", "seed"), epochs),
            "stopped": (("point", "seed"), stopped.astype(str)),
        },
        coords=coords,
        attrs={"name": spec.name},
    )
    return SweepRun(spec, res, fits, where)


def member_metric(run: SweepRun, fn) -> xr.DataArray:
    """A per-neuron metric of every trained model: ``fn(many_result, model_index) ->
    (neuron,)`` values, collected as ``xr.DataArray`` (point, seed, neuron) with the sweep's
    coords (e.g. single-neuron information of each model's rates)."""
    vals = {}
    for (i, s), (g, m) in run.where.items():
        vals[(i, s)] = np.asarray(fn(run.fits[g], m), np.float64)
    n = max(len(v) for v in vals.values())
    out = np.full((run.results.sizes["point"], run.results.sizes["seed"], n), np.nan)
    for (i, s), v in vals.items():
        out[i, s, : len(v)] = v
    return xr.DataArray(
        out,
        dims=("point", "seed", "neuron"),
        coords=dict(run.results.coords.items()),
        name="metric",
    )


__all__ = ["SweepRun", "SweepSpec", "expand", "member_metric", "run_sweep", "sweep_spec"]
