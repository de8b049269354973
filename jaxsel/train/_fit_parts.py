"""Pieces shared by :func:`jaxsel.fit` and :func:`jaxsel.fit_many`.

* :func:`resolve_config` — a Config from a Config, a named config or a dict;
* :func:`prepare_data` — validate, add statistics, fingerprint, standardize the train and
  validation tiers (:class:`TrainData`);
* :func:`source_grid`, :func:`initial_positions` — readout initialisation inputs;
* :func:`open_run` — the checkpoint lookup of a run directory (resume / overwrite / refuse);
  :func:`resume_tree` — that lookup and the restore; :func:`check_resumable` — the config and
  seed checks of a resume;
* :func:`compiled_step` — the jitted single-model step and predict, from the one compile
  cache;
* :func:`config_diff`, :func:`history_dataset`, :func:`progress_bar`.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np
import xarray as xr

from jaxsel._checks import check_int
from jaxsel._compile_cache import cached
from jaxsel._errors import ConfigError, DataError, TrainingError
from jaxsel.data import Standardizer, tier_arrays, validate, with_statistics
from jaxsel.data import fingerprint as data_fingerprint
from jaxsel.data import standardizer as make_standardizer
from jaxsel.models import Model
from jaxsel.train._checkpoint import (
    all_epochs,
    checkpoint_dir,
    latest_epoch,
    read_meta,
    restore_newest,
)
from jaxsel.train._config import RESUMABLE_FIELDS, Config, named_config
from jaxsel.train._step import make_optimizer, make_predict, make_train_step

HISTORY_VARS = ("loss", "objective", "reg", "val_correlation", "lr", "seconds")


def check_fit_args(
    where: str,
    dataset,
    *,
    max_epochs=None,
    progress=None,
    out_dir=None,
    resume=False,
    overwrite=False,
) -> None:
    """The arguments ``fit`` and ``fit_many`` share, checked before any work starts."""
    if not isinstance(dataset, xr.Dataset):
        raise DataError(
            f"{where}: dataset is a {type(dataset).__module__}.{type(dataset).__name__}",
            field="dataset",
            expected="an xarray.Dataset with images, responses and tiers: build one with "
            "jaxsel.make_dataset(images, responses, image_id=..., tier=...) or load one "
            "with jaxsel.load_static / load_arrays / load_table / simulate",
        )
    if max_epochs is not None:
        check_int(where, "max_epochs", max_epochs, minimum=1)
    for name, v in (("progress", progress), ("resume", resume), ("overwrite", overwrite)):
        if v is not None and not isinstance(v, (bool, np.bool_)):
            raise ConfigError(f"{where}: {name} = {v!r}: expected True or False")
    if out_dir is not None and not isinstance(out_dir, (str, Path)):
        raise ConfigError(
            f"{where}: out_dir = {out_dir!r}: expected a folder path (str or Path) or None"
        )


def check_max_epochs(where: str, cfg: Config) -> None:
    """A config that would train no epoch is a mistake, not an untrained model."""
    if cfg.train.max_epochs < 1:
        raise ConfigError(
            f"{where}: train.max_epochs = {cfg.train.max_epochs}: expected an integer >= 1 "
            "(0 trains nothing and returns the initial model); pass max_epochs=N"
        )


def resolve_config(config) -> Config:
    """A :class:`Config` from a Config, a named config (``"small"``, ...) or a dict."""
    if isinstance(config, Config):
        return config
    if isinstance(config, str):
        return named_config(config)
    if isinstance(config, dict):
        return Config.from_dict(config)
    raise ConfigError(
        f"config must be a Config, a named config or a dict (got {type(config).__name__})"
    )


@dataclass
class TrainData:
    """A validated dataset's standardized train and validation tiers.

    Attributes:
      ds: the dataset (with ``response_std`` statistics).
      fingerprint: its fingerprint.
      standardizer: the :func:`jaxsel.data.standardizer` fitted on it.
      x_train, r_train, x_val, r_val: standardized float32 images and responses.
      image_shape: (channel, y, x).
      neuron_id: (neuron,) ids.
    """

    ds: xr.Dataset
    fingerprint: str
    standardizer: Standardizer
    x_train: np.ndarray
    r_train: np.ndarray
    x_val: np.ndarray
    r_val: np.ndarray
    image_shape: tuple
    neuron_id: np.ndarray

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    def standardizer_arrays(self) -> dict:
        """``{"image_mean", "image_std", "response_scale"}`` as float32 NumPy arrays."""
        st = self.standardizer
        return {
            "image_mean": np.asarray(st.image_mean, np.float32),
            "image_std": np.asarray(st.image_std, np.float32),
            "response_scale": np.asarray(st.response_scale, np.float32),
        }


def prepare_data(dataset: xr.Dataset, train) -> TrainData:
    """Validate ``dataset`` (train and validation tiers), add its statistics if missing and
    standardize both tiers as ``train`` (a TrainConfig) asks."""
    ds = dataset
    validate(ds, require_tiers=("train", "validation"), require_repeats=False)
    if "response_std" not in ds:
        ds = with_statistics(ds)
    check_nonnegative(ds, train.loss)
    fp = data_fingerprint(ds)
    st = make_standardizer(ds, per_pixel=train.per_pixel, scale_responses=train.scale_responses)
    x_train, r_train = tier_arrays(ds, "train")
    x_val, r_val = tier_arrays(ds, "validation")
    return TrainData(
        ds=ds,
        fingerprint=fp,
        standardizer=st,
        x_train=np.asarray(st.images(x_train), np.float32),
        r_train=np.asarray(st.responses(r_train), np.float32),
        x_val=np.asarray(st.images(x_val), np.float32),
        r_val=np.asarray(st.responses(r_val), np.float32),
        image_shape=tuple(ds.sizes[d] for d in ("channel", "y", "x")),
        neuron_id=ds["neuron_id"].values,
    )


def check_nonnegative(ds: xr.Dataset, loss: str) -> None:
    """The Poisson, Gamma and ZIG losses take non-negative responses (their likelihoods are
    unbounded below for a negative one); a DataError names the neurons and the fix."""
    if loss not in ("poisson", "gamma", "zig"):
        return
    r = ds["responses"].values[ds["tier"].values == "train"]
    bad = np.asarray(ds["neuron_id"].values)[(r < 0).any(axis=0)].tolist()
    if bad:
        ids = ", ".join(map(str, bad[:8])) + (", ..." if len(bad) > 8 else "")
        raise DataError(
            f"{len(bad)} of {r.shape[1]} neurons have negative train-tier responses "
            f"(neuron_id {ids}; the smallest {float(r.min()):g}), which the {loss} loss "
            "cannot fit",
            file=ds.attrs.get("source") or None,
            field="responses",
            expected="non-negative spike counts, or a loss that allows negative responses: "
            "set train.overrides.loss = 'mse' in the run config (API: "
            "config.replace(loss='mse'), TrainConfig(loss='mse'))",
        )


def source_grid(ds: xr.Dataset, cfg: Config):
    """(neuron, d) cortical coordinates for a grid-mean predictor, else None."""
    gmp = cfg.model.grid_mean_predictor
    if gmp is None or cfg.model.kind != "cnn" or cfg.model.readout != "gaussian":
        return None
    names = ["cortex_x", "cortex_y", "cortex_z"][: gmp.input_dimensions]
    missing = [n for n in names if n not in ds.coords]
    if missing:
        raise DataError(
            f"the grid_mean_predictor needs cortical coordinates {names}; missing {missing}",
            field="cortex_xyz",
            expected="cortical positions per neuron, or model.grid_mean_predictor = null",
        )
    return np.stack([ds[n].values for n in names], axis=1).astype(np.float32)


def initial_positions(mcfg, x_train, r_train):
    """(neuron, 2) data-driven initial readout positions when ``mcfg.readout_init ==
    "energy"`` (a CNN without a grid-mean predictor), else None."""
    if mcfg.readout_init != "energy" or mcfg.kind != "cnn" or mcfg.grid_mean_predictor is not None:
        return None
    from jaxsel.models import energy_positions

    return energy_positions(x_train, r_train)


def open_run(
    out_dir: Path, *, resume: bool, overwrite: bool, check: Callable[[dict], None], hint: str
) -> int | None:
    """The checkpoint of ``out_dir`` to resume from, or None to start from scratch.

    With ``resume`` and a checkpoint, ``check(meta)`` must accept its metadata (it raises
    otherwise) and its epoch is returned. A checkpoint without ``resume`` is refused unless
    ``overwrite`` (then the checkpoints are removed); ``hint`` ends the refusal's message.
    """
    last = latest_epoch(out_dir)
    if last is None:
        return None
    if resume:
        # the newest checkpoint whose metadata reads (a corrupt newest one is skipped; the
        # caller's restore_newest falls back further if its arrays do not restore)
        for epoch in all_epochs(out_dir):
            try:
                meta = read_meta(out_dir, epoch)
            except Exception:  # corrupt: the caller logs the fallback
                continue
            check(meta)
            return epoch
        raise TrainingError(
            f"no checkpoint in {checkpoint_dir(out_dir)} restores (their metadata is "
            "unreadable); start again with --force (API: overwrite=True) or remove the folder"
        )
    if not overwrite:
        raise ConfigError(
            f"{checkpoint_dir(out_dir)} already holds a checkpoint (epoch {last}); {hint}"
        )
    shutil.rmtree(checkpoint_dir(out_dir))
    return None


def with_overrides(cfg: Config, max_epochs, progress) -> Config:
    """``cfg`` with ``train.max_epochs`` / ``train.progress`` replaced where not None."""
    overrides = {}
    if max_epochs is not None:
        overrides["max_epochs"] = int(max_epochs)
    if progress is not None:
        overrides["progress"] = bool(progress)
    if overrides:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **overrides))
    return cfg


RESUME_HINT = "pass resume=True to continue it or overwrite=True to start again"


def resume_tree(
    out_dir: Path,
    tree: dict,
    check: Callable[[dict], None],
    *,
    resume: bool,
    overwrite: bool,
    hint: str = RESUME_HINT,
):
    """``(tree, start_epoch, history rows)``: restored from ``out_dir``'s newest checkpoint
    that ``check`` accepts when resuming, else ``tree`` unchanged from epoch 0 (see
    :func:`open_run` for the refusals)."""
    last = open_run(out_dir, resume=resume, overwrite=overwrite, check=check, hint=hint)
    if last is None:
        return tree, 0, []
    tree, meta = restore_newest(out_dir, tree, check)
    return tree, int(meta["epoch"]), list(meta.get("history", []))


def check_resumable(meta: dict, cfg: Config, seed: int) -> None:
    """Refuse (ConfigError) to resume a checkpoint of another config or seed."""
    diffs = config_diff(meta.get("config", {}), cfg)
    if diffs:
        raise ConfigError(
            "refusing to resume with a different config: "
            + "; ".join(diffs)
            + " (use a new out_dir or overwrite=True)"
        )
    if int(meta.get("seed", seed)) != int(seed):
        raise ConfigError(
            f"refusing to resume: the checkpoint used seed {meta.get('seed')}, "
            f"this call seed {seed}"
        )


def config_diff(saved: dict, cfg: Config) -> list[str]:
    """The model/train fields that differ between a checkpoint's config and ``cfg`` (fields
    a resume may change are ignored)."""
    now = cfg.to_dict()
    diffs = []
    for part in ("model", "train"):
        a, b = saved.get(part, {}), now[part]
        for k in sorted(set(a) | set(b)):
            if part == "train" and k in RESUMABLE_FIELDS:
                continue
            if k not in a and b.get(k) is None:
                continue  # a field added later whose "off" value is None (model.sessions)
            if a.get(k, "<missing>") != b.get(k, "<missing>"):
                diffs.append(
                    f"{part}.{k}: checkpoint {a.get(k, '<missing>')!r} != "
                    f"now {b.get(k, '<missing>')!r}"
                )
    return diffs


def history_dataset(rows: list[dict]) -> xr.Dataset:
    """A single model's history rows as ``xr.Dataset`` over ``epoch``."""
    epochs = np.array([r["epoch"] for r in rows], dtype=np.int64)
    data = {k: ("epoch", np.array([r[k] for r in rows], dtype=np.float64)) for k in HISTORY_VARS}
    data["improved"] = ("epoch", np.array([bool(r["improved"]) for r in rows], dtype=bool))
    return xr.Dataset(data, coords={"epoch": epochs})


def step_key(t):
    """The training-config fields the compiled step depends on (others may change freely)."""
    return dataclasses.replace(
        t,
        max_epochs=1,
        progress=False,
        eval_batch_size=1,
        batch_size=1,
        patience=1,
        lr_decay_steps=1,
        tolerance=0.0,
        lr_decay_factor=1.0,
        min_lr=0.0,
    )


def compiled_step(model: Model, train):
    """``(step, predict, tx)``: the jitted train step and predict of a (model, train config)
    and its optimizer, from the one compile cache (repeated fits of one configuration —
    resume, seeds, benchmarks — compile once)."""
    key = step_key(train)

    def build():
        tx = make_optimizer(key.lr)
        step = jax.jit(make_train_step(model, key, tx), donate_argnums=(0, 1, 2))
        return step, jax.jit(make_predict(model)), tx

    return cached("fit_step", (model, key), build)


class _NoBar:
    def update(self, *_):
        pass

    def set_postfix(self, **_):
        pass

    def close(self):
        pass


def progress_bar(enabled: bool, total: int, initial: int, name: str):
    """A tqdm bar over epochs, or a no-op one."""
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=f"fit {name}", unit="epoch")


__all__ = [
    "HISTORY_VARS",
    "RESUME_HINT",
    "TrainData",
    "check_fit_args",
    "check_max_epochs",
    "check_nonnegative",
    "check_resumable",
    "compiled_step",
    "config_diff",
    "history_dataset",
    "initial_positions",
    "open_run",
    "prepare_data",
    "progress_bar",
    "resolve_config",
    "resume_tree",
    "source_grid",
    "step_key",
    "with_overrides",
]
