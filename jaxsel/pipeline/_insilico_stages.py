"""Pipeline stages ``mei`` (MEIs, gradient RFs, cross-activation, recovery against the
twin) and ``gabor`` (optimal Gabors, stimulus comparison)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from jaxsel._errors import MissingInput
from jaxsel.data import (
    BACKGROUND,
    SCALE,
    global_image_stats,
    load_zarr,
    norm_budget,
    save_zarr,
    to_contrast,
    unique_images,
)
from jaxsel.insilico import (
    best_natural_images,
    best_seed,
    cross_activation,
    diagonal_selectivity,
    gabor_bank,
    gabor_recovery,
    gradient_rf,
    mei_confidence,
    mei_recovery,
    optimal_gabors,
    optimize_meis,
    recipes,
    stimulus_comparison,
)
from jaxsel.models import predict
from jaxsel.pipeline._context import Context, median, open_nc, save_nc
from jaxsel.pipeline._model_stages import ensemble_model
from jaxsel.pipeline._recovery_metrics import (
    GABOR_PREFIX,
    MEI_PREFIX,
    confidence_metrics,
    gabor_recovery_metrics,
    mei_recovery_metrics,
)


def _mei_config(ctx: Context):
    """The MEIConfig of ``[mei]``: its recipe with the data's constants, plus overrides."""
    m = ctx.cfg.mei
    ov = dict(m.overrides)
    ds = ctx.dataset()
    recipe = recipes.resolve(m.recipe)
    if recipe == "norm":
        twin = ctx.twin()
        if twin is not None:
            budget = float(twin.meta["norm_budget"]) * m.norm_fraction
            return recipes.norm(budget, **ov)
        mu, sd = global_image_stats(ds)
        train = ds["images"].values[ds["tier"].values == "train"]
        budget = norm_budget(to_contrast(train, mu, sd), center=True)
        return recipes.norm(budget * m.norm_fraction, background=mu, scale=sd, **ov)
    if recipe == "mean_std":
        mu, sd = global_image_stats(ds)
        return recipes.mean_std(mu, sd, **ov)
    train = ds["images"].values[ds["tier"].values == "train"]
    return recipes.fft_preconditioned(
        recipes.mean_image_std(train), (float(train.min()), float(train.max())), **ov
    )


def _mei_neurons(ctx: Context) -> np.ndarray:
    """Indices (into the selected neurons) that get MEIs and Gabors: all, or ``[mei]
    n_neurons`` of them, the most reliable or a random sample (``[mei] sample``)."""
    sel = ctx.selection()
    keep = sel["selected"].values.astype(bool)
    oracle = sel["oracle"].values[keep]
    n = len(oracle)
    k = ctx.cfg.mei.n_neurons
    if not k or k >= n:
        return np.arange(n)
    if ctx.cfg.mei.sample == "random":
        return np.sort(np.random.default_rng(ctx.cfg.run.seed).choice(n, k, replace=False))
    return np.sort(np.argsort(-np.nan_to_num(oracle, nan=-1.0))[:k])


def _is_random(ctx: Context) -> int:
    """1 when the MEI neurons are a random sample of the selected ones, else 0."""
    n = int(ctx.selection()["selected"].values.astype(bool).sum())
    return int(ctx.cfg.mei.sample == "random" and 0 < ctx.cfg.mei.n_neurons < n)


def mei_sample_text(ctx: Context, n_mei: int) -> str:
    """Which selected neurons got MEIs, in words (recorded in metrics.json)."""
    n = int(ctx.selection()["selected"].values.astype(bool).sum())
    if n_mei >= n:
        return f"all {n} selected neurons"
    if ctx.cfg.mei.sample == "random":
        return f"a random sample of {n_mei} of {n} selected neurons (seed {ctx.cfg.run.seed})"
    return f"the {n_mei} most reliable of {n} selected neurons"


def _save_mei(res, ctx: Context, tag: str) -> list[str]:
    """MEI images to zarr, the rest (activation, trace) to netCDF."""
    out = _save_array(res["mei"], ctx, f"mei_{tag}")
    save_nc(res.drop_vars("mei"), ctx.rd / f"mei_{tag}.nc")
    return [out, f"mei_{tag}.nc"]


def _save_array(arr, ctx: Context, name: str) -> str:
    """Write an xarray DataArray to ``arrays/<name>.zarr``; returns the relative path."""
    (ctx.rd / "arrays").mkdir(exist_ok=True)
    save_zarr(arr, ctx.rd / "arrays" / f"{name}.zarr", overwrite=True)
    return f"arrays/{name}.zarr"


def load_mei(run: Path, tag: str):
    """Reopen the MEI result ``tag`` ('model' or 'truth') of a run as one Dataset."""
    ds = open_nc(Path(run) / f"mei_{tag}.nc")
    mei = load_zarr(Path(run) / "arrays" / f"mei_{tag}.zarr")
    assert isinstance(mei, xr.DataArray)  # written from the MEI DataArray (dims named)
    return ds.assign(mei=mei.reset_coords(drop=True))


def _insilico_models(ctx: Context, stage: str, want_truth: bool) -> dict:
    """``{"model": single CNN, "ensemble": ensemble mean (if [train] ensemble),
    "truth": the twin's true neurons (if wanted and available)}``; a missing CNN falls
    back to the truth alone (the stage is then partial)."""
    models: dict[str, Any] = {}
    truth = ctx.twin_selected() if want_truth else None
    try:
        models["model"] = ctx.model(ctx.cfg.train.models[-1])
        ens = ensemble_model(ctx)
        if ens is not None:
            models["ensemble"] = ens
    except MissingInput as err:
        if truth is None:
            raise MissingInput(
                f"{stage}: no trained model ({err}) and no twin ground truth to use instead"
            ) from None
        ctx.log.info(f"  no trained model ({err}); the truth only")
        ctx.partial = True
    if truth is not None:
        models["truth"] = truth
    return models


def stage_mei(ctx: Context) -> list[str]:
    """MEIs of the CNN (of the ensemble mean, and of the true neurons), with per-neuron
    confidence, gradient RFs, cross-activation and recovery against the truth."""
    m = ctx.cfg.mei
    mcfg = _mei_config(ctx)
    ds = ctx.train_dataset()
    ids = ds["neuron_id"].values
    idx = _mei_neurons(ctx)
    shape = tuple(int(ds.sizes[k]) for k in ("channel", "y", "x"))
    outputs: list[str] = []
    sample = mei_sample_text(ctx, len(idx))
    ctx.log.info(f"  MEIs and Gabors for {sample}")
    metrics: dict[str, Any] = {"mei_n_neurons": len(idx), "mei_sample_random": _is_random(ctx)}
    common: dict[str, Any] = dict(
        config=mcfg,
        image_shape=shape,
        seeds=m.seeds,
        chunk_size=m.chunk_size,
        seed=ctx.cfg.run.seed,
        neuron_id=ids[idx],
    )
    results = {}
    for tag, mdl in _insilico_models(ctx, "mei", m.truth).items():
        what = {"model": "model", "ensemble": "ensemble-mean", "truth": "true-neuron"}[tag]
        ctx.log.info(f"  {what} MEIs: {len(idx)} neurons x {m.seeds} seeds, {mcfg.steps} steps")
        fn, params = mdl
        raw = optimize_meis(fn, params, idx, progress=ctx.progress(f"{what} MEIs", "MEI"), **common)
        conf = mei_confidence(raw, mdl if tag == "ensemble" else None)
        results[tag] = best_seed(raw).merge(conf.drop_vars(list(conf.coords)))
        results[tag].attrs["neuron_sample"] = sample
        grf = gradient_rf(fn, params, ds["image_mean"].values, neurons=idx, neuron_id=ids[idx])
        outputs.append(_save_array(grf, ctx, f"grad_rf_{tag}"))
        if tag == "model":
            outputs += _model_mei_extras(ctx, (fn, params), results[tag], idx, metrics)
    for tag, res in results.items():
        outputs += _save_mei(res, ctx, tag)
    twin = ctx.twin()
    if twin is not None and results:
        nat = unique_images(ds, "test").values
        tidx = np.searchsorted(twin.neuron_id, ids[idx])
        for tag, res in results.items():
            rec = mei_recovery(res, twin, tidx, natural_images=nat)
            save_nc(rec, ctx.rd / f"recovery_{tag}.nc")
            outputs.append(f"recovery_{tag}.nc")
            metrics.update(mei_recovery_metrics(MEI_PREFIX[tag], rec))
            metrics.update(confidence_metrics(MEI_PREFIX[tag], res, rec))
    elif "ensemble" in results:
        metrics.update(confidence_metrics("ensemble_mei", results["ensemble"], None))
    if twin is None and "mei_vs_best_natural_model_ratio_median" in metrics:
        metrics["mei_vs_best_natural_ratio_median"] = metrics[
            "mei_vs_best_natural_model_ratio_median"
        ]
    ctx.rd.update_metrics(**metrics)
    for k, v in metrics.items():
        ctx.log.info(f"  {k} = {v:.3f}" if isinstance(v, float) else f"  {k} = {v}")
    return outputs


def _model_mei_extras(ctx: Context, model, res: xr.Dataset, idx, metrics: dict) -> list[str]:
    """Cross-activation of the CNN's MEIs and their rate relative to the best natural image."""
    fn, params = model
    ca = cross_activation(fn, params, res)
    save_nc(ca, ctx.rd / "cross_activation.nc")
    metrics["cross_activation_diagonal_fraction"] = diagonal_selectivity(ca)
    a = res["activation"].values
    nat = unique_images(ctx.train_dataset(), "test").values
    best_nat = predict((fn, params), nat)[:, idx].max(0)
    metrics["mei_vs_best_natural_model_ratio_median"] = median(a / np.maximum(best_nat, 1e-12))
    return ["cross_activation.nc"]


def mei_budget(ctx: Context, mcfg=None) -> tuple[float, float, float]:
    """``(norm, background, scale)``: the contrast L2 budget shared by MEIs and Gabors."""
    mcfg = mcfg or _mei_config(ctx)
    if mcfg.norm is not None:
        return float(mcfg.norm), float(mcfg.offset), float(mcfg.scale)
    twin = ctx.twin()
    if twin is not None:
        return float(twin.meta["norm_budget"]), BACKGROUND, SCALE
    mu, sd = global_image_stats(ctx.dataset())
    x = ctx.dataset()["images"].values[:512]
    return norm_budget(to_contrast(x, mu, sd), center=True), mu, sd


def stage_gabor(ctx: Context) -> list[str]:
    """Optimal Gabors of the CNN (and of the true neurons) at the MEI budget."""
    g = ctx.cfg.gabor
    ds = ctx.train_dataset()
    ids = ds["neuron_id"].values
    idx = _mei_neurons(ctx)
    shape = (int(ds.sizes["y"]), int(ds.sizes["x"]))
    norm, background, scale = mei_budget(ctx)
    bank = gabor_bank(shape, **g.bank)
    kw: dict[str, Any] = dict(
        norm=norm,
        neurons=idx,
        neuron_id=ids[idx],
        bank=bank,
        steps=g.steps,
        lr=g.lr,
        background=background,
        scale=scale,
        channels=int(ds.sizes["channel"]),
    )
    models = _insilico_models(ctx, "gabor", g.truth)
    outputs, metrics = [], {}
    twin = ctx.twin()
    for tag, (fn, params) in models.items():
        ctx.log.info(
            f"  {tag} Gabors: {len(idx)} neurons, bank of {len(bank['x0'])}, {g.steps} steps"
        )
        res = optimal_gabors(
            fn, params, shape, progress=ctx.progress(f"{tag} Gabors", "steps"), **kw
        )
        outputs.append(_save_array(res["image"], ctx, f"gabor_{tag}"))
        save_nc(res.drop_vars("image"), ctx.rd / f"gabor_{tag}.nc")
        outputs.append(f"gabor_{tag}.nc")
        pre = GABOR_PREFIX[tag]
        if (ctx.rd / f"mei_{tag}.nc").is_file():
            mei = load_mei(ctx.rd.path, tag)
            if np.array_equal(mei["neuron_id"].values, res["neuron_id"].values):
                metrics[f"{pre}_vs_mei_activation_ratio_median"] = median(
                    res["response"].values / np.maximum(mei["activation"].values, 1e-12)
                )
                nat = best_natural_images(fn, params, unique_images(ds, "test").values, neurons=idx)
                comp = stimulus_comparison(
                    fn,
                    params,
                    {
                        "mei": mei["mei"].values,
                        "gabor": res["image"].values,
                        "natural": nat["image"].values,
                    },
                    neurons=idx,
                    neuron_id=ids[idx],
                    radius=float(2.0 * np.median(res["sigma"].values)),
                    centers=np.stack([res["x0"].values, res["y0"].values], 1),
                )
                save_nc(comp, ctx.rd / f"comparison_{tag}.nc")
                outputs.append(f"comparison_{tag}.nc")
                act = comp["activation"]
                metrics[f"{pre}_mei_vs_natural_model_ratio_median"] = median(
                    act.sel(stimulus="mei").values
                    / np.maximum(act.sel(stimulus="natural").values, 1e-12)
                )
        if twin is not None:
            tidx = np.searchsorted(twin.neuron_id, ids[idx])
            rec = gabor_recovery(res, twin, tidx)
            save_nc(rec, ctx.rd / f"gabor_recovery_{tag}.nc")
            outputs.append(f"gabor_recovery_{tag}.nc")
            metrics.update(gabor_recovery_metrics(pre, rec))
    ctx.rd.update_metrics(**metrics)
    for k, v in metrics.items():
        ctx.log.info(f"  {k} = {v:.3f}" if isinstance(v, float) else f"  {k} = {v}")
    return outputs
