"""Sensorium-2023 style scores of video predictions, per neuron, as labelled xarray.

Trials are sequences of (time, neuron) arrays (lengths may differ) or one (trial, time,
neuron) array. Every score drops the first ``burn_in`` frames of each trial (the frames a
causal model spends warming up its temporal filters) and concatenates the rest:

* :func:`video_correlation`: the single-trial correlation: per neuron, Pearson's r of
  predictions and responses over all concatenated frames;
* :func:`video_average_correlation`: the correlation to the average: responses (and
  predictions) are first averaged over the repeats of each video (trials sharing a
  ``video_id``), frame by frame;
* :func:`evaluate_video`: both, and the correlation with a ground-truth rate array
  (``truth_correlation``), as one ``xarray.Dataset`` over ``neuron``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from jaxsel._checks import check_int
from jaxsel._errors import ConfigError, DataError
from jaxsel.measures._evaluation import pearson

_UNITS = "Pearson r (dimensionless)"


def _trials(where: str, name: str, x) -> list[np.ndarray]:
    out = [np.asarray(t, np.float64) for t in x]
    if not out:
        raise DataError(f"{where}: no trials", field=name, expected="at least one trial")
    for i, t in enumerate(out):
        if t.ndim != 2 or t.shape[1] != out[0].shape[1]:
            raise DataError(
                f"{where}: trial {i} has shape {t.shape}",
                field=name,
                expected=f"(time, neuron) with {out[0].shape[1]} neurons",
            )
    return out


def _paired(where: str, pred, resp, burn_in: int):
    burn_in = check_int(where, "burn_in", burn_in, minimum=0)
    p, r = _trials(where, "pred", pred), _trials(where, "responses", resp)
    if len(p) != len(r):
        raise DataError(
            f"{where}: {len(p)} predicted trials for {len(r)} response trials",
            field="pred",
            expected="one prediction per trial",
        )
    for i, (a, b) in enumerate(zip(p, r, strict=True)):
        if a.shape != b.shape:
            raise DataError(
                f"{where}: trial {i}: predictions {a.shape} vs responses {b.shape}",
                field="pred",
                expected="the responses' (time, neuron) shape",
            )
        if a.shape[0] <= burn_in:
            raise ConfigError(
                f"{where}: burn_in = {burn_in} drops all {a.shape[0]} frames of trial {i}; "
                "use a smaller burn_in"
            )
    return p, r, burn_in


def _labelled(values, name: str, neuron_id, burn_in: int, n_frames: int, what: str):
    n = len(values)
    ids = np.arange(n) if neuron_id is None else np.asarray(neuron_id)
    if len(ids) != n:
        raise ConfigError(f"{len(ids)} neuron_id labels for {n} neurons")
    return xr.DataArray(
        np.asarray(values, np.float64),
        dims=("neuron",),
        coords={"neuron_id": ("neuron", ids)},
        name=name,
        attrs={"units": _UNITS, "burn_in_frames": burn_in, "n_frames": n_frames, "what": what},
    )


def video_correlation(pred, responses, *, burn_in: int = 0, neuron_id=None) -> xr.DataArray:
    """Single-trial correlation per neuron over the concatenated frames after burn-in.

    Args:
      pred: predicted rates, trials of (time, neuron).
      responses: observed responses (or true rates), trials of the same shapes.
      burn_in: leading frames of every trial left out.
      neuron_id: labels (default 0..N-1).

    Returns:
      ``DataArray`` (neuron) named ``single_trial_correlation`` (NaN for a constant
      neuron); attrs: ``units``, ``burn_in_frames``, ``n_frames`` (frames scored).
    """
    p, r, burn_in = _paired("video_correlation", pred, responses, burn_in)
    pc = np.concatenate([a[burn_in:] for a in p])
    rc = np.concatenate([b[burn_in:] for b in r])
    return _labelled(
        pearson(pc, rc),
        "single_trial_correlation",
        neuron_id,
        burn_in,
        len(pc),
        "correlation of predictions and single-trial responses over concatenated frames",
    )


def video_average_correlation(
    pred, responses, video_id, *, burn_in: int = 0, neuron_id=None
) -> xr.DataArray:
    """Correlation to the average over repeats, per neuron.

    Responses and predictions of the trials that share a ``video_id`` (repeats of one
    video, all of one length) are averaged frame by frame; the averages after burn-in are
    concatenated over videos and correlated.

    Args:
      pred, responses: trials of (time, neuron).
      video_id: (trial,) label of the video each trial showed.
      burn_in, neuron_id: as :func:`video_correlation`.

    Returns:
      ``DataArray`` (neuron) named ``average_correlation``; attrs add ``n_videos``.
    """
    where = "video_average_correlation"
    p, r, burn_in = _paired(where, pred, responses, burn_in)
    vid = np.asarray(video_id)
    if vid.shape != (len(p),):
        raise DataError(
            f"{where}: video_id has shape {vid.shape}",
            field="video_id",
            expected=f"one label per trial: ({len(p)},)",
        )
    pa, ra = [], []
    for v in np.unique(vid):
        idx = np.flatnonzero(vid == v)
        if len({p[i].shape[0] for i in idx}) > 1:
            raise DataError(
                f"{where}: the repeats of video {v!r} have different lengths",
                field="video_id",
                expected="repeats of one video with equal frame counts",
            )
        pa.append(np.mean([p[i] for i in idx], axis=0)[burn_in:])
        ra.append(np.mean([r[i] for i in idx], axis=0)[burn_in:])
    pc, rc = np.concatenate(pa), np.concatenate(ra)
    out = _labelled(
        pearson(pc, rc),
        "average_correlation",
        neuron_id,
        burn_in,
        len(pc),
        "correlation of predictions and responses averaged over repeats of each video",
    )
    out.attrs["n_videos"] = len(pa)
    return out


def evaluate_video(
    pred, responses, *, burn_in: int = 0, video_id=None, truth=None, neuron_id=None
) -> xr.Dataset:
    """Per-neuron video scores as one ``xarray.Dataset`` over ``neuron``.

    Args:
      pred, responses: trials of (time, neuron) (predictions in the responses' units).
      burn_in: leading frames of every trial left out.
      video_id: optional (trial,) video labels: adds ``average_correlation``.
      truth: optional true noise-free rates, trials like ``responses``: adds
        ``truth_correlation``.
      neuron_id: labels.

    Returns:
      ``single_trial_correlation`` [, ``average_correlation``] [, ``truth_correlation``]
      (neuron); ``attrs`` hold the mean of each over neurons (NaNs ignored) and
      ``burn_in_frames``.
    """
    out = {
        "single_trial_correlation": video_correlation(
            pred, responses, burn_in=burn_in, neuron_id=neuron_id
        )
    }
    if video_id is not None:
        out["average_correlation"] = video_average_correlation(
            pred, responses, video_id, burn_in=burn_in, neuron_id=neuron_id
        )
    if truth is not None:
        tc = video_correlation(pred, truth, burn_in=burn_in, neuron_id=neuron_id)
        tc.attrs["what"] = "correlation of predictions and the true noise-free rates"
        out["truth_correlation"] = tc.rename("truth_correlation")
    ds = xr.Dataset(out)
    ds.attrs["burn_in_frames"] = int(burn_in)
    for k, v in out.items():
        ds.attrs[f"mean_{k}"] = (
            float(np.nanmean(v.values)) if np.isfinite(v.values).any() else np.nan
        )
    return ds


__all__ = ["evaluate_video", "video_average_correlation", "video_correlation"]
