"""What the pipeline stages share: the :class:`Context` (config, run folder, loaded
objects), dataset loading and netCDF helpers. A stage that lacks an input (no trained
model, no ground truth) raises :class:`~jaxsel.MissingInput`."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import xarray as xr

from jaxsel._errors import ConfigError, DataError, MissingInput
from jaxsel.data import (
    load_allen_nwb,
    load_arrays,
    load_static,
    load_table,
    load_twin,
    subset,
    twin_rates,
)
from jaxsel.pipeline._config_schema import Config
from jaxsel.pipeline._rundir import RunDir
from jaxsel.train import load_fit


def spearman(a, b) -> float:
    """Spearman rank correlation of two vectors over their finite pairs (NaN if < 3 pairs
    or a constant vector)."""
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return float("nan")
    from scipy.stats import spearmanr

    # scipy's result decorator hides SignificanceResult from pyright
    return float(spearmanr(a[ok], b[ok]).statistic)  # pyright: ignore[reportAttributeAccessIssue]


def median(x) -> float:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size else float("nan")


def save_nc(obj, path: Path) -> Path:
    """Save an xarray object as netCDF (h5netcdf) atomically; reopen with
    ``xarray.open_dataset(path, engine='h5netcdf')``."""
    ds = obj.to_dataset(name=obj.name or "value") if isinstance(obj, xr.DataArray) else obj
    ds = ds.copy()
    for k, v in list(ds.attrs.items()):  # netCDF attrs: numbers/strings only
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


# which stage writes a run-folder file (by its name up to the first '_'), for the advice
_WRITER = {
    "selection": "select",
    "history": "train",
    "test": "train",
    "evaluation": "evaluate",
    "selectivity": "evaluate",
    "mei": "mei",
    "cross": "mei",
    "recovery": "mei",
    "gabor": "gabor",
    "comparison": "gabor",
}


def open_nc(path: Path):
    """Reopen a file written by :func:`save_nc` (int8 'bool' variables restored).

    Raises:
      FileNotFoundError: no such file.
      DataError: the file is damaged (the message names it and the stage to rerun).
    """
    path = Path(path)
    try:
        with xr.open_dataset(path, engine="h5netcdf") as f:
            ds = f.load()
    except FileNotFoundError:
        raise
    except Exception as err:
        stage = _WRITER.get(path.name.split("_")[0].removesuffix(".nc"), "")
        again = (
            f"jaxsel run CONFIG --stages {stage} --force"
            if stage
            else "rerun the stage that writes it with --force"
        )
        first = (str(err).strip().splitlines() or [""])[0][:120]
        raise DataError(
            f"cannot read it ({type(err).__name__}: {first})",
            file=path,
            expected=f"a netCDF file written by jaxsel; recompute it: {again}",
        ) from None
    for name in list(ds.variables):
        if ds[name].attrs.get("dtype") == "bool":
            attrs = {k: v for k, v in ds[name].attrs.items() if k != "dtype"}
            ds[name] = ds[name].astype(bool)
            ds[name].attrs.update(attrs)
    return ds


def progress_mode(enabled: bool) -> str | None:
    """How progress is shown: ``'bar'`` (tqdm bars; stdout and stderr are terminals),
    ``'lines'`` (plain log lines, no control characters: output redirected or captured) or
    None (``run.progress = false``)."""
    if not enabled:
        return None
    try:
        tty = sys.stdout.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        tty = False
    return "bar" if tty else "lines"


class StageProgress:
    """A ``progress(done, total)`` callback for a stage's long loop.

    ``'bar'`` mode: a tqdm bar (left on screen only while it runs). ``'lines'`` mode: a
    plain log line such as ``[mei] model MEIs: 120/300 MEI, 12.3 s`` at most every
    ``every`` seconds and at the end. None: nothing.
    """

    def __init__(self, log, prefix: str, what: str, unit: str, mode: str | None, every=10.0):
        self.log, self.prefix, self.what, self.unit = log, prefix, what, unit
        self.mode, self.every = mode, every
        self.t0 = self.last = time.time()
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if self.mode == "bar":
            if self.bar is None:
                from tqdm.auto import tqdm

                self.bar = tqdm(
                    total=total, desc=f"{self.prefix} {self.what}", unit=self.unit, leave=False
                )
            self.bar.update(done - self.bar.n)
            if done >= total:
                self.close()
        elif self.mode == "lines":
            now = time.time()
            if done >= total or now - self.last >= self.every:
                self.last = now
                self.log.info(
                    f"{self.prefix} {self.what}: {done}/{total} {self.unit}, {now - self.t0:.1f} s"
                )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@dataclass
class Context:
    """What stages share: the config, the run folder and loaded objects (cached)."""

    cfg: Config
    rd: RunDir
    cache: dict = field(default_factory=dict)
    partial: bool = False  # set by a stage that ran without an optional input
    force: bool = False  # recompute (train from scratch)
    stage: str = ""  # the stage running now (progress lines name it)

    @property
    def log(self):
        return self.rd.log

    def progress(self, what: str, unit: str) -> StageProgress:
        """A ``progress(done, total)`` callback for the current stage's loop over ``unit``."""
        return StageProgress(
            self.log, f"[{self.stage}]", what, unit, progress_mode(self.cfg.run.progress)
        )

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
        idx = np.searchsorted(twin.neuron_id, self.selected_ids())
        params = {k: jnp.asarray(np.asarray(v)[idx]) for k, v in twin.params.items()}
        return twin_rates, params


def load_model(ctx: Context, name: str):
    """``(fn, params)`` of a model fitted by the train stage.

    Raises:
      MissingInput: the run folder holds no trained model ``name``.
    """
    folder = ctx.rd / "models" / name
    if not folder.is_dir():
        raise MissingInput(
            f"model '{name}' has not been trained in this run ({folder} is "
            "missing): run the 'train' stage first"
        )
    key = f"fit:{name}"
    if key not in ctx.cache:
        ctx.cache[key] = load_fit(folder)
    return ctx.cache[key].response_fn()


def check_data_paths(cfg: Config) -> None:
    """Raise ConfigError naming the key when a real-data source's files are missing."""
    d = cfg.data
    if d.source == "twin":
        return
    hint = f"\n  where to get it: {d.hint}" if d.hint else ""
    if not d.path:
        raise ConfigError(
            f"key 'data.path' is empty but data.source = '{d.source}' needs it: "
            f"set it to the data file/folder{hint}"
        )
    if not Path(d.path).exists():
        raise ConfigError(
            f"key 'data.path': {d.path} does not exist (data.source = "
            f"'{d.source}'). Put the data there or edit data.path{hint}"
        )
    if d.source in ("allen", "table"):
        if not d.images:
            raise ConfigError(
                f"key 'data.images' is empty but data.source = '{d.source}' "
                f"needs the stimulus images{hint}"
            )
        if not Path(d.images).exists():
            raise ConfigError(
                f"key 'data.images': {d.images} does not exist (the stimulus "
                f"images of data.source = '{d.source}'){hint}"
            )


def load_dataset(cfg: Config, run_path: Path):
    """Load the configured dataset (the twin from the run folder's ``data/static``)."""
    d = cfg.data
    if d.source == "twin":
        return load_static(Path(run_path) / "data" / "static")
    check_data_paths(cfg)
    if d.source == "static":
        return load_static(
            d.path,
            final_test=d.final_test,
            require_repeats=d.require_repeats,
            allow_pickle=d.allow_pickle,
        )
    if d.source == "arrays":
        return load_arrays(d.path, require_repeats=d.require_repeats)
    if d.source == "table":
        return load_table(
            d.path,
            d.images,
            image_size=d.image_size,
            crop=d.crop,
            tiers=d.tiers,
            seed=d.split_seed,
        )
    if d.source == "allen":
        return load_allen_nwb(
            d.path,
            d.images,
            area=d.area or None,
            window=d.window,
            qc=d.qc,
            tiers=d.tiers,
            seed=d.split_seed,
            image_size=d.image_size,
            crop=d.crop,
            stimulus=d.stimulus,
            require_repeats=d.require_repeats,
        )
    raise ConfigError(f"key 'data.source': unknown source {d.source!r}")  # pragma: no cover
