"""Truth metrics as distributions, not only medians: median, the bad tail (10th percentile of
a score, 90th of an error) and failure counts, over every neuron the metric was computed on.

``tail_metrics("cnn_corr_to_truth", r, below=(0.2, 0.5))`` gives
``cnn_corr_to_truth_median``, ``_p10``, ``_n_below_0_2``, ``_n_below_0_5`` and ``_n`` (the
number of neurons with a finite value); an error (``error=True``) gets ``_p90`` and
``_n_above_<t>`` instead.
"""

from __future__ import annotations

import numpy as np

# failure thresholds per metric family (the suffix of the metric name before _median)
CORR_FAILS = (0.2, 0.5)  # truth correlation: 0.2 = never fitted, 0.5 = poorly fitted
MEI_R_FAILS = (0.5,)  # MEI vs true optimum (Pearson r / phase-matched r)
DRIVE_FAILS = (0.9,)  # MEI's true drive as a fraction of the true neuron's maximum
RATIO_FAILS = (1.0,)  # MEI vs best natural image: below 1 = a natural image drives more
ORIENT_FAILS = (10.0,)  # Gabor orientation error (degrees)
SF_FAILS = (0.25,)  # Gabor spatial-frequency relative error


def _tag(t: float) -> str:
    """0.5 -> '0_5', 10.0 -> '10'."""
    return f"{t:g}".replace(".", "_").replace("-", "m")


def tail_metrics(
    base: str, values, *, below: tuple = (), above: tuple = (), error: bool = False
) -> dict:
    """``{base}_median``, the bad-tail percentile and failure counts of ``values``.

    Args:
      base: metric name without ``_median``.
      values: per-neuron values (NaN are left out of every statistic).
      below: thresholds t: ``{base}_n_below_{t}`` counts values < t.
      above: thresholds t: ``{base}_n_above_{t}`` counts values > t.
      error: lower is better: the tail is ``{base}_p90`` instead of ``{base}_p10``.

    Returns:
      A dict of floats / ints (NaN statistics when no value is finite).
    """
    v = np.asarray(values, np.float64).ravel()
    v = v[np.isfinite(v)]
    nan = float("nan")
    out: dict = {f"{base}_median": float(np.median(v)) if v.size else nan}
    q = 90 if error else 10
    out[f"{base}_p{q}"] = float(np.percentile(v, q)) if v.size else nan
    for t in below:
        out[f"{base}_n_below_{_tag(t)}"] = int(np.sum(v < t))
    for t in above:
        out[f"{base}_n_above_{_tag(t)}"] = int(np.sum(v > t))
    out[f"{base}_n"] = int(v.size)
    return out


__all__ = [
    "CORR_FAILS",
    "DRIVE_FAILS",
    "MEI_R_FAILS",
    "ORIENT_FAILS",
    "RATIO_FAILS",
    "SF_FAILS",
    "tail_metrics",
]
