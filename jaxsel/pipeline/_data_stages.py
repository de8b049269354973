"""Pipeline stages ``data`` (simulate the twin or load recordings) and ``select``
(reliability, tuning statistics and the selection rule)."""

from __future__ import annotations

import json

import numpy as np

from jaxsel._errors import ConfigError
from jaxsel.data import write_twin
from jaxsel.measures import save_table_csv, selection_table
from jaxsel.pipeline._context import Context, median, save_nc, spearman
from jaxsel.pipeline._rundir import write_json
from jaxsel.pipeline._session_config import twin_fields

#: Data options recorded in data/summary.json, metrics.json (``data_<key>``) and the log.
_LOGGED = ("crop", "split_seed", "stimulus", "qc", "final_test", "n_final_test", "behavior")


def data_options(cfg, ds) -> dict:
    """The data options that decided what was loaded (from the dataset's attrs, which the
    loaders set, so they say what was used), plus the optional per-trial variables found."""
    out: dict = {}
    src = cfg.data.source
    if src in ("allen", "table"):
        out["crop"] = str(ds.attrs.get("crop", cfg.data.crop))
        out["split_seed"] = int(ds.attrs.get("split_seed", cfg.data.split_seed))
    if src == "allen":
        out["stimulus"] = str(ds.attrs.get("stimulus", cfg.data.stimulus))
        qc = ds.attrs.get("qc")
        out["qc"] = (
            ", ".join(f"{c} {op} {t}" for c, (op, t) in json.loads(qc).items()) or "none"
            if isinstance(qc, str)
            else str(cfg.data.qc)
        )
    if src == "static":
        out["final_test"] = str(ds.attrs.get("final_test", cfg.data.final_test))
        out["n_final_test"] = int(ds.attrs.get("n_final_test", 0))
    found = [v for v in ("behavior", "pupil_center", "trial_idx") if v in ds.variables]
    if found:
        out["behavior"] = ", ".join(found)
    return out


def stage_data(ctx: Context) -> list[str]:
    """Simulate the twin (into ``data/``) or load the recordings; write a summary."""
    cfg = ctx.cfg
    out = ["data/summary.json"]
    if ctx.is_twin:
        ds, twin = write_twin(
            ctx.rd / "data", force=True, seed=cfg.run.seed, **twin_fields(cfg.data.twin)
        )
        ctx.cache["twin"] = twin
        ctx.cache.pop("dataset", None)  # reload from disk, as a resumed run would
        del ds
        out += ["data/static", "data/ground_truth"]
    ds = ctx.dataset()
    tiers = ds["tier"].values
    summary = {
        "name": str(ds.attrs.get("name", "")),
        "source": cfg.data.source,
        "n_neurons": int(ds.sizes["neuron"]),
        "n_trials": int(ds.sizes["trial"]),
        "image_shape": [int(ds.sizes[k]) for k in ("channel", "y", "x")],
        "trials_per_tier": {t: int((tiers == t).sum()) for t in ("train", "validation", "test")},
        "test_images": len(np.unique(ds["image_id"].values[tiers == "test"])),
        "response_mean": float(np.mean(ds["responses"].values)),
    }
    summary.update(data_options(ctx.cfg, ds))
    if "area" in ds.coords:
        a, c = np.unique(ds["area"].values.astype(str), return_counts=True)
        summary["areas"] = {str(k): int(v) for k, v in zip(a, c, strict=True)}
    twin = ctx.twin()
    if twin is not None:
        kinds, counts = np.unique(twin.kinds, return_counts=True)
        summary["twin_kinds"] = {str(k): int(v) for k, v in zip(kinds, counts, strict=True)}
        summary["twin_norm_budget"] = float(twin.meta["norm_budget"])
    (ctx.rd / "data").mkdir(exist_ok=True)
    write_json(ctx.rd / "data" / "summary.json", summary)
    options = {k: summary[k] for k in _LOGGED if k in summary}
    ctx.rd.update_metrics(
        n_neurons=summary["n_neurons"],
        n_trials=summary["n_trials"],
        **{f"data_{k}": v for k, v in options.items()},
    )
    ctx.log.info(
        f"  {summary['n_neurons']} neurons, {summary['n_trials']} trials "
        f"{summary['trials_per_tier']}, {summary['test_images']} test images"
    )
    if options:
        ctx.log.info("  data options: " + ", ".join(f"{k} = {v}" for k, v in options.items()))
    return out


def _describe(rule) -> str:
    """The selection rule in words (the config keys that decided it)."""
    parts = [f"{k} > {v:g}th percentile" for k, v in rule.percentiles.items()]
    parts += [f"{k} > {v:g}" for k, v in rule.minimums.items()]
    parts += [f"{k} < {v:g}" for k, v in rule.maximums.items()]
    if rule.exclude_outliers:
        parts.append("no outliers")
    return f"the rule [select] ({' and '.join(parts) or 'no criterion'}, on tier '{rule.tier}')"


def stage_select(ctx: Context) -> list[str]:
    """Reliability and tuning statistics of every neuron and the selection rule."""
    table = selection_table(ctx.dataset(), ctx.cfg.select)
    if int(table["selected"].sum()) == 0:  # nothing to train on: stop here, write nothing
        raise ConfigError(
            f"0 of {table.sizes['neuron']} neurons selected by {_describe(ctx.cfg.select)}; "
            "loosen select.percentiles (e.g. --set select.percentiles.oracle=0 "
            "--set select.percentiles.variance=0), select.minimums/maximums or "
            "select.exclude_outliers, or check that select.tier "
            f"'{ctx.cfg.select.tier}' has repeated images with varying responses"
        )
    twin = ctx.twin()
    metrics: dict[str, float] = {"n_selected": int(table["selected"].sum())}
    if twin is not None:
        order = np.searchsorted(twin.neuron_id, table["neuron_id"].values)
        table["true_oracle"] = ("neuron", np.asarray(twin.params["true_oracle"])[order])
        table["true_fev"] = ("neuron", np.asarray(twin.params["true_fev"])[order])
        table["kind"] = ("neuron", twin.kinds[order].astype(str))
        metrics["oracle_spearman_vs_truth"] = spearman(table["oracle"], table["true_oracle"])
        sel = table["selected"].values.astype(bool)
        metrics["selected_true_oracle_median"] = median(table["true_oracle"].values[sel])
        metrics["rejected_true_oracle_median"] = median(table["true_oracle"].values[~sel])
    save_nc(table, ctx.rd / "selection.nc")
    save_table_csv(table, ctx.rd / "selection.csv")
    ctx.cache["selection"] = table
    ctx.cache.pop("train_dataset", None)
    ctx.rd.update_metrics(**metrics)
    ctx.log.info(
        f"  selected {metrics['n_selected']} of {table.sizes['neuron']} neurons"
        + (
            f"; oracle vs truth Spearman {metrics['oracle_spearman_vs_truth']:.3f}"
            if "oracle_spearman_vs_truth" in metrics
            else ""
        )
    )
    return ["selection.nc", "selection.csv"]
