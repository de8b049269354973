"""Summaries of single-neuron information over runs (seeds, trials, ensemble members):
ranked information curves, informative-neuron counts and the hyperparameter sweep table."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from jaxsel._errors import DataError
from jaxsel.measures._information import INFO_THRESHOLD


def _runs(info) -> np.ndarray:
    a = np.asarray(info.values if isinstance(info, xr.DataArray) else info, np.float64)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2:
        raise DataError(
            f"information array has shape {a.shape}",
            field="info",
            expected="(neuron,) or (run, neuron)",
        )
    return a


def ranked_information(info) -> xr.Dataset:
    """Ranked information curve: each run sorted in descending order, mean and sd over runs.

    Args:
      info: (run, neuron) information values (runs = seeds / trials / members), or (neuron,).

    Returns:
      ``xr.Dataset`` (rank = 1..n_neuron): ``mean``, ``sd`` (ddof 0), attrs ``n_runs``.
      NaN values sort last.
    """
    a = _runs(info)
    s = -np.sort(np.where(np.isnan(a), np.inf, -a), axis=1)
    s = np.where(np.isinf(s), np.nan, s)
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(s, 0) if a.shape[0] > 1 else s[0]
        sd = np.nanstd(s, 0) if a.shape[0] > 1 else np.zeros(s.shape[1])
    return xr.Dataset(
        {"mean": ("rank", mean), "sd": ("rank", sd)},
        coords={"rank": np.arange(1, s.shape[1] + 1)},
        attrs={"n_runs": int(a.shape[0]), "units": "bit"},
    )


def informative_count(info, threshold: float = INFO_THRESHOLD) -> dict:
    """Number of informative neurons (``I >= threshold``) per run, with mean and SEM.

    Args:
      info: (run, neuron) or (neuron,) information values in bits.
      threshold: informative if at least this many bits (default 2/3 bit).

    Returns:
      dict with ``counts`` (run,), ``mean``, ``sem`` (sd with ddof 1 over sqrt(n_runs);
      NaN for a single run) and ``n_runs``.
    """
    a = _runs(info)
    counts = (a >= threshold).sum(1)
    n = len(counts)
    sem = float(counts.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return {"counts": counts, "mean": float(counts.mean()), "sem": sem, "n_runs": n}


SWEEP_COLUMNS = (
    "hyperparameter",
    "value",
    "informative_count_mean",
    "informative_count_sem",
    "informative_fraction_mean",
    "informative_fraction_sem",
    "max_info_mean",
    "max_info_std",
    "mean_info_top10",
    "n_trials",
)


def sweep_table(
    results: Mapping, *, threshold: float = INFO_THRESHOLD, n_neurons: int | None = None
) -> pd.DataFrame:
    """Summary of information sweeps, one row per (hyperparameter, value).

    Args:
      results: ``{hyperparameter: {value: info (run, neuron)}}``.
      threshold: informative threshold in bits.
      n_neurons: population size for the fraction (default: the info arrays' width).

    Returns:
      ``pandas.DataFrame`` with columns :data:`SWEEP_COLUMNS`: informative count mean/SEM,
      informative fraction (0..1) mean/SEM, mean/std over runs of each run's maximum,
      mean of the top-10 ranked mean information, number of runs.
    """
    rows = []
    for hp, by_value in results.items():
        if not isinstance(by_value, Mapping):
            raise DataError(
                f"results['{hp}'] is {type(by_value).__name__}",
                field=f"results.{hp}",
                expected="a mapping value -> info array",
            )
        for value in sorted(by_value, key=_sort_key):
            a = _runs(by_value[value])
            cnt = informative_count(a, threshold)
            n = a.shape[1] if n_neurons is None else int(n_neurons)
            mx = np.nanmax(a, axis=1)
            ranked = ranked_information(a)["mean"].values
            rows.append(
                {
                    "hyperparameter": hp,
                    "value": value,
                    "informative_count_mean": cnt["mean"],
                    "informative_count_sem": cnt["sem"],
                    "informative_fraction_mean": cnt["mean"] / n,
                    "informative_fraction_sem": cnt["sem"] / n,
                    "max_info_mean": float(mx.mean()),
                    "max_info_std": float(mx.std()),
                    "mean_info_top10": float(np.nanmean(ranked[:10])),
                    "n_trials": int(a.shape[0]),
                }
            )
    return pd.DataFrame(rows, columns=list(SWEEP_COLUMNS))


def _sort_key(v):
    return (0, float(v), "") if isinstance(v, (int, float, np.number)) else (1, 0.0, str(v))


def save_sweep_csv(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a :func:`sweep_table` as CSV (no index column)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return path
