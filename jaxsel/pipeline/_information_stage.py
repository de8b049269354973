"""Pipeline stage ``information``: single-neuron information about a labelled attribute,
measured on the CNN and checked against the digital twin's truth.

The twin gets the oriented-patch set of :func:`jaxsel.data.oriented_patch_set` (label =
patch orientation; only neurons whose RF overlaps the patch and whose preferred orientation
is near a label orientation carry information). Per selected neuron, the exact information
(:func:`jaxsel.measures.rate_information`, bits) under the twin's own observation model
(Poisson / gamma-Poisson per neuron) of:

* ``true``: the twin's noise-free rates (the truth);
* ``estimated``: the trained CNN's predicted rates (the model's estimate);
* ``untrained``: the same CNN config initialised but not trained (before vs after).

Outputs: ``information.nc`` (neuron x source), ``information_noise.nc`` (the same vs the
input's Gaussian pixel-noise sd) and the metrics ``information_truth_spearman``,
``informative_neurons_true``, ``informative_neurons_estimated``,
``information_untrained_spearman``, ``information_shuffled_spearman`` (the CNN on shuffled
labels: the chance level of the Spearman) (+ ``informative_neurons_untrained`` and, at the
largest input noise, ``information_truth_spearman_noisiest`` and
``informative_neurons_true_noisiest``). Recorded data have no truth: the
stage is not applicable there.
"""

from __future__ import annotations

import math

import jax
import numpy as np

from jaxsel._errors import MissingInput
from jaxsel.data import oriented_patch_set, patch_alignment
from jaxsel.measures import (
    information_vs_input_noise,
    rank_correlation,
    rate_information,
    twin_noise,
)
from jaxsel.models import energy_positions, predict
from jaxsel.pipeline._context import Context, open_nc, save_nc
from jaxsel.viz import information_truth_figure


def untrained_pair(fit, dataset, seed: int):
    """``(fn, params)`` of a fitted model's config re-initialised as ``fit`` started:
    same standardizer, readout bias at the mean response, energy-based readout start when
    the config asks for it (no grid-mean predictor inputs: its positions stay as drawn)."""
    model = fit.model
    st = fit.standardizer
    train = dataset["tier"].values == "train"
    r = dataset["responses"].values[train] / np.asarray(st["response_scale"])
    mcfg = fit.config.model
    positions = None
    if mcfg.readout_init == "energy" and mcfg.kind == "cnn" and mcfg.grid_mean_predictor is None:
        x = dataset["images"].values[train]
        x = (x - np.asarray(st["image_mean"])) / np.asarray(st["image_std"])
        positions = energy_positions(np.asarray(x, np.float32), np.asarray(r, np.float32))
    source_grid = None
    if mcfg.grid_mean_predictor is not None and mcfg.kind == "cnn":
        dims = mcfg.grid_mean_predictor.input_dimensions
        names = ["cortex_x", "cortex_y", "cortex_z"][:dims]
        source_grid = np.stack([dataset[n].values for n in names], 1).astype(np.float32)
    params, state = model.init(
        jax.random.fold_in(jax.random.key(seed), 0),
        mean_response=np.asarray(r.mean(0), np.float32),
        source_grid=source_grid,
        positions=positions,
    )
    fn, trained = fit.response_fn()
    return fn, {**trained, "params": params, "state": state}


def _stimuli(ctx: Context, shape):
    c = ctx.cfg.information
    return oriented_patch_set(
        shape,
        c.n_per_class,
        theta=math.radians(c.theta_deg),
        aperture=c.aperture_fraction * shape[0],
        sf=c.sf,
        contrast=c.contrast,
        seed=ctx.cfg.run.seed,
    )


def _shuffled_spearman(ctx: Context, clean, stim, noise) -> float:
    """The chance level of ``information_truth_spearman``: the CNN's information about
    shuffled labels against the truth (information of a finite set tracks each neuron's
    response range, so this is well above 0)."""
    rates = predict(ctx.model(ctx.cfg.train.models[-1]), stim["images"].values)
    rng = np.random.default_rng(ctx.cfg.run.seed)
    labels = rng.permutation(stim["label"].values)
    info = rate_information(rates, labels, noise).values
    return rank_correlation(info, clean["information"].sel(source="true").values)


def stage_information(ctx: Context) -> list[str]:
    """Information of the truth, the trained and the untrained CNN; robustness to noise."""
    c = ctx.cfg.information
    twin = ctx.twin()
    if twin is None:
        raise MissingInput(
            "information: recorded data have no ground truth to label a stimulus set by "
            "(the truth check needs data.source = 'twin')"
        )
    if "zig_gate" in twin.params:
        raise MissingInput(
            "information: the twin's zero-inflated gamma observation model has no exact "
            "information model yet (a jaxsel.measures.ObservationModel); set "
            "data.twin.observation = 'counts'"
        )
    name = ctx.cfg.train.models[-1]
    models = {"true": ctx.twin_selected(), "estimated": ctx.model(name)}  # MissingInput
    ds = ctx.train_dataset()
    if c.untrained:
        models["untrained"] = untrained_pair(ctx.cache[f"fit:{name}"], ds, ctx.cfg.run.seed)
    ids = ds["neuron_id"].values
    tidx = np.searchsorted(twin.neuron_id, ids)
    p = {k: np.asarray(v)[tidx] for k, v in twin.params.items()}
    stim = _stimuli(ctx, twin.shape)
    noise = twin_noise(p["dispersion"])
    sigmas = sorted({0.0, *c.input_noise})
    ctx.log.info(
        f"  oriented-patch set: {stim.sizes['image']} images; information of "
        f"{', '.join(models)} for {len(ids)} neurons at input noise {sigmas}"
    )
    res = information_vs_input_noise(
        models,
        stim["images"].values,
        stim["label"].values,
        noise,
        sigmas,
        threshold=c.threshold,
        seed=ctx.cfg.run.seed,
        neuron_id=ids,
    )
    align = patch_alignment(stim, p["x0"], p["y0"], p["sigma"], p["theta"])
    res = res.assign_coords(
        kind=("neuron", twin.kinds[tidx].astype(str)), alignment=("neuron", align)
    )
    clean = res.sel(input_noise=0.0)
    save_nc(clean.drop_vars("input_noise"), ctx.rd / "information.nc")
    save_nc(res, ctx.rd / "information_noise.nc")
    metrics = {
        "information_truth_spearman": float(clean["spearman"].sel(source="estimated")),
        "informative_neurons_true": int(clean["informative"].sel(source="true")),
        "informative_neurons_estimated": int(clean["informative"].sel(source="estimated")),
    }
    if "untrained" in models:
        rho = float(clean["spearman"].sel(source="untrained"))
        if not np.isfinite(rho):  # the same information for every neuron: no ranking at all
            ctx.log.info("  the untrained model's information is constant: Spearman set to 0")
            rho = 0.0
        metrics["information_untrained_spearman"] = rho
        metrics["informative_neurons_untrained"] = int(clean["informative"].sel(source="untrained"))
    metrics["information_shuffled_spearman"] = _shuffled_spearman(ctx, clean, stim, noise)
    if len(sigmas) > 1:
        noisiest = res.isel(input_noise=-1)
        metrics["information_truth_spearman_noisiest"] = float(
            noisiest["spearman"].sel(source="estimated")
        )
        metrics["informative_neurons_true_noisiest"] = int(
            noisiest["informative"].sel(source="true")
        )
    ctx.rd.update_metrics(**metrics)
    for k, v in metrics.items():
        ctx.log.info(f"  {k} = {v:.3f}" if isinstance(v, float) else f"  {k} = {v}")
    return ["information.nc", "information_noise.nc"]


def fig_information_truth(ctx: Context):
    """The report figure of this stage (FileNotFoundError when the stage has not run)."""
    table = open_nc(ctx.rd / "information.nc")
    path = ctx.rd / "information_noise.nc"
    return information_truth_figure(table, open_nc(path) if path.is_file() else None)
