"""How well a multi-session model recovers the simulated twin's per-trial truth.

On sessions simulated with :func:`jaxsel.data.simulate_sessions` the truth of every trial is
known (:class:`jaxsel.data.SessionTruth` ``.trials``): the noise-free ``rates`` (trial,
neuron), each neuron's behavioural ``gain`` (trial, neuron) and the receptive-field shift
``rf_shift`` (trial, xy) in image pixels. :func:`session_predictions` collects the same three
quantities from a fitted :class:`jaxsel.train.MultiFitResult` on one tier:

* ``rates``: the model's rates with each trial's own behaviour and pupil centre;
* ``gain``: the modulator's gain ``exp(modulator(z-scored behaviour))`` (ones without one);
* ``rf_shift``: the shifter's readout shift converted from grid units to image pixels,
  ``dx = gx * (width - 1) / 2``, ``dy = gy * (height - 1) / 2`` (the readout grid spans the
  core's output map, which covers the image; zeros without a shifter). Sign convention:
  the model adds the shift to every neuron's readout position, the twin moves every
  receptive field by ``rf_shift``, so a correct shifter correlates positively.

The scores compare predictions to truth trial by trial (both labelled by ``session``):

* :func:`rates_truth_r`: per neuron, Pearson r over trials between predicted and true rates;
  ``median`` per session;
* :func:`shifter_truth_r`: per session and axis (``xy``), Pearson r over trials between the
  predicted and true shift (scale-free, so the grid-to-pixel factor does not matter);
* :func:`modulator_truth_r`: per session, Pearson r over trials x neurons between predicted
  and true log-gains after removing each neuron's mean log-gain (a per-neuron constant factor
  is not identifiable: the readout can absorb it); also the median over neurons of the
  per-neuron correlation over trials.

A prediction dataset that *is* the truth (``truth.trials``) scores 1 everywhere. A score
whose inputs do not vary (no shifter: a constant shift) is NaN.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from jaxsel._errors import DataError
from jaxsel.models import MultiModel
from jaxsel.train import MultiFitResult

TRUTH_VARS = ("rates", "gain", "rf_shift")


def _pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r per column (over rows); NaN where either column is constant."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a = a - a.mean(0)
    b = b - b.mean(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(0) / den
    return np.where(den > 1e-12, r, np.nan)


def session_predictions(
    result: MultiFitResult, sessions: dict, *, tier: str = "test"
) -> dict[str, xr.Dataset]:
    """A fitted multi-session model's per-trial rates, gains and RF shifts on one tier.

    Args:
      result: a fitted :class:`jaxsel.train.MultiFitResult`.
      sessions: ``{session id: dataset}`` (a subset of the model's sessions, with
        ``behavior`` / ``pupil_center`` when the model uses them).
      tier: the tier predicted.

    Returns:
      ``{session id: xarray.Dataset}`` with ``rates`` (trial, neuron), ``gain`` (trial,
      neuron) and ``rf_shift`` (trial, xy) in image pixels; the ``trial`` coord holds the
      trials' positions in the session dataset (what the truth is indexed by).
    """
    model = result.model
    scfg = model.scfg
    out = {}
    for sid, ds in sessions.items():
        if sid not in result.neuron_id:
            raise DataError(
                f"unknown session {sid!r}",
                field="sessions",
                expected=f"sessions of the fitted model: {result.sessions}",
            )
        idx = np.flatnonzero(ds["tier"].values == tier)
        if len(idx) < 2:
            raise DataError(
                f"session {sid!r} has {len(idx)} trials in tier {tier!r}",
                field="tier",
                expected="at least 2 trials in the tier",
            )
        st = result.standardizer[sid]
        b = p = None
        n = len(idx)
        if model.n_behavior:
            b = ds["behavior"].sel(behavior_var=list(scfg.behavior_vars)).values[idx]
        if scfg.shifter:
            p = ds["pupil_center"].values[idx]
        rates = result.predict(sid, ds["images"].values[idx], behavior=b, pupil_center=p)
        view, _ = MultiModel.view(result.params, result.state, sid)
        n_neurons = rates.shape[1]
        if scfg.behavior == "modulator" and b is not None:
            zb = (np.asarray(b, np.float32) - st["behavior_mean"]) / st["behavior_std"]
            gain = np.asarray(model.gain(view, zb))
        else:
            gain = np.ones((n, n_neurons), np.float32)
        if p is not None:
            zp = (np.asarray(p, np.float32) - st["pupil_mean"]) / st["pupil_std"]
            grid = np.asarray(model.shift(view, zp))
            _, h, w = result.image_shape[sid]
            shift = grid * np.array([(w - 1) / 2.0, (h - 1) / 2.0], np.float32)
        else:
            shift = np.zeros((n, 2), np.float32)
        out[sid] = xr.Dataset(
            {
                "rates": (("trial", "neuron"), np.asarray(rates, np.float32)),
                "gain": (("trial", "neuron"), gain.astype(np.float32)),
                "rf_shift": (("trial", "xy"), shift.astype(np.float32), {"units": "pixels"}),
            },
            coords={"trial": idx, "xy": ["x", "y"], "neuron_id": ("neuron", result.neuron_id[sid])},
            attrs={"tier": tier, "session": sid},
        )
    return out


def _truth_of(sid: str, pred: xr.Dataset, truth: dict, var: str) -> np.ndarray:
    """The truth's ``var`` on the prediction's trials."""
    if sid not in truth:
        raise DataError(
            f"no ground truth for session {sid!r}",
            field="truth",
            expected=f"a SessionTruth for every predicted session (have {sorted(truth)})",
        )
    t = truth[sid].trials[var]
    trial = pred["trial"].values if "trial" in pred.coords else np.arange(pred.sizes["trial"])
    out = np.asarray(t.values)[np.asarray(trial)]
    if out.shape != pred[var].shape:
        raise DataError(
            f"session {sid!r}: predicted {var} has shape {pred[var].shape}, truth {out.shape}",
            field=var,
            expected="predictions from the same session dataset as the truth",
        )
    return out


def rates_truth_r(predicted: dict, truth: dict) -> xr.Dataset:
    """Per-neuron correlation over trials of predicted and true (noise-free) rates.

    Args:
      predicted: ``{session id: dataset with rates (trial, neuron)}``
        (:func:`session_predictions`).
      truth: ``{session id: SessionTruth}``.

    Returns:
      ``xarray.Dataset``: ``correlation`` (neuron) with ``session`` and ``neuron_id``
      coords, and ``median`` (session): the median over the session's neurons.
    """
    corr, sess, ids, med = [], [], [], []
    for sid, pred in predicted.items():
        c = _pearson_columns(pred["rates"].values, _truth_of(sid, pred, truth, "rates"))
        corr.append(c)
        sess.append(np.full(len(c), sid, dtype=object))
        ids.append(
            np.asarray(pred["neuron_id"].values)
            if "neuron_id" in pred.coords
            else np.arange(len(c))
        )
        med.append(float(np.nanmedian(c)) if np.isfinite(c).any() else np.nan)
    units = "Pearson correlation over trials (dimensionless)"
    return xr.Dataset(
        {
            "correlation": ("neuron", np.concatenate(corr), {"units": units}),
            "median": ("session", np.asarray(med), {"units": units}),
        },
        coords={
            "session": list(predicted),
            "neuron_session": ("neuron", np.concatenate(sess).astype(str)),
            "neuron_id": ("neuron", np.concatenate(ids)),
        },
        attrs={"description": "model rates vs the twin's noise-free per-trial rates"},
    )


def shifter_truth_r(predicted: dict, truth: dict) -> xr.DataArray:
    """Correlation over trials of the predicted and true receptive-field shift, per axis.

    Args:
      predicted: ``{session id: dataset with rf_shift (trial, xy)}``.
      truth: ``{session id: SessionTruth}``.

    Returns:
      ``xarray.DataArray`` (session, xy) of Pearson r (NaN where a shift is constant, e.g.
      a model without shifter); the overall score is ``.mean()``.
    """
    rows = [
        _pearson_columns(pred["rf_shift"].values, _truth_of(sid, pred, truth, "rf_shift"))
        for sid, pred in predicted.items()
    ]
    return xr.DataArray(
        np.asarray(rows).reshape(len(rows), 2),
        dims=("session", "xy"),
        coords={"session": list(predicted), "xy": ["x", "y"]},
        attrs={"units": "Pearson correlation over trials (dimensionless)"},
        name="shifter_truth_r",
    )


def modulator_truth_r(predicted: dict, truth: dict) -> xr.Dataset:
    """Correlation of predicted and true behavioural log-gains.

    Args:
      predicted: ``{session id: dataset with gain (trial, neuron)}``.
      truth: ``{session id: SessionTruth}``.

    Returns:
      ``xarray.Dataset`` over ``session``: ``r`` (Pearson r over trials x neurons of the
      log-gains, each neuron's mean removed) and ``r_neuron_median`` (median over neurons
      of the per-neuron r over trials); NaN where the predicted gain is constant.
    """
    pooled, med = [], []
    for sid, pred in predicted.items():
        g = np.log(np.maximum(pred["gain"].values.astype(np.float64), 1e-12))
        t = np.log(np.maximum(_truth_of(sid, pred, truth, "gain").astype(np.float64), 1e-12))
        g = g - g.mean(0)
        t = t - t.mean(0)
        pooled.append(float(_pearson_columns(g.reshape(-1, 1), t.reshape(-1, 1))[0]))
        per = _pearson_columns(g, t)
        med.append(float(np.nanmedian(per)) if np.isfinite(per).any() else np.nan)
    units = "Pearson correlation (dimensionless)"
    return xr.Dataset(
        {
            "r": ("session", np.asarray(pooled), {"units": units}),
            "r_neuron_median": ("session", np.asarray(med), {"units": units}),
        },
        coords={"session": list(predicted)},
        attrs={"description": "log-gain vs the twin's true log-gain, per-neuron means removed"},
    )


def session_truth_metrics(
    result: MultiFitResult, sessions: dict, truth: dict, *, tier: str = "test"
) -> xr.Dataset:
    """All three truth scores of a multi-session model, per session.

    Args:
      result: a fitted :class:`jaxsel.train.MultiFitResult`.
      sessions: ``{session id: dataset}`` simulated by :func:`jaxsel.data.simulate_sessions`.
      truth: their ``{session id: SessionTruth}``.
      tier: the tier scored.

    Returns:
      ``xarray.Dataset`` over ``session``: ``rates_truth_r_median``, ``shifter_truth_r``
      (mean over x and y), ``shifter_truth_r_xy`` (session, xy), ``modulator_truth_r`` and
      ``modulator_truth_r_neuron_median``.
    """
    pred = session_predictions(result, sessions, tier=tier)
    rates = rates_truth_r(pred, truth)
    shift = shifter_truth_r(pred, truth)
    mod = modulator_truth_r(pred, truth)
    units = "Pearson correlation (dimensionless)"
    return xr.Dataset(
        {
            "rates_truth_r_median": ("session", rates["median"].values, {"units": units}),
            "shifter_truth_r": ("session", shift.mean("xy").values, {"units": units}),
            "shifter_truth_r_xy": (("session", "xy"), shift.values, {"units": units}),
            "modulator_truth_r": ("session", mod["r"].values, {"units": units}),
            "modulator_truth_r_neuron_median": (
                "session",
                mod["r_neuron_median"].values,
                {"units": units},
            ),
        },
        coords={"session": list(pred), "xy": ["x", "y"]},
        attrs={"tier": tier},
    )
