"""The pipeline stages: one function per stage, each a thin call into the library.

A stage reads what it needs through the :class:`Context` (which loads earlier stages'
outputs from the run folder, so a resumed run works), writes its outputs into the run
folder and returns their relative paths; :func:`run_pipeline` records a done-marker holding
the hash of the config sections the stage depends on (:data:`DEPENDS`). A stage whose
library is not installed/written yet raises :class:`StageUnavailable`; the run goes on
without it and the report says so.
"""

from __future__ import annotations

import importlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jaxsel.config import Config, STAGES, section_hash, to_toml
from jaxsel.errors import ConfigError, JaxselError
from jaxsel.pipeline.rundir import RunDir, write_json, write_text

# config sections whose values each stage's outputs depend on (cumulative over the chain)
DEPENDS = {
    "data": ("data", "run.seed"),
    "select": ("data", "select"),
    "train": ("data", "select", "train", "run.seed"),
    "evaluate": ("data", "select", "train", "evaluate", "run.seed"),
    "mei": ("data", "select", "train", "mei", "run.seed"),
    "gabor": ("data", "select", "train", "mei", "gabor", "run.seed"),
    "figures": ("data", "select", "train", "evaluate", "mei", "gabor", "report", "run.seed"),
    "report": ("data", "select", "train", "evaluate", "mei", "gabor", "report", "run.seed"),
}


# cheap stages that read everything before them: always redrawn
ALWAYS = ("figures", "report")


class StageUnavailable(JaxselError):
    """The library a stage calls is not available (yet)."""


def need(module: str, *names: str):
    """Import ``module`` and return its attributes ``names`` (StageUnavailable if absent)."""
    try:
        mod = importlib.import_module(module)
    except ImportError as err:
        raise StageUnavailable(f"{module} is not available ({err})") from None
    missing = [n for n in names if not hasattr(mod, n)]
    if missing:
        raise StageUnavailable(f"{module} has no {', '.join(missing)} yet")
    out = tuple(getattr(mod, n) for n in names)
    return out[0] if len(out) == 1 else out


def spearman(a, b) -> float:
    """Spearman rank correlation of two vectors over their finite pairs."""
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")

    def rank(x):
        order = np.argsort(x, kind="mergesort")
        r = np.empty(len(x))
        r[order] = np.arange(len(x))
        # average ties
        _, inv, cnt = np.unique(x, return_inverse=True, return_counts=True)
        sums = np.bincount(inv, r)
        return sums[inv] / cnt[inv]

    return float(np.corrcoef(rank(a[ok]), rank(b[ok]))[0, 1])


def median(x) -> float:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size else float("nan")


def save_nc(obj, path: Path) -> Path:
    """Save an xarray object as netCDF (h5netcdf) atomically; reopen with
    ``xarray.open_dataset(path, engine='h5netcdf')``."""
    import os

    import xarray as xr

    ds = obj.to_dataset(name=obj.name or "value") if isinstance(obj, xr.DataArray) else obj
    ds = ds.copy()
    for k, v in list(ds.attrs.items()):      # netCDF attrs: numbers/strings only
        if isinstance(v, (list, tuple, dict)) or v is None or isinstance(v, bool):
            ds.attrs[k] = json.dumps(v)
    for name in list(ds.variables):
        if ds[name].dtype == bool:
            ds[name] = ds[name].astype("int8")
            ds[name].attrs["dtype"] = "bool"
        elif ds[name].dtype.kind == "O":
            ds[name] = ds[name].astype(str)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    ds.to_netcdf(tmp, engine="h5netcdf")
    os.replace(tmp, path)
    return path


def open_nc(path: Path):
    """Reopen a file written by :func:`save_nc` (int8 'bool' variables restored)."""
    import xarray as xr

    with xr.open_dataset(path, engine="h5netcdf") as f:
        ds = f.load()
    for name in list(ds.variables):
        if ds[name].attrs.get("dtype") == "bool":
            attrs = {k: v for k, v in ds[name].attrs.items() if k != "dtype"}
            ds[name] = ds[name].astype(bool)
            ds[name].attrs.update(attrs)
    return ds


@dataclass
class Context:
    """What stages share: the config, the run folder and loaded objects (cached)."""

    cfg: Config
    rd: RunDir
    cache: dict = field(default_factory=dict)
    partial: bool = False          # set by a stage that ran without an optional input
    force: bool = False            # recompute (train from scratch)

    @property
    def log(self):
        return self.rd.log

    @property
    def is_twin(self) -> bool:
        return self.cfg.data.source == "twin"

    # ---------------------------------------------------------------- data
    def dataset(self):
        """The full dataset (every neuron)."""
        if "dataset" not in self.cache:
            self.cache["dataset"] = load_dataset(self.cfg, self.rd.path)
        return self.cache["dataset"]

    def twin(self):
        """The twin's ground truth, or None for recorded data."""
        if not self.is_twin:
            return None
        if "twin" not in self.cache:
            from jaxsel.data.twin import load_twin
            self.cache["twin"] = load_twin(self.rd / "data" / "ground_truth")
        return self.cache["twin"]

    def selection(self):
        """The selection table (neuron)."""
        if "selection" not in self.cache:
            self.cache["selection"] = open_nc(self.rd / "selection.nc")
        return self.cache["selection"]

    def selected_ids(self) -> np.ndarray:
        sel = self.selection()
        return sel["neuron_id"].values[sel["selected"].values.astype(bool)]

    def train_dataset(self):
        """The dataset restricted to the selected neurons (what the models see)."""
        if "train_dataset" not in self.cache:
            from jaxsel.data import subset
            self.cache["train_dataset"] = subset(self.dataset(), neurons=self.selected_ids())
        return self.cache["train_dataset"]

    def model(self, name: str):
        """``(fn, params)`` of the fitted model ``name`` (loaded from its run subfolder)."""
        key = f"model:{name}"
        if key not in self.cache:
            self.cache[key] = load_model(self, name)
        return self.cache[key]

    def twin_selected(self):
        """(fn, params) of the twin's truth for the selected neurons, or None."""
        twin = self.twin()
        if twin is None:
            return None
        import jax.numpy as jnp

        from jaxsel.data.twin import twin_rates
        idx = np.searchsorted(twin.neuron_id, self.selected_ids())
        params = {k: jnp.asarray(np.asarray(v)[idx]) for k, v in twin.params.items()}
        return twin_rates, params


def load_model(ctx: "Context", name: str):
    """``(fn, params)`` of a model fitted by the train stage (StageUnavailable if none)."""
    folder = ctx.rd / "models" / name
    if not folder.is_dir():
        raise StageUnavailable(f"model '{name}' has not been trained in this run")
    key = f"fit:{name}"
    if key not in ctx.cache:
        load_fit = need("jaxsel.train.fit", "load_fit")
        ctx.cache[key] = load_fit(folder)
    return ctx.cache[key].response_fn()


def check_data_paths(cfg: Config) -> None:
    """Raise ConfigError naming the key when a real-data source's files are missing."""
    d = cfg.data
    if d.source == "twin":
        return
    hint = f"\n  where to get it: {d.hint}" if d.hint else ""
    if not d.path:
        raise ConfigError(f"key 'data.path' is empty but data.source = '{d.source}' needs it: "
                          f"set it to the data file/folder{hint}")
    if not Path(d.path).exists():
        raise ConfigError(f"key 'data.path': {d.path} does not exist (data.source = "
                          f"'{d.source}'). Put the data there or edit data.path{hint}")
    if d.source in ("allen", "table"):
        if not d.images:
            raise ConfigError(f"key 'data.images' is empty but data.source = '{d.source}' "
                              f"needs the stimulus images{hint}")
        if not Path(d.images).exists():
            raise ConfigError(f"key 'data.images': {d.images} does not exist (the stimulus "
                              f"images of data.source = '{d.source}'){hint}")


def load_dataset(cfg: Config, run_path: Path):
    """Load the configured dataset (the twin from the run folder's ``data/static``)."""
    d = cfg.data
    if d.source == "twin":
        from jaxsel.data.static_folder import load_static
        return load_static(Path(run_path) / "data" / "static")
    check_data_paths(cfg)
    if d.source == "static":
        from jaxsel.data.static_folder import load_static
        return load_static(d.path)
    if d.source == "arrays":
        from jaxsel.data.arrays import load_arrays
        return load_arrays(d.path)
    if d.source == "table":
        from jaxsel.data.arrays import load_table
        return load_table(d.path, d.images, image_size=d.image_size, tiers=d.tiers,
                          seed=cfg.run.seed)
    if d.source == "allen":
        from jaxsel.data.allen_nwb import load_allen_nwb
        return load_allen_nwb(d.path, d.images, area=d.area or None, window=d.window,
                              tiers=d.tiers, seed=cfg.run.seed, image_size=d.image_size)
    raise ConfigError(f"key 'data.source': unknown source {d.source!r}")   # pragma: no cover


# =========================================================================== stages

def stage_data(ctx: Context) -> list[str]:
    """Simulate the twin (into ``data/``) or load the recordings; write a summary."""
    cfg = ctx.cfg
    out = ["data/summary.json"]
    if ctx.is_twin:
        from dataclasses import asdict

        from jaxsel.cli.simulate_cmd import write_twin
        ds, twin = write_twin(ctx.rd / "data", force=True, seed=cfg.run.seed,
                              **asdict(cfg.data.twin))
        ctx.cache["twin"] = twin
        ctx.cache.pop("dataset", None)         # reload from disk, as a resumed run would
        del ds
        out += ["data/static", "data/ground_truth"]
    ds = ctx.dataset()
    tiers = ds["tier"].values
    summary = {
        "name": str(ds.attrs.get("name", "")), "source": cfg.data.source,
        "n_neurons": int(ds.sizes["neuron"]), "n_trials": int(ds.sizes["trial"]),
        "image_shape": [int(ds.sizes[k]) for k in ("channel", "y", "x")],
        "trials_per_tier": {t: int((tiers == t).sum()) for t in ("train", "validation",
                                                                 "test")},
        "test_images": int(len(np.unique(ds["image_id"].values[tiers == "test"]))),
        "response_mean": float(np.mean(ds["responses"].values)),
    }
    if "area" in ds.coords:
        a, c = np.unique(ds["area"].values.astype(str), return_counts=True)
        summary["areas"] = {str(k): int(v) for k, v in zip(a, c)}
    twin = ctx.twin()
    if twin is not None:
        kinds, counts = np.unique(twin.kinds, return_counts=True)
        summary["twin_kinds"] = {str(k): int(v) for k, v in zip(kinds, counts)}
        summary["twin_norm_budget"] = float(twin.meta["norm_budget"])
    (ctx.rd / "data").mkdir(exist_ok=True)
    write_json(ctx.rd / "data" / "summary.json", summary)
    ctx.rd.update_metrics(n_neurons=summary["n_neurons"], n_trials=summary["n_trials"])
    ctx.log.info(f"  {summary['n_neurons']} neurons, {summary['n_trials']} trials "
                 f"{summary['trials_per_tier']}, {summary['test_images']} test images")
    return out


def stage_select(ctx: Context) -> list[str]:
    """Reliability and tuning statistics of every neuron and the selection rule."""
    selection_table, save_table_csv = need("jaxsel.measures.selection", "selection_table",
                                           "save_table_csv")
    table = selection_table(ctx.dataset(), ctx.cfg.select)
    twin = ctx.twin()
    metrics = {"n_selected": int(table["selected"].sum())}
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
    ctx.log.info(f"  selected {metrics['n_selected']} of {table.sizes['neuron']} neurons"
                 + (f"; oracle vs truth Spearman {metrics['oracle_spearman_vs_truth']:.3f}"
                    if "oracle_spearman_vs_truth" in metrics else ""))
    return ["selection.nc", "selection.csv"]


def fit_config(cfg: Config, name: str):
    """The training Config of model ``name``: its named config plus ``[train]`` overrides."""
    named_config = need("jaxsel.train.config", "named_config")
    ov = {**cfg.train.overrides, **cfg.train.per_model.get(name, {})}
    ov.setdefault("progress", cfg.run.progress)
    return named_config(name).replace(**ov)


def stage_train(ctx: Context) -> list[str]:
    """Fit each model of ``[train] models`` on the selected neurons (resumable)."""
    fit = need("jaxsel.train.fit", "fit")
    ds = ctx.train_dataset()
    outputs, metrics = [], {}
    for name in ctx.cfg.train.models:
        fcfg = fit_config(ctx.cfg, name)
        out = ctx.rd / "models" / name
        ctx.log.info(f"  fitting '{name}' ({fcfg.model.kind}) on {ds.sizes['neuron']} neurons,"
                     f" {int((ds['tier'].values == 'train').sum())} train trials")
        ts = time.time()
        if ctx.force or not out.exists():
            res = fit(fcfg, ds, seed=ctx.cfg.run.seed, out_dir=out, overwrite=True)
        else:
            try:
                res = fit(fcfg, ds, seed=ctx.cfg.run.seed, out_dir=out, resume=True)
            except ConfigError as err:         # another config/seed/data: start again
                ctx.log.info(f"  cannot resume ({err}); training from scratch")
                res = fit(fcfg, ds, seed=ctx.cfg.run.seed, out_dir=out, overwrite=True)
        save_nc(res.history, out / "history.nc")
        ctx.cache[f"fit:{name}"] = res
        ctx.cache.pop(f"model:{name}", None)
        metrics[f"{name}_best_val_corr"] = float(res.best_score)
        metrics[f"{name}_epochs"] = int(res.history.sizes.get("epoch", 0))
        metrics[f"{name}_train_seconds"] = round(time.time() - ts, 1)
        ctx.log.info(f"  '{name}': best validation correlation {res.best_score:.3f} at epoch "
                     f"{res.best_epoch} ({res.stopped}), {time.time() - ts:.0f} s")
        outputs += [f"models/{name}", f"models/{name}/history.nc"]
    ctx.rd.update_metrics(**metrics)
    return outputs


def stage_evaluate(ctx: Context) -> list[str]:
    """Per-neuron test measures of every model (+ correlation to the truth on the twin),
    and the orientation selectivity / information of the CNN (and the truth)."""
    evaluate = need("jaxsel.measures.evaluation", "evaluate")
    import xarray as xr
    ds = ctx.train_dataset()
    truth = ctx.twin_selected()
    twin = ctx.twin()
    kinds = None
    if twin is not None:
        kinds = twin.kinds[np.searchsorted(twin.neuron_id, ds["neuron_id"].values)]
    evs, names, metrics = [], [], {}
    for name in ctx.cfg.train.models:
        pair = ctx.model(name)                 # StageUnavailable if not trained
        ev = evaluate(pair, ds, truth=truth, min_fev=ctx.cfg.evaluate.fev_threshold)
        if kinds is not None:
            ev = ev.assign_coords(kind=("neuron", kinds.astype(str)))
        evs.append(ev)
        names.append(name)
        metrics[f"{name}_test_corr_median"] = median(ev["test_correlation"])
        metrics[f"{name}_fraction_oracle"] = float(ev.attrs["fraction_oracle"])
        metrics[f"{name}_feve_median"] = median(ev["feve"])
        if "truth_correlation" in ev:
            metrics[f"{name}_corr_to_truth_median"] = median(ev["truth_correlation"])
    first, last = names[0], names[-1]
    alias = {"ln": first, "cnn": last}
    for role, name in alias.items():
        for k in ("test_corr_median", "corr_to_truth_median", "fraction_oracle",
                  "feve_median"):
            if f"{name}_{k}" in metrics:
                metrics[f"{role}_{k}"] = metrics[f"{name}_{k}"]
    attrs = {f"{n}_fraction_oracle": float(e.attrs["fraction_oracle"])
             for n, e in zip(names, evs)}
    both = xr.concat([e.drop_attrs() if hasattr(e, "drop_attrs") else e for e in evs],
                     dim=xr.DataArray(names, dims="model", name="model"))
    both.attrs.update(attrs)
    save_nc(both, ctx.rd / "evaluation.nc")
    outputs = ["evaluation.nc"]
    # orientation selectivity and information of the CNN (twin: label = the neuron's true
    # preferred orientation is present in the test image)
    try:
        selectivity, orientation_labels, model_rates = need(
            "jaxsel.measures.selectivity", "selectivity", "orientation_labels", "model_rates")
        if twin is not None:
            from jaxsel.data import unique_images
            imgs = unique_images(ds, "test").values
            tidx = np.searchsorted(twin.neuron_id, ds["neuron_id"].values)
            labels = orientation_labels(imgs, np.asarray(twin.params["theta"])[tidx],
                                        np.asarray(twin.params["sf"])[tidx])
            sets = {"CNN": ctx.model(last), "truth": truth}
            tabs = [selectivity(model_rates(fn, p, imgs), labels) for fn, p in sets.values()]
            sel = xr.concat(tabs, dim=xr.DataArray(list(sets), dims="model", name="model"))
            save_nc(sel, ctx.rd / "selectivity.nc")
            outputs.append("selectivity.nc")
            info = sel["information"].sel(model="CNN").values
            metrics["cnn_information_median_bits"] = median(info)
            metrics["cnn_informative_neurons"] = int(np.sum(info >= 2 / 3))
    except StageUnavailable as err:
        ctx.log.info(f"  selectivity skipped: {err}")
    ctx.rd.update_metrics(**metrics)
    for k in ("ln_corr_to_truth_median", "cnn_corr_to_truth_median", "cnn_test_corr_median"):
        if k in metrics:
            ctx.log.info(f"  {k} = {metrics[k]:.3f}")
    return outputs


def _mei_config(ctx: Context):
    """The MEIConfig of ``[mei]``: its recipe with the data's constants, plus overrides."""
    recipes = importlib.import_module("jaxsel.insilico.recipes")
    m = ctx.cfg.mei
    ov = dict(m.overrides)
    ds = ctx.dataset()
    if m.recipe == "norm":
        twin = ctx.twin()
        if twin is not None:
            budget = float(twin.meta["norm_budget"]) * m.norm_fraction
            return recipes.norm(budget, **ov)
        from jaxsel.data import global_image_stats
        mu, sd = global_image_stats(ds)
        train = ds["images"].values[ds["tier"].values == "train"]
        c = ((train - mu) / sd).reshape(len(train), -1)
        budget = 0.15 * float(np.median(np.linalg.norm(c - c.mean(1, keepdims=True), axis=1)))
        return recipes.norm(budget * m.norm_fraction, background=mu, scale=sd, **ov)
    if m.recipe == "fens":
        from jaxsel.data import global_image_stats
        mu, sd = global_image_stats(ds)
        return recipes.fens(mu, sd, **ov)
    train = ds["images"].values[ds["tier"].values == "train"]
    return recipes.seed002(recipes.mean_image_std(train),
                           (float(train.min()), float(train.max())), **ov)


def _mei_neurons(ctx: Context) -> np.ndarray:
    """Indices (into the selected neurons) that get MEIs: all, or the n most reliable."""
    sel = ctx.selection()
    keep = sel["selected"].values.astype(bool)
    oracle = sel["oracle"].values[keep]
    n = len(oracle)
    if ctx.cfg.mei.n_neurons and ctx.cfg.mei.n_neurons < n:
        return np.sort(np.argsort(-np.nan_to_num(oracle, nan=-1.0))[: ctx.cfg.mei.n_neurons])
    return np.arange(n)


def _save_mei(res, ctx: Context, tag: str) -> list[str]:
    """MEI images to zarr, the rest (activation, trace) to netCDF."""
    from jaxsel.data.zarr_store import save_zarr
    (ctx.rd / "arrays").mkdir(exist_ok=True)
    save_zarr(res["mei"], ctx.rd / "arrays" / f"mei_{tag}.zarr", overwrite=True)
    save_nc(res.drop_vars("mei"), ctx.rd / f"mei_{tag}.nc")
    return [f"arrays/mei_{tag}.zarr", f"mei_{tag}.nc"]


def load_mei(run: Path, tag: str):
    """Reopen the MEI result ``tag`` ('model' or 'truth') of a run as one Dataset."""
    from jaxsel.data.zarr_store import load_zarr
    ds = open_nc(Path(run) / f"mei_{tag}.nc")
    mei = load_zarr(Path(run) / "arrays" / f"mei_{tag}.zarr")
    return ds.assign(mei=mei.reset_coords(drop=True))


def stage_mei(ctx: Context) -> list[str]:
    """MEIs of the CNN (and of the true neurons), gradient RFs, cross-activation, recovery."""
    optimize_meis, best_seed = need("jaxsel.insilico.mei", "optimize_meis", "best_seed")
    need("jaxsel.insilico.recipes", "norm", "fens", "seed002")
    gradient_rf = need("jaxsel.insilico.gradients", "gradient_rf")
    m = ctx.cfg.mei
    mcfg = _mei_config(ctx)
    ds = ctx.train_dataset()
    ids = ds["neuron_id"].values
    idx = _mei_neurons(ctx)
    shape = tuple(int(ds.sizes[k]) for k in ("channel", "y", "x"))
    mean_image = ds["image_mean"].values
    outputs, metrics = [], {}
    common = dict(config=mcfg, image_shape=shape, seeds=m.seeds, chunk_size=m.chunk_size,
                  seed=ctx.cfg.run.seed, neuron_id=ids[idx])
    model = None
    try:
        model = ctx.model(ctx.cfg.train.models[-1])
    except StageUnavailable as err:
        ctx.log.info(f"  no trained model ({err}); MEIs of the truth only")
        ctx.partial = True
    results = {}
    if model is not None:
        fn, params = model
        ctx.log.info(f"  model MEIs: {len(idx)} neurons x {m.seeds} seeds, {mcfg.steps} steps")
        results["model"] = best_seed(optimize_meis(fn, params, idx, **common))
        rf = gradient_rf(fn, params, mean_image, neurons=idx, neuron_id=ids[idx])
        from jaxsel.data.zarr_store import save_zarr
        (ctx.rd / "arrays").mkdir(exist_ok=True)
        save_zarr(rf, ctx.rd / "arrays" / "grad_rf_model.zarr", overwrite=True)
        outputs.append("arrays/grad_rf_model.zarr")
        try:
            cross_activation, diagonal_selectivity = need(
                "jaxsel.insilico.cross_activation", "cross_activation", "diagonal_selectivity")
            ca = cross_activation(fn, params, results["model"])
            save_nc(ca, ctx.rd / "cross_activation.nc")
            outputs.append("cross_activation.nc")
            metrics["cross_activation_diagonal_fraction"] = diagonal_selectivity(ca)
        except StageUnavailable as err:
            ctx.log.info(f"  cross-activation skipped: {err}")
        a = results["model"]["activation"].values
        from jaxsel.data import unique_images
        nat = unique_images(ds, "test").values
        from jaxsel.insilico.cross_activation import model_rates
        best_nat = model_rates(fn, params, nat)[:, idx].max(0)
        metrics["mei_vs_best_natural_model_ratio_median"] = median(a / np.maximum(best_nat,
                                                                                  1e-12))
    truth = ctx.twin_selected()
    if truth is not None and m.truth:
        tfn, tparams = truth
        ctx.log.info(f"  true-neuron MEIs: {len(idx)} neurons")
        results["truth"] = best_seed(optimize_meis(tfn, tparams, idx, **common))
        rf = gradient_rf(tfn, tparams, mean_image, neurons=idx, neuron_id=ids[idx])
        from jaxsel.data.zarr_store import save_zarr
        (ctx.rd / "arrays").mkdir(exist_ok=True)
        save_zarr(rf, ctx.rd / "arrays" / "grad_rf_truth.zarr", overwrite=True)
        outputs.append("arrays/grad_rf_truth.zarr")
    for tag, res in results.items():
        outputs += _save_mei(res, ctx, tag)
    twin = ctx.twin()
    if twin is not None and results:
        mei_recovery = need("jaxsel.insilico.recovery", "mei_recovery")
        from jaxsel.data import unique_images
        nat = unique_images(ds, "test").values
        tidx = np.searchsorted(twin.neuron_id, ids[idx])
        for tag, res in results.items():
            rec = mei_recovery(res, twin, tidx, natural_images=nat)
            save_nc(rec, ctx.rd / f"recovery_{tag}.nc")
            outputs.append(f"recovery_{tag}.nc")
            kinds = rec["kind"].values
            pre = "mei" if tag == "model" else "truemei"
            responsive = kinds != "unresponsive"
            metrics.update({
                f"{pre}_truth_r_simple_median": median(rec["pearson_r"].values[kinds == "simple"]),
                f"{pre}_truth_r_complex_median": median(
                    rec["phase_match"].values[kinds == "complex"]),
                f"{pre}_true_drive_fraction_median": median(
                    rec["frac_true_max"].values[responsive]),
                f"{pre}_vs_best_natural_ratio_median": median(
                    rec["natural_ratio"].values[responsive]),
            })
    if twin is None and "mei_vs_best_natural_model_ratio_median" in metrics:
        metrics["mei_vs_best_natural_ratio_median"] = \
            metrics["mei_vs_best_natural_model_ratio_median"]
    ctx.rd.update_metrics(**metrics)
    for k, v in metrics.items():
        ctx.log.info(f"  {k} = {v:.3f}")
    if not results:
        raise StageUnavailable("neither a trained model nor a ground truth to optimise")
    return outputs


def mei_budget(ctx: Context, mcfg=None) -> tuple[float, float, float]:
    """``(norm, background, scale)``: the contrast L2 budget shared by MEIs and Gabors."""
    mcfg = mcfg or _mei_config(ctx)
    if mcfg.norm is not None:
        return float(mcfg.norm), float(mcfg.offset), float(mcfg.scale)
    twin = ctx.twin()
    if twin is not None:
        return float(twin.meta["norm_budget"]), 127.5, 127.5
    from jaxsel.data import global_image_stats
    mu, sd = global_image_stats(ctx.dataset())
    x = ctx.dataset()["images"].values[:512]
    c = ((x - mu) / sd).reshape(len(x), -1)
    return 0.15 * float(np.median(np.linalg.norm(c - c.mean(1, keepdims=True), axis=1))), mu, sd


def stage_gabor(ctx: Context) -> list[str]:
    """Optimal Gabors of the CNN (and of the true neurons) at the MEI budget."""
    optimal_gabors, gabor_bank = need("jaxsel.insilico.gabor_search", "optimal_gabors",
                                      "gabor_bank")
    g = ctx.cfg.gabor
    ds = ctx.train_dataset()
    ids = ds["neuron_id"].values
    idx = _mei_neurons(ctx)
    shape = (int(ds.sizes["y"]), int(ds.sizes["x"]))
    norm, background, scale = mei_budget(ctx)
    bank = gabor_bank(shape, **g.bank)
    kw = dict(norm=norm, neurons=idx, neuron_id=ids[idx], bank=bank, steps=g.steps, lr=g.lr,
              background=background, scale=scale, channels=int(ds.sizes["channel"]))
    models = {}
    try:
        models["model"] = ctx.model(ctx.cfg.train.models[-1])
    except StageUnavailable as err:
        ctx.log.info(f"  no trained model ({err}); Gabors of the truth only")
        ctx.partial = True
    truth = ctx.twin_selected()
    if truth is not None and g.truth:
        models["truth"] = truth
    if not models:
        raise StageUnavailable("neither a trained model nor a ground truth to fit Gabors to")
    outputs, metrics = [], {}
    twin = ctx.twin()
    from jaxsel.data.zarr_store import save_zarr
    (ctx.rd / "arrays").mkdir(exist_ok=True)
    for tag, (fn, params) in models.items():
        ctx.log.info(f"  {tag} Gabors: {len(idx)} neurons, bank of {len(bank['x0'])}, "
                     f"{g.steps} steps")
        res = optimal_gabors(fn, params, shape, **kw)
        save_zarr(res["image"], ctx.rd / "arrays" / f"gabor_{tag}.zarr", overwrite=True)
        save_nc(res.drop_vars("image"), ctx.rd / f"gabor_{tag}.nc")
        outputs += [f"arrays/gabor_{tag}.zarr", f"gabor_{tag}.nc"]
        pre = "gabor" if tag == "model" else "truegabor"
        if (ctx.rd / f"mei_{tag}.nc").is_file():
            mei = load_mei(ctx.rd.path, tag)
            if np.array_equal(mei["neuron_id"].values, res["neuron_id"].values):
                metrics[f"{pre}_vs_mei_activation_ratio_median"] = median(
                    res["response"].values / np.maximum(mei["activation"].values, 1e-12))
                try:
                    best_natural_images, stimulus_comparison = need(
                        "jaxsel.insilico.image_metrics", "best_natural_images",
                        "stimulus_comparison")
                    from jaxsel.data import unique_images
                    nat = best_natural_images(fn, params, unique_images(ds, "test").values,
                                              neurons=idx)
                    comp = stimulus_comparison(
                        fn, params, {"mei": mei["mei"].values, "gabor": res["image"].values,
                                     "natural": nat["image"].values},
                        neurons=idx, neuron_id=ids[idx],
                        radius=float(2.0 * np.median(res["sigma"].values)),
                        centers=np.stack([res["x0"].values, res["y0"].values], 1))
                    save_nc(comp, ctx.rd / f"comparison_{tag}.nc")
                    outputs.append(f"comparison_{tag}.nc")
                    act = comp["activation"]
                    metrics[f"{pre}_mei_vs_natural_model_ratio_median"] = median(
                        act.sel(stimulus="mei").values
                        / np.maximum(act.sel(stimulus="natural").values, 1e-12))
                except StageUnavailable as err:
                    ctx.log.info(f"  image metrics skipped: {err}")
        if twin is not None:
            gabor_recovery = need("jaxsel.insilico.recovery", "gabor_recovery")
            tidx = np.searchsorted(twin.neuron_id, ids[idx])
            rec = gabor_recovery(res, twin, tidx)
            save_nc(rec, ctx.rd / f"gabor_recovery_{tag}.nc")
            outputs.append(f"gabor_recovery_{tag}.nc")
            kinds = rec["kind"].values
            oriented = np.isin(kinds, ("simple", "complex", "suppressed"))
            metrics[f"{pre}_orientation_error_deg_median"] = median(
                rec["theta_error_deg"].values[oriented])
            metrics[f"{pre}_sf_rel_error_median"] = median(rec["sf_rel_error"].values[oriented])
    ctx.rd.update_metrics(**metrics)
    for k, v in metrics.items():
        ctx.log.info(f"  {k} = {v:.3f}")
    return outputs


def stage_figures(ctx: Context) -> list[str]:
    """Draw every figure the run's outputs allow (see :mod:`jaxsel.pipeline.figures`)."""
    from jaxsel.pipeline.figures import draw_all
    entries = draw_all(ctx)
    return ["figures/index.json"] + [f"figures/{e['file']}" for e in entries]


def stage_report(ctx: Context) -> list[str]:
    """Write ``report.html`` from the run folder."""
    from jaxsel.pipeline.report import build_report
    write_json(ctx.rd / "stages" / "status.json", ctx.cache.get("status", {}))
    path = build_report(ctx.rd.path, title=ctx.cfg.report.title or ctx.cfg.run.name,
                        embed=ctx.cfg.report.embed_images)
    ctx.log.info(f"  report: {path}")
    return ["report.html"]


STAGE_FUNCS = {"data": stage_data, "select": stage_select, "train": stage_train,
               "evaluate": stage_evaluate, "mei": stage_mei,
               "gabor": stage_gabor, "figures": stage_figures, "report": stage_report}


# =========================================================================== runner

def _progress(iterable, enabled: bool, **kw):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm
    return tqdm(iterable, **kw)


def run_pipeline(cfg: Config, *, force: bool = False, stages=None, echo: bool = True) -> dict:
    """Run the configured stages in order, skipping finished ones.

    Args:
      cfg: the validated config.
      force: recompute finished stages.
      stages: restrict to these stage names (default ``cfg.run.stages``).
      echo: print the log to stdout too.

    Returns:
      ``{"run_dir": Path, "status": {stage: 'done'|'skipped'|'unavailable'|'not wired'},
      "metrics": dict}``.

    Raises:
      ConfigError: missing data paths, unwritable run folder.
    """
    check_data_paths(cfg)
    rd = RunDir(cfg.out_dir, echo=echo)
    t0 = time.time()
    status: dict[str, str] = {}
    try:
        write_text(rd / "config.toml", to_toml(cfg))
        rd.log.info(f"jaxsel run '{cfg.run.name}' -> {rd.path}")
        ctx = Context(cfg, rd)
        ctx.cache["status"] = status
        ctx.force = force
        wanted = [s for s in STAGES if s in (stages or cfg.run.stages)]
        for name in _progress(wanted, cfg.run.progress, desc="jaxsel", unit="stage"):
            key = section_hash(cfg, *DEPENDS[name])
            func = STAGE_FUNCS.get(name)
            if func is None:
                status[name] = "not wired"
                rd.log.info(f"[{name}] not wired yet: skipped")
                continue
            if not force and name not in ALWAYS and rd.is_done(name, key):
                status[name] = "skipped"
                rd.log.info(f"[{name}] finished earlier with this config: skipped")
                continue
            rd.clear(name)
            rd.log.info(f"[{name}] running")
            ts = time.time()
            ctx.partial = False
            rd.touched = set()
            try:
                outputs = func(ctx)
            except StageUnavailable as err:
                status[name] = "unavailable"
                rd.log.info(f"[{name}] not available yet: {err}")
                continue
            if ctx.partial:               # no marker: a rerun completes it
                status[name] = "partial"
                rd.log.info(f"[{name}] partly done in {time.time() - ts:.1f} s (reruns later)")
                continue
            rd.mark_done(name, key, outputs, seconds=time.time() - ts,
                         metrics=sorted(rd.touched))
            status[name] = "done"
            rd.log.info(f"[{name}] done in {time.time() - ts:.1f} s")
            rd.update_metrics(**{f"stage_seconds_{name}": round(time.time() - ts, 1)},
                              runtime_s=round(time.time() - t0, 1))
        runtime = time.time() - t0
        write_json(rd / "stages" / "status.json", status)
        metrics = rd.update_metrics(runtime_s=round(runtime, 1))
        rd.log.info(f"finished in {runtime:.1f} s; metrics: {rd.metrics_path}")
    finally:
        rd.close()
    return {"run_dir": rd.path, "status": status, "metrics": metrics}
