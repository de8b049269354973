"""Pipeline stages of a multi-session run (see :mod:`jaxsel.pipeline._session_config`).

* ``data``: simulate the twin's sessions into ``data/sessions`` and ``data/ground_truth``
  (:func:`jaxsel.data.write_twin_sessions`) or load the recordings
  (:func:`jaxsel.data.load_sessions`); ``data/summary.json`` per session;
* ``select``: nothing to do (every neuron of every session is trained; writes nothing);
* ``train``: :func:`jaxsel.train.fit_sessions` of each model of ``[train] models`` that can
  be shared across sessions, into ``models/<name>/`` (resumable);
* ``evaluate``: per-neuron test correlation per session (:func:`jaxsel.train.evaluate_sessions`)
  into ``session_evaluation.nc``; on the twin also the truth scores of
  :func:`jaxsel.measures.session_truth_metrics` into ``session_truth.nc``;
* ``information``, ``mei``, ``gabor``, ``figures``: not applicable yet (they analyse one
  population's model);
* ``report``: the common one (metrics and stage status).

metrics.json keys (``<name>`` = model, ``<sid>`` = session id; the unprefixed truth keys
are those of the last model, the CNN used in silico): ``n_sessions``, ``n_neurons``,
``n_trials``, ``<name>_best_val_corr``, ``<name>_epochs``, ``<name>_train_seconds``,
``<name>_test_corr_median`` (over all neurons), ``<name>_test_corr_median_<sid>``; twin:
``session_corr_to_truth_median_<sid>`` and ``session_corr_to_truth_median_min`` (median over
a session's neurons of the correlation of the model's per-trial test rates with the true
noise-free rates; the minimum over sessions), ``shifter_truth_r`` and ``modulator_truth_r``
(means over sessions; NaN without a shifter / modulator) and their ``<name>_`` versions.
"""

from __future__ import annotations

import time

import numpy as np
import xarray as xr

from jaxsel._errors import ConfigError, DataError, MissingInput
from jaxsel.data import load_sessions, load_twin_sessions, write_twin_sessions
from jaxsel.measures import session_truth_metrics
from jaxsel.pipeline._context import Context, median, save_nc
from jaxsel.pipeline._model_stages import fit_config
from jaxsel.pipeline._rundir import write_json
from jaxsel.pipeline._session_config import session_model_config, session_sources, twin_fields
from jaxsel.train import evaluate_sessions, fit_sessions, load_sessions_fit


def sessions(ctx: Context) -> dict:
    """``{session id: dataset}`` of the run (the twin's from ``data/sessions``)."""
    if "sessions" not in ctx.cache:
        if ctx.is_twin:
            ctx.cache["sessions"], ctx.cache["session_truth"] = load_twin_sessions(ctx.rd / "data")
        else:
            d = ctx.cfg.data
            ctx.cache["sessions"] = load_sessions(
                session_sources(ctx.cfg),
                require_repeats=d.require_repeats,
                final_test=d.final_test,
                allow_pickle=d.allow_pickle,
            )
    return ctx.cache["sessions"]


def session_truth(ctx: Context) -> dict | None:
    """``{session id: SessionTruth}`` on the twin, None for recordings."""
    if not ctx.is_twin:
        return None
    sessions(ctx)
    return ctx.cache["session_truth"]


def stage_session_data(ctx: Context) -> list[str]:
    """Simulate or load the sessions; write ``data/summary.json``."""
    cfg = ctx.cfg
    out = ["data/summary.json"]
    if ctx.is_twin:
        twin = cfg.data.twin
        s, t = write_twin_sessions(
            ctx.rd / "data",
            force=True,
            seed=cfg.run.seed,
            n_sessions=twin.n_sessions,
            **twin_fields(twin),
        )
        ctx.cache["sessions"], ctx.cache["session_truth"] = s, t
        out += ["data/sessions", "data/ground_truth"]
    per = {}
    for sid, ds in sessions(ctx).items():
        tiers = ds["tier"].values
        per[sid] = {
            "n_neurons": int(ds.sizes["neuron"]),
            "n_trials": int(ds.sizes["trial"]),
            "image_shape": [int(ds.sizes[k]) for k in ("channel", "y", "x")],
            "trials_per_tier": {
                t: int((tiers == t).sum()) for t in ("train", "validation", "test")
            },
            "trial_variables": [v for v in ("behavior", "pupil_center") if v in ds.variables],
        }
    summary = {
        "source": cfg.data.source,
        "n_sessions": len(per),
        "n_neurons": sum(p["n_neurons"] for p in per.values()),
        "n_trials": sum(p["n_trials"] for p in per.values()),
        "sessions": per,
    }
    (ctx.rd / "data").mkdir(exist_ok=True)
    write_json(ctx.rd / "data" / "summary.json", summary)
    ctx.rd.update_metrics(
        n_sessions=summary["n_sessions"],
        n_neurons=summary["n_neurons"],
        n_trials=summary["n_trials"],
    )
    for sid, p in per.items():
        ctx.log.info(
            f"  session {sid}: {p['n_neurons']} neurons, {p['n_trials']} trials "
            f"{p['trials_per_tier']}, {'+'.join(p['trial_variables']) or 'no behaviour'}"
        )
    return out


def stage_session_select(ctx: Context) -> list[str]:
    """Nothing to select: a multi-session run trains every neuron of every session.

    The stage finishes (writing nothing) rather than reporting "not applicable", so that a
    rerun skips it instead of invalidating the trained models after it."""
    ctx.log.info(
        "  multi-session run: every neuron of every session is trained (the [select] rule "
        "applies to single-recording runs)"
    )
    return []


def stage_session_insilico(ctx: Context) -> list[str]:
    """Not applicable yet: information, MEIs, Gabors and the figures analyse one population's
    model."""
    raise MissingInput(
        f"multi-session run: the '{ctx.stage}' stage analyses a single-session model "
        "(not implemented for sessions yet); use MultiFitResult.response_model(session) "
        "from the API"
    )


def session_models(ctx: Context) -> list[str]:
    """The models of ``[train] models`` a multi-session run fits (CNNs with a Gaussian
    readout); a ConfigError if there is none."""
    names = []
    for name in ctx.cfg.train.models:
        m = fit_config(ctx.cfg, name).model
        if m.kind == "cnn" and m.readout == "gaussian":
            names.append(name)
    if not names:
        raise ConfigError(
            f"key 'train.models' = {list(ctx.cfg.train.models)}: a multi-session run needs a "
            "CNN with a Gaussian readout (e.g. models = ['small'])"
        )
    return names


def _session_fit_config(ctx: Context, name: str):
    fcfg = fit_config(ctx.cfg, name)
    per = ctx.cfg.train.per_model.get(name, {})
    key = f"train.per_model.{name}.sessions" if "sessions" in per else "train.overrides.sessions"
    return fcfg.replace(sessions=session_model_config(fcfg.model.sessions, key))


def _fit(ctx: Context, fcfg, data: dict, out):
    seed = ctx.cfg.run.seed
    if ctx.force or not out.exists():
        return fit_sessions(fcfg, data, seed=seed, out_dir=out, overwrite=True)
    try:
        return fit_sessions(fcfg, data, seed=seed, out_dir=out, resume=True)
    except (ConfigError, DataError) as err:
        if isinstance(err, DataError) and "resume" not in str(err):
            raise
        ctx.log.info(f"  cannot resume ({err}); training from scratch")
        return fit_sessions(fcfg, data, seed=seed, out_dir=out, overwrite=True)


def stage_session_train(ctx: Context) -> list[str]:
    """Fit one shared-core model over all sessions per model name (resumable)."""
    data = sessions(ctx)
    skipped = [n for n in ctx.cfg.train.models if n not in session_models(ctx)]
    if skipped:
        ctx.log.info(f"  not fitted (no shared core): {', '.join(skipped)}")
    outputs, metrics = [], {}
    for name in session_models(ctx):
        fcfg = _session_fit_config(ctx, name)
        out = ctx.rd / "models" / name
        ctx.log.info(
            f"  fitting '{name}' on {len(data)} sessions, "
            f"{sum(d.sizes['neuron'] for d in data.values())} neurons ({fcfg.model.sessions})"
        )
        ts = time.time()
        res = _fit(ctx, fcfg, data, out)
        save_nc(res.history, out / "history.nc")
        ctx.cache[f"multi:{name}"] = res
        metrics[f"{name}_best_val_corr"] = float(res.best_score)
        metrics[f"{name}_epochs"] = int(res.history.sizes.get("epoch", 0))
        metrics[f"{name}_train_seconds"] = round(time.time() - ts, 1)
        ctx.log.info(
            f"  '{name}': validation correlation {res.best_score:.3f} (mean over sessions) at "
            f"epoch {res.best_epoch} ({res.stopped}), {time.time() - ts:.0f} s"
        )
        outputs += [f"models/{name}", f"models/{name}/history.nc"]
    ctx.rd.update_metrics(**metrics)
    return outputs


def _result(ctx: Context, name: str):
    key = f"multi:{name}"
    if key not in ctx.cache:
        folder = ctx.rd / "models" / name
        if not folder.is_dir():
            raise MissingInput(
                f"model '{name}' has not been trained in this run ({folder} is missing): "
                "run the 'train' stage first"
            )
        ctx.cache[key] = load_sessions_fit(folder)
    return ctx.cache[key]


def _truth_metrics(name: str, tm: xr.Dataset) -> dict:
    out: dict = {}
    med = tm["rates_truth_r_median"]
    for sid in tm["session"].values:
        out[f"{name}_session_corr_to_truth_median_{sid}"] = float(med.sel(session=sid))
    out[f"{name}_session_corr_to_truth_median_min"] = float(np.nanmin(med.values))
    for k in ("shifter_truth_r", "modulator_truth_r"):
        v = tm[k].values
        out[f"{name}_{k}"] = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
    return out


def stage_session_evaluate(ctx: Context) -> list[str]:
    """Test correlation per session and neuron; on the twin the truth scores."""
    data = sessions(ctx)
    truth = session_truth(ctx)
    evs, tms, names, metrics = [], [], [], {}
    for name in session_models(ctx):
        res = _result(ctx, name)
        ev = evaluate_sessions(res, data, tier="test")
        evs.append(ev)
        names.append(name)
        metrics[f"{name}_test_corr_median"] = median(ev["correlation"])
        for sid in data:
            metrics[f"{name}_test_corr_median_{sid}"] = median(
                ev["correlation"].values[ev["session"].values == sid]
            )
        if truth is not None:
            tm = session_truth_metrics(res, data, truth, tier="test")
            tms.append(tm)
            metrics.update(_truth_metrics(name, tm))
    model = xr.DataArray(names, dims="model", name="model")
    save_nc(xr.concat(evs, dim=model), ctx.rd / "session_evaluation.nc")
    outputs = ["session_evaluation.nc"]
    if tms:
        save_nc(xr.concat(tms, dim=model), ctx.rd / "session_truth.nc")
        outputs.append("session_truth.nc")
        last = names[-1]
        for k in [k for k in metrics if k.startswith(f"{last}_")]:
            rest = k.removeprefix(f"{last}_")
            if rest.startswith(("session_corr_to_truth", "shifter_truth", "modulator_truth")):
                metrics[rest] = metrics[k]
    ctx.rd.update_metrics(**metrics)
    for name in names:
        line = f"  '{name}': test correlation median {metrics[f'{name}_test_corr_median']:.3f}"
        if f"{name}_session_corr_to_truth_median_min" in metrics:
            line += (
                f", correlation to the truth median (worst session) "
                f"{metrics[f'{name}_session_corr_to_truth_median_min']:.3f}, shifter r "
                f"{metrics[f'{name}_shifter_truth_r']:.3f}, modulator r "
                f"{metrics[f'{name}_modulator_truth_r']:.3f}"
            )
        ctx.log.info(line)
    return outputs


#: the stage functions of a multi-session run (report: the common one)
SESSION_STAGE_FUNCS = {
    "data": stage_session_data,
    "select": stage_session_select,
    "train": stage_session_train,
    "evaluate": stage_session_evaluate,
    "information": stage_session_insilico,
    "mei": stage_session_insilico,
    "gabor": stage_session_insilico,
    "figures": stage_session_insilico,
}
