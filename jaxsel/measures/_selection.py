"""Neuron selection: every reliability and tuning statistic in one labelled table, a rule from
config, and the decision per neuron.

Default rule, the "reliable-and-variable" rule: keep a neuron when its oracle correlation is
above the 60th percentile AND the variance of its per-image mean responses is above the 50th
percentile (strict ``>``, percentiles over neurons with a finite value, linear interpolation
as ``numpy.percentile`` / ``pandas.quantile``). The oracle statistic used by default is the
jackknife oracle (all trials vs leave-one-out means): it targets the same quantity as the
randomized oracle (one random trial vs the mean of the others) with much less sampling
noise; ``percentiles={"oracle_random": 60, "variance": 50}`` uses the randomized oracle
instead.

Table columns (``xr.Dataset`` over ``neuron``): ``oracle``, ``oracle_random``,
``oracle_random_sd``, ``oracle_random_rank``, ``total_variance``, ``noise_variance``,
``explainable_variance``, ``fev``, ``snr``, ``mean``, ``variance``, ``entropy``,
``max_corr``, ``max_corr_partner``, ``min_corr``, ``min_corr_partner``, ``outlier_score``,
``outlier``, one ``pass_<criterion>`` per criterion, and ``selected``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import xarray as xr

from jaxsel._errors import ConfigError, DataError
from jaxsel.measures import _reliability as rel
from jaxsel.measures import _tuning as tuning

STATISTICS = (
    "oracle",
    "oracle_random",
    "oracle_random_sd",
    "oracle_random_rank",
    "total_variance",
    "noise_variance",
    "explainable_variance",
    "fev",
    "snr",
    "mean",
    "variance",
    "entropy",
    "max_corr",
    "min_corr",
    "outlier_score",
)
OUTLIER_FEATURES = ("mean", "variance", "entropy", "max_corr")


@dataclass(frozen=True)
class SelectionRule:
    """A neuron-selection rule; a neuron is selected when it passes every criterion.

    Attributes:
      percentiles: statistic -> percentile (0..100); pass when the value is strictly above
        that percentile of the statistic across neurons.
      minimums: statistic -> absolute lower bound (pass when strictly above).
      maximums: statistic -> absolute upper bound (pass when strictly below).
      exclude_outliers: also require ``outlier`` to be False.
      outlier_method: ``"robust_mahalanobis"`` or ``"robust_z"`` (see ``tuning``).
      outlier_threshold: score threshold (None = the method's default).
      outlier_features: statistics the outlier detector sees (log1p of mean and variance).
      tier: the tier with repeated images to compute statistics on.
      oracle_draws: draws ``K`` of the randomized oracle.
      seed: its random seed.
      entropy_bins: None (distinct values) or a bin count for the entropy.
    """

    percentiles: Mapping[str, float] = field(
        default_factory=lambda: {"oracle": 60.0, "variance": 50.0}
    )
    minimums: Mapping[str, float] = field(default_factory=dict)
    maximums: Mapping[str, float] = field(default_factory=dict)
    exclude_outliers: bool = False
    outlier_method: str = "robust_mahalanobis"
    outlier_threshold: float | None = None
    outlier_features: tuple[str, ...] = OUTLIER_FEATURES
    tier: str = "test"
    oracle_draws: int = 50
    seed: int = 0
    entropy_bins: int | None = None

    def __post_init__(self):
        for name in ("percentiles", "minimums", "maximums"):
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"selection.{name} must be a mapping statistic -> number, "
                    f"got {type(value).__name__}"
                )
            for stat, v in value.items():
                _check_statistic(stat, f"selection.{name}")
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ConfigError(f"selection.{name}.{stat} must be a number, got {v!r}")
                if name == "percentiles" and not 0 <= v <= 100:
                    raise ConfigError(f"selection.percentiles.{stat}={v} is outside 0..100")
        for stat in self.outlier_features:
            _check_statistic(stat, "selection.outlier_features")
        if self.outlier_method not in ("robust_mahalanobis", "robust_z"):
            raise ConfigError(
                f"selection.outlier_method='{self.outlier_method}': use "
                "'robust_mahalanobis' or 'robust_z'"
            )
        if int(self.oracle_draws) < 1:
            raise ConfigError(f"selection.oracle_draws={self.oracle_draws} must be >= 1")

    @classmethod
    def from_dict(cls, config: Mapping | None) -> SelectionRule:
        """Build a rule from a plain dict (e.g. a YAML/JSON config section).

        Raises:
          ConfigError: an unknown key (naming the closest valid key) or a bad value.
        """
        config = dict(config or {})
        valid = [f.name for f in fields(cls)]
        for key in config:
            if key not in valid:
                close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.0)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise ConfigError(
                    f"unknown selection key '{key}'{hint} (valid keys: {', '.join(valid)})"
                )
        if "outlier_features" in config:
            config["outlier_features"] = tuple(config["outlier_features"])
        return cls(**config)

    def to_dict(self) -> dict:
        """The rule as a plain dict (round-trips through :meth:`from_dict`)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for k in ("percentiles", "minimums", "maximums"):
            out[k] = dict(out[k])
        out["outlier_features"] = list(out["outlier_features"])
        return out


def _check_statistic(stat: str, where: str) -> None:
    if stat not in STATISTICS:
        close = difflib.get_close_matches(str(stat), STATISTICS, n=1, cutoff=0.0)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(
            f"{where}: unknown statistic '{stat}'{hint} (valid: {', '.join(STATISTICS)})"
        )


def neuron_statistics(data, rule: SelectionRule | None = None) -> xr.Dataset:
    """Every per-neuron statistic used for selection, without the decision.

    Args:
      data: a dataset (its ``rule.tier`` trials are used) or a repeats array
        (image, repeat, neuron).
      rule: supplies tier, oracle draws, seed, entropy bins and outlier settings.

    Returns:
      ``xr.Dataset`` (neuron) with the columns listed in the module docstring (without
      ``pass_*`` / ``selected``).
    """
    rule = rule or SelectionRule()
    if isinstance(data, xr.Dataset):
        from jaxsel.data import repeats

        rep = repeats(data, tier=rule.tier)
    elif isinstance(data, xr.DataArray):
        rep = data
    else:
        raise DataError(
            f"cannot select neurons from {type(data).__name__}",
            field="data",
            expected="a dataset or a repeats DataArray (image, repeat, neuron)",
        )
    table = rel.reliability(rep, n_draws=rule.oracle_draws, seed=rule.seed)
    means = tuning.image_means(rep)
    table["mean"] = ("neuron", np.nanmean(means.values, axis=0))
    table["variance"] = ("neuron", tuning.response_variance(means).values)
    table["entropy"] = ("neuron", tuning.response_entropy(means, bins=rule.entropy_bins).values)
    partners = tuning.correlation_partners(tuning.signal_correlations(means))
    for k in partners.data_vars:
        table[k] = ("neuron", partners[k].values)
    feats = xr.Dataset({k: ("neuron", _outlier_feature(table, k)) for k in rule.outlier_features})
    out = tuning.outlier_flags(feats, method=rule.outlier_method, threshold=rule.outlier_threshold)
    table["outlier_score"] = ("neuron", out["outlier_score"].values)
    table["outlier"] = ("neuron", out["outlier"].values)
    table.attrs.update(
        {
            "outlier_method": out.attrs["method"],
            "outlier_threshold": out.attrs["threshold"],
            "outlier_features": out.attrs["features"],
            "tier": rule.tier,
            "n_images": int(rep.sizes["image"]),
        }
    )
    return table


def _outlier_feature(table: xr.Dataset, k: str) -> np.ndarray:
    v = table[k].values.astype(np.float64)
    if k in ("mean", "variance", "total_variance", "noise_variance", "explainable_variance"):
        return np.log1p(np.maximum(v, 0.0))
    return v


def apply_rule(table: xr.Dataset, rule: SelectionRule | None = None) -> xr.Dataset:
    """Add one boolean ``pass_<criterion>`` per criterion and ``selected`` to a table.

    Thresholds actually used are stored in ``attrs`` (``threshold_<criterion>``). A NaN
    statistic fails its criterion.
    """
    rule = rule or SelectionRule()
    table = table.copy()
    keep = np.ones(table.sizes["neuron"], dtype=bool)
    for kind, crits in (
        ("percentile", rule.percentiles),
        ("min", rule.minimums),
        ("max", rule.maximums),
    ):
        for stat, value in crits.items():
            if stat not in table:
                raise DataError(
                    f"statistic '{stat}' missing from the table",
                    field=stat,
                    expected=f"one of {list(table.data_vars)}",
                )
            x = table[stat].values.astype(np.float64)
            fin = np.isfinite(x)
            if kind == "percentile":
                thr = float(np.percentile(x[fin], value)) if fin.any() else np.nan
                name = f"{stat}_p{value:g}"
            else:
                thr = float(value)
                name = f"{stat}_{kind}"
            with np.errstate(invalid="ignore"):
                ok = fin & ((x < thr) if kind == "max" else (x > thr))
            table[f"pass_{name}"] = ("neuron", ok)
            table.attrs[f"threshold_{name}"] = thr
            keep &= ok
    if rule.exclude_outliers:
        table["pass_not_outlier"] = ("neuron", ~table["outlier"].values.astype(bool))
        keep &= table["pass_not_outlier"].values
    table["selected"] = ("neuron", keep)
    table.attrs["rule"] = repr(rule.to_dict())
    return table


def selection_table(data, rule: SelectionRule | Mapping | None = None) -> xr.Dataset:
    """Statistics and decision for every neuron (:func:`neuron_statistics` + :func:`apply_rule`).

    Args:
      data: a dataset or a repeats array.
      rule: a :class:`SelectionRule`, a config dict for it, or None for the default.

    Returns:
      ``xr.Dataset`` (neuron) with every statistic, ``pass_*`` flags and ``selected``.
    """
    if rule is None or isinstance(rule, Mapping):
        rule = SelectionRule.from_dict(rule)
    return apply_rule(neuron_statistics(data, rule), rule)


def selected_ids(table: xr.Dataset) -> np.ndarray:
    """Neuron ids of the selected neurons (for ``jaxsel.data.subset(ds, neurons=...)``)."""
    return table["neuron_id"].values[table["selected"].values.astype(bool)]


def save_table_csv(table: xr.Dataset, path: str | Path) -> Path:
    """Write the table as CSV, one row per neuron (index column ``neuron_id``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df = table.to_dataframe()
    if "neuron_id" in df.columns:
        df = df.set_index("neuron_id")
    coords = [c for c in df.columns if c in table.coords]
    stats = [c for c in STATISTICS if c in df.columns]
    rest = [c for c in df.columns if c not in coords and c not in stats]
    df = df[coords + stats + rest]  # ids, statistics, flags, decision last
    df.to_csv(path)
    return path
