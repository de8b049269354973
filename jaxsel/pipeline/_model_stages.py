"""Pipeline stages ``train`` (fit each configured model, resumable) and ``evaluate``
(per-neuron test measures, truth correlation on the twin, selectivity)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from jaxsel._errors import ConfigError, DataError, MissingInput, TrainingError
from jaxsel.data import orientation_labels, unique_images
from jaxsel.measures import evaluate, pearson, selectivity, truth_correlation
from jaxsel.models import predict
from jaxsel.pipeline._config_schema import Config
from jaxsel.pipeline._context import Context, median, progress_mode, save_nc
from jaxsel.pipeline._tails import CORR_FAILS, tail_metrics
from jaxsel.train import (
    fit,
    fit_many,
    load_model,
    named_config,
    predict_responses,
    save_model,
)


def fit_config(cfg: Config, name: str):
    """The training Config of model ``name``: its named config plus ``[train]`` overrides."""
    ov = {**cfg.train.overrides, **cfg.train.per_model.get(name, {})}
    ov.setdefault("progress", progress_mode(cfg.run.progress) == "bar")  # no bars in logs
    return named_config(name).replace(**ov)


def stage_train(ctx: Context) -> list[str]:
    """Fit each model of ``[train] models`` on the selected neurons (resumable).

    Per model: ``models/<name>/`` (checkpoints, ``history.nc``), ``models/<name>/model/``
    (the self-contained saved model, ``jaxsel.load_model``) and
    ``models/<name>/test_predictions.nc`` (its rates for the raw test images).
    """
    ds = ctx.train_dataset()
    outputs, metrics = [], {}
    for name in ctx.cfg.train.models:
        fcfg = fit_config(ctx.cfg, name)
        out = ctx.rd / "models" / name
        ctx.log.info(
            f"  fitting '{name}' ({fcfg.model.kind}) on {ds.sizes['neuron']} neurons,"
            f" {int((ds['tier'].values == 'train').sum())} train trials"
        )
        ts = time.time()
        if ctx.force or not out.exists():
            res = fit(fcfg, ds, seed=ctx.cfg.run.seed, out_dir=out, overwrite=True)
        else:
            try:
                res = fit(fcfg, ds, seed=ctx.cfg.run.seed, out_dir=out, resume=True)
            except (ConfigError, DataError) as err:
                if isinstance(err, DataError) and "refusing to resume" not in str(err):
                    raise  # bad data, not a stale checkpoint
                # the checkpoint belongs to another config/seed/data: start again
                ctx.log.info(f"  cannot resume ({err}); training from scratch")
                res = fit(fcfg, ds, seed=ctx.cfg.run.seed, out_dir=out, overwrite=True)
            except TrainingError as err:
                if "--force" not in str(err):
                    raise
                raise TrainingError(
                    f"{err} (this stage alone: jaxsel run CONFIG --stages train --force)"
                ) from None
        save_nc(res.history, out / "history.nc")
        save_model(res, out / "model", dataset=ds, overwrite=True)
        test = unique_images(ds, "test")
        save_nc(
            predict_responses(out / "model", test.values, image_id=test["image_id"].values),
            out / "test_predictions.nc",
        )
        ctx.cache[f"fit:{name}"] = res
        ctx.cache.pop(f"model:{name}", None)
        val = ds["tier"].values == "validation"
        val_corr = pearson(res.predict(ds["images"].values[val]), ds["responses"].values[val])
        metrics[f"{name}_best_val_corr"] = float(res.best_score)
        metrics[f"{name}_val_corr_median"] = median(val_corr)
        metrics[f"{name}_epochs"] = int(res.history.sizes.get("epoch", 0))
        metrics[f"{name}_train_seconds"] = round(time.time() - ts, 1)
        ctx.log.info(
            f"  '{name}': validation correlation median {median(val_corr):.3f} over neurons "
            f"(mean {res.best_score:.3f}, the early-stopping score) at epoch "
            f"{res.best_epoch} ({res.stopped}), {time.time() - ts:.0f} s"
        )
        outputs += [
            f"models/{name}",
            f"models/{name}/history.nc",
            f"models/{name}/model",
            f"models/{name}/test_predictions.nc",
        ]
    if ctx.cfg.train.ensemble:
        outputs += _train_ensemble(ctx, ds, metrics)
    ctx.rd.update_metrics(**metrics)
    return outputs


def ensemble_dir(ctx: Context) -> Path:
    """``models/<name>_ensemble/``: the ensemble of the last model (the CNN)."""
    return ctx.rd / "models" / f"{ctx.cfg.train.models[-1]}_ensemble"


def ensemble_model(ctx: Context):
    """The ensemble-mean ResponseModel of ``[train] ensemble``, or None when it is off.

    Raises:
      MissingInput: the ensemble is configured but has not been trained in this run.
    """
    if not ctx.cfg.train.ensemble:
        return None
    key = "ensemble_model"
    if key not in ctx.cache:
        folder = ensemble_dir(ctx) / "model"
        if not folder.is_dir():
            raise MissingInput(
                f"the ensemble has not been trained in this run ({folder} is missing): "
                "run the 'train' stage first"
            )
        ctx.cache[key] = load_model(folder)
    return ctx.cache[key]


def _train_ensemble(ctx: Context, ds: xr.Dataset, metrics: dict) -> list[str]:
    """Fit ``[train] ensemble`` = K members of the last model with one ``fit_many`` (seeds
    run.seed .. run.seed + K - 1; resumable) and save their ensemble-mean model."""
    name = ctx.cfg.train.models[-1]
    k = int(ctx.cfg.train.ensemble)
    fcfg = fit_config(ctx.cfg, name)
    out = ensemble_dir(ctx)
    seeds = ctx.cfg.run.seed + np.arange(k)
    ctx.log.info(f"  fitting an ensemble of {k} '{name}' models (seeds {seeds.tolist()})")
    ts = time.time()
    kw: dict[str, Any] = dict(seeds=seeds, out_dir=out / "checkpoints")
    if ctx.force or not (out / "checkpoints").exists():
        many = fit_many(fcfg, ds, overwrite=True, **kw)
    else:
        try:
            many = fit_many(fcfg, ds, resume=True, **kw)
        except (ConfigError, DataError) as err:
            if isinstance(err, DataError) and "refusing to resume" not in str(err):
                raise
            ctx.log.info(f"  cannot resume the ensemble ({err}); training from scratch")
            many = fit_many(fcfg, ds, overwrite=True, **kw)
    save_nc(many.history, out / "history.nc")
    save_model(many, out / "model", dataset=ds, which="mean", overwrite=True)
    test = unique_images(ds, "test")
    save_nc(
        predict_responses(out / "model", test.values, image_id=test["image_id"].values),
        out / "test_predictions.nc",
    )
    ctx.cache.pop("ensemble_model", None)
    val = ds["tier"].values == "validation"
    ens = many.response_model("mean")
    val_corr = pearson(predict(ens, ds["images"].values[val]), ds["responses"].values[val])
    metrics["ensemble_members"] = k
    metrics["ensemble_val_corr_median"] = median(val_corr)
    metrics["ensemble_member_best_val_corr_mean"] = float(np.mean(many.best_score))
    metrics["ensemble_member_epochs_mean"] = float(np.mean(many.summary()["epochs"].values))
    metrics["ensemble_train_seconds"] = round(time.time() - ts, 1)
    ctx.log.info(
        f"  ensemble of {k}: validation correlation median {median(val_corr):.3f} over "
        f"neurons (members' early-stopping scores {np.round(many.best_score, 3).tolist()}), "
        f"{time.time() - ts:.0f} s"
    )
    rel = f"models/{out.name}"
    return [rel, f"{rel}/history.nc", f"{rel}/model", f"{rel}/test_predictions.nc"]


def _model_metrics(ev: xr.Dataset, kinds) -> dict:
    """Test and (twin) truth metrics of one model's evaluation, without the model prefix:
    medians, and for the correlation to the truth its bad tail and failure counts (over all
    selected neurons, and per cell kind)."""
    out = {
        "test_corr_median": median(ev["test_correlation"]),
        "fraction_oracle": float(ev.attrs["fraction_oracle"]),
        "feve_median": median(ev["feve"]),
    }
    if "truth_correlation" in ev:
        r = ev["truth_correlation"].values
        out.update(tail_metrics("corr_to_truth", r, below=CORR_FAILS))
        if kinds is not None:  # per cell kind (CNN vs LN on complex)
            for kind in ("simple", "complex", "suppressed"):
                out.update(tail_metrics(f"corr_to_truth_{kind}", r[kinds == kind]))
    return out


def stage_evaluate(ctx: Context) -> list[str]:
    """Per-neuron test measures of every model (+ correlation to the truth on the twin),
    and the orientation selectivity / information of the CNN (and the truth)."""
    ds = ctx.train_dataset()
    truth = ctx.twin_selected()
    twin = ctx.twin()
    kinds = None
    if twin is not None:
        kinds = twin.kinds[np.searchsorted(twin.neuron_id, ds["neuron_id"].values)]
    evs, names, metrics = [], [], {}
    per_name: dict[str, dict] = {}
    if twin is not None and kinds is not None:  # the ceiling: the truth as the predictor
        corr = truth_correlation(ds, twin).values[kinds != "unresponsive"]
        metrics["truth_single_trial_corr_median"] = median(corr)
        ctx.log.info(
            f"  the truth's own single-trial test correlation: median {median(corr):.3f} "
            "over responsive neurons"
        )
    for name in ctx.cfg.train.models:
        pair = ctx.model(name)  # MissingInput if not trained
        zig = fit_config(ctx.cfg, name).train.loss == "zig"  # loglik under the training loss
        ev = evaluate(
            pair,
            ds,
            truth=truth,
            min_fev=ctx.cfg.evaluate.fev_threshold,
            loss="zig" if zig else "poisson",
        )
        if kinds is not None:
            ev = ev.assign_coords(kind=("neuron", kinds.astype(str)))
        evs.append(ev)
        names.append(name)
        per_name[name] = _model_metrics(ev, kinds)
        metrics.update({f"{name}_{k}": v for k, v in per_name[name].items()})
    for role, name in {"ln": names[0], "cnn": names[-1]}.items():
        metrics.update({f"{role}_{k}": v for k, v in per_name[name].items()})
    last = names[-1]
    ens = ensemble_model(ctx)
    ens_outputs = []
    if ens is not None:
        ev = evaluate(ens, ds, truth=truth, min_fev=ctx.cfg.evaluate.fev_threshold)
        if kinds is not None:
            ev = ev.assign_coords(kind=("neuron", kinds.astype(str)))
        save_nc(ev, ctx.rd / "evaluation_ensemble.nc")
        ens_outputs.append("evaluation_ensemble.nc")
        metrics.update({f"ensemble_{k}": v for k, v in _model_metrics(ev, kinds).items()})
    attrs = {
        f"{n}_fraction_oracle": float(e.attrs["fraction_oracle"])
        for n, e in zip(names, evs, strict=True)
    }
    both = xr.concat(
        [e.drop_attrs() if hasattr(e, "drop_attrs") else e for e in evs],
        dim=xr.DataArray(names, dims="model", name="model"),
    )
    both.attrs.update(attrs)
    save_nc(both, ctx.rd / "evaluation.nc")
    outputs = ["evaluation.nc", *ens_outputs]
    # orientation selectivity and information of the CNN (twin: label = the neuron's true
    # preferred orientation is present in the test image)
    if twin is not None:
        imgs = unique_images(ds, "test").values
        tidx = np.searchsorted(twin.neuron_id, ds["neuron_id"].values)
        labels = orientation_labels(
            imgs, np.asarray(twin.params["theta"])[tidx], np.asarray(twin.params["sf"])[tidx]
        )
        sets = {"CNN": ctx.model(last), "truth": truth}
        tabs = [selectivity(predict(m, imgs), labels) for m in sets.values()]
        sel = xr.concat(tabs, dim=xr.DataArray(list(sets), dims="model", name="model"))
        save_nc(sel, ctx.rd / "selectivity.nc")
        outputs.append("selectivity.nc")
        info = sel["information"].sel(model="CNN").values
        metrics["cnn_information_median_bits"] = median(info)
        metrics["cnn_informative_neurons"] = int(np.sum(info >= 2 / 3))
    else:
        ctx.log.info(
            "  orientation selectivity: not applicable (recorded data have no "
            "ground-truth preferred orientation to label the images)"
        )
    ctx.rd.update_metrics(**metrics)
    # the same statistic (median over neurons) as the train stage logs
    for name in [*names, *(["ensemble"] if ens is not None else [])]:
        line = f"  '{name}': test correlation median {metrics[f'{name}_test_corr_median']:.3f}"
        if f"{name}_corr_to_truth_median" in metrics:
            line += (
                f", correlation to the truth median {metrics[f'{name}_corr_to_truth_median']:.3f}"
            )
        ctx.log.info(line + " (over neurons)")
    return outputs
