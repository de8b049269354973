"""Twin ground-truth metrics of the in-silico stages, as distributions (median, bad tail,
failure counts; see :mod:`jaxsel.pipeline._tails`), for the MEIs and Gabors of the single
model, the ensemble and the true neurons."""

from __future__ import annotations

import numpy as np
import xarray as xr

from jaxsel.pipeline._context import spearman
from jaxsel.pipeline._tails import (
    DRIVE_FAILS,
    MEI_R_FAILS,
    ORIENT_FAILS,
    RATIO_FAILS,
    SF_FAILS,
    tail_metrics,
)

# metric prefix of each in-silico result tag
MEI_PREFIX = {"model": "mei", "ensemble": "ensemble_mei", "truth": "truemei"}
GABOR_PREFIX = {"model": "gabor", "ensemble": "ensemble_gabor", "truth": "truegabor"}


def mei_recovery_metrics(pre: str, rec: xr.Dataset) -> dict:
    """MEI-vs-truth metrics of a :func:`jaxsel.insilico.mei_recovery` table: the image
    match (simple: Pearson r; complex: phase-matched r), the true drive as a fraction of
    the true neuron's maximum (all responsive neurons, and per kind) and the ratio to the
    best natural image."""
    kinds = rec["kind"].values
    responsive = kinds != "unresponsive"
    drive = rec["frac_true_max"].values
    out = {}
    out.update(
        tail_metrics(
            f"{pre}_truth_r_simple", rec["pearson_r"].values[kinds == "simple"], below=MEI_R_FAILS
        )
    )
    out.update(
        tail_metrics(
            f"{pre}_truth_r_complex",
            rec["phase_match"].values[kinds == "complex"],
            below=MEI_R_FAILS,
        )
    )
    out.update(tail_metrics(f"{pre}_true_drive_fraction", drive[responsive], below=DRIVE_FAILS))
    for kind in ("simple", "complex"):
        sub = drive[kinds == kind]
        out.update(tail_metrics(f"{pre}_true_drive_fraction_{kind}", sub, below=DRIVE_FAILS))
    ratio = rec["natural_ratio"].values[responsive]
    out.update(tail_metrics(f"{pre}_vs_best_natural_ratio", ratio, below=RATIO_FAILS))
    return out


def confidence_metrics(pre: str, res: xr.Dataset, rec: xr.Dataset | None) -> dict:
    """Medians of the MEI confidence variables of ``res`` (see
    :func:`jaxsel.insilico.mei_confidence`) and, with a recovery table, how well each one
    predicts the true drive (Spearman over responsive neurons; positive = the measure is
    high where the MEI drives the true neuron well)."""
    out = {}
    signs = {
        "member_cv": -1.0,
        "member_min_fraction": 1.0,
        "seed_image_corr": 1.0,
        "seed_activation_ratio": 1.0,
    }
    for name, sign in signs.items():
        if name not in res:
            continue
        v = res[name].values
        out[f"{pre}_{name}_median"] = float(np.nanmedian(v))
        if rec is None:
            continue
        keep = (rec["kind"].values != "unresponsive") & np.isfinite(v)
        drive = rec["frac_true_max"].values[keep]
        rho = spearman(sign * v[keep], drive)
        if np.isfinite(rho):
            out[f"{pre}_{name}_vs_true_drive_spearman"] = rho
    return out


def gabor_recovery_metrics(pre: str, rec: xr.Dataset) -> dict:
    """Gabor-vs-truth metrics of a :func:`jaxsel.insilico.gabor_recovery` table
    (oriented cells): orientation error (degrees) and relative SF error."""
    kinds = rec["kind"].values
    oriented = np.isin(kinds, ("simple", "complex", "suppressed"))
    out = tail_metrics(
        f"{pre}_orientation_error_deg",
        rec["theta_error_deg"].values[oriented],
        above=ORIENT_FAILS,
        error=True,
    )
    out.update(
        tail_metrics(
            f"{pre}_sf_rel_error", rec["sf_rel_error"].values[oriented], above=SF_FAILS, error=True
        )
    )
    return out


__all__ = [
    "GABOR_PREFIX",
    "MEI_PREFIX",
    "confidence_metrics",
    "gabor_recovery_metrics",
    "mei_recovery_metrics",
]
