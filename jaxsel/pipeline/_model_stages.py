"""Pipeline stages ``train`` (fit each configured model, resumable) and ``evaluate``
(per-neuron test measures, truth correlation on the twin, selectivity)."""

from __future__ import annotations

import time

import numpy as np
import xarray as xr

from jaxsel._errors import ConfigError, DataError, TrainingError
from jaxsel.data import orientation_labels, unique_images
from jaxsel.measures import evaluate, pearson, selectivity, truth_correlation
from jaxsel.models import predict
from jaxsel.pipeline._config_schema import Config
from jaxsel.pipeline._context import Context, median, progress_mode, save_nc
from jaxsel.train import fit, named_config


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
        from jaxsel.data import unique_images
        from jaxsel.train import predict_responses, save_model

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
    ctx.rd.update_metrics(**metrics)
    return outputs


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
        metrics[f"{name}_test_corr_median"] = median(ev["test_correlation"])
        metrics[f"{name}_fraction_oracle"] = float(ev.attrs["fraction_oracle"])
        metrics[f"{name}_feve_median"] = median(ev["feve"])
        if "truth_correlation" in ev:
            metrics[f"{name}_corr_to_truth_median"] = median(ev["truth_correlation"])
            if kinds is not None:  # per cell kind (CNN vs LN on complex)
                for kind in ("simple", "complex", "suppressed"):
                    metrics[f"{name}_corr_to_truth_{kind}_median"] = median(
                        ev["truth_correlation"].values[kinds == kind]
                    )
    first, last = names[0], names[-1]
    alias = {"ln": first, "cnn": last}
    for role, name in alias.items():
        for k in (
            "test_corr_median",
            "corr_to_truth_median",
            "fraction_oracle",
            "feve_median",
            "corr_to_truth_simple_median",
            "corr_to_truth_complex_median",
        ):
            if f"{name}_{k}" in metrics:
                metrics[f"{role}_{k}"] = metrics[f"{name}_{k}"]
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
    outputs = ["evaluation.nc"]
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
    for name in names:  # the same statistic (median over neurons) as the train stage logs
        line = f"  '{name}': test correlation median {metrics[f'{name}_test_corr_median']:.3f}"
        if f"{name}_corr_to_truth_median" in metrics:
            line += (
                f", correlation to the truth median {metrics[f'{name}_corr_to_truth_median']:.3f}"
            )
        ctx.log.info(line + " (over neurons)")
    return outputs
