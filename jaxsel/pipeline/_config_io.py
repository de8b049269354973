"""Reading the run configuration: TOML file -> validated :class:`Config`, ``--set``
overrides, the embedded demo config, and the hash of config sections a stage depends on.

Validation is strict: an unknown key, a value of the wrong type or a missing data path is a
:class:`~jaxsel.ConfigError` whose message names the key, the expected type and, for
unknown keys, the closest valid key.

Example::

    cfg = load_config("experiments/demo_twin.toml", overrides={"run.out": "/tmp/x"})
    cfg.train.models        # ('ln', 'small')
    to_toml(cfg)            # the resolved config, every key spelled out
"""

from __future__ import annotations

import hashlib
import importlib.resources
import inspect
import json
import math
import re
import tomllib
from pathlib import Path
from typing import Any

from jaxsel._dataclass_io import check_keys, close_key, describe, from_dict, to_dict
from jaxsel._errors import ConfigError
from jaxsel.insilico import MEIConfig, gabor_bank, recipes
from jaxsel.insilico.recipes import RECIPES
from jaxsel.models import ModelConfig
from jaxsel.pipeline._config_schema import DATA_SOURCES, STAGES, Config, expand_twin_preset
from jaxsel.train import NAMED_CONFIGS, TrainConfig, named_config


def check_overrides(classes, data: dict, prefix: str) -> None:
    """Check an overrides table against the fields (and types) of some config dataclasses.

    Args:
      classes: dataclass types whose fields may be overridden (first match wins).
      data: the overrides.
      prefix: dotted key of the table, for messages.

    Raises:
      ConfigError: unknown key (closest valid key) or a value of the wrong type.
    """
    check_keys(classes, data, prefix, style="toml")


def _require(cond, key: str, what: str) -> None:
    if not cond:
        raise ConfigError(f"key '{key}' {what}")


def _check_values(cfg: Config) -> None:
    """Checks that need more than a type: choices and ranges."""
    _require(
        cfg.data.source in DATA_SOURCES,
        "data.source",
        f"must be one of {list(DATA_SOURCES)}, got {cfg.data.source!r}"
        + close_key(cfg.data.source, DATA_SOURCES).replace("valid keys", "valid values"),
    )
    for s in cfg.run.stages:
        _require(
            s in STAGES,
            "run.stages",
            f"holds unknown stage {s!r}"
            + close_key(s, STAGES).replace("valid keys", "valid stages"),
        )
    _require(
        cfg.run.name and "/" not in cfg.run.name,
        "run.name",
        f"must be a non-empty name without '/', got {cfg.run.name!r}",
    )
    _require(len(cfg.train.models) >= 1, "train.models", "must name at least one model")
    m, g = cfg.mei, cfg.gabor
    _require(
        math.isfinite(m.norm_fraction) and m.norm_fraction > 0,
        "mei.norm_fraction",
        f"must be a finite number > 0, got {m.norm_fraction}",
    )
    _require(m.seeds >= 1, "mei.seeds", f"must be >= 1, got {m.seeds}")
    _require(m.chunk_size >= 1, "mei.chunk_size", f"must be >= 1, got {m.chunk_size}")
    _require(
        m.n_neurons >= 0,
        "mei.n_neurons",
        f"must be >= 0 (0 = every selected neuron), got {m.n_neurons}",
    )
    _require(g.steps >= 1, "gabor.steps", f"must be >= 1, got {g.steps}")
    _require(
        math.isfinite(g.lr) and g.lr > 0,
        "gabor.lr",
        f"must be a finite learning rate > 0, got {g.lr}",
    )
    _require(cfg.sweep.seeds >= 1, "sweep.seeds", f"must be >= 1, got {cfg.sweep.seeds}")
    _require(
        cfg.sweep.max_epochs >= 0,
        "sweep.max_epochs",
        f"must be >= 0 (0 = the model config's max_epochs), got {cfg.sweep.max_epochs}",
    )
    _check_train_keys(cfg)
    _check_insilico_keys(cfg)
    _check_train_ranges(cfg)
    _check_mei_ranges(cfg)


def _check_train_ranges(cfg: Config) -> None:
    """``[train.overrides]`` and ``[train.per_model]`` values in range (the ranges of
    TrainConfig / ModelConfig), each named by the key the user wrote."""
    tables = {"train.overrides": dict(cfg.train.overrides)}
    tables.update({f"train.per_model.{k}": dict(v) for k, v in cfg.train.per_model.items()})
    for prefix, ov in tables.items():
        for key, value in ov.items():
            where = f"{prefix}.{key}"
            if key == "max_epochs" and isinstance(value, int) and value < 1:
                raise ConfigError(
                    f"key '{where}' must be >= 1, got {value} (0 epochs trains nothing)"
                )
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"key '{where}' must be a finite number, got {value}")
            for name in cfg.train.models:
                try:
                    named_config(name).replace(**{key: value})
                except ConfigError as err:
                    text = re.sub(rf"^(train\.)?{re.escape(key)} (= \S+ )?", "", str(err))
                    raise ConfigError(f"key '{where}' = {value!r}: {text}") from None


def _check_mei_ranges(cfg: Config) -> None:
    """``[mei.overrides]`` values in range: the recipe is built with placeholder data
    constants and the MEIConfig's own checks report the key the user wrote."""
    ov = dict(cfg.mei.overrides)
    if not ov:
        return
    recipe = recipes.resolve(cfg.mei.recipe)
    try:
        if recipe == "norm":
            recipes.norm(1.0, **ov)
        elif recipe == "mean_std":
            recipes.mean_std(127.5, 50.0, **ov)
        else:
            recipes.fft_preconditioned(0.2, (0.0, 255.0), **ov)
    except ConfigError as err:
        text = str(err)
        field = re.match(r"MEIConfig\.(\w+)", text)
        key = f"mei.overrides.{field.group(1)}" if field and field.group(1) in ov else "mei"
        raise ConfigError(f"key '{key}': {text}") from None


def _check_train_keys(cfg: Config) -> None:
    """The named model configs and the TrainConfig / ModelConfig overrides."""
    for i, name in enumerate(cfg.train.models):
        if name not in NAMED_CONFIGS:
            raise ConfigError(
                f"key 'train.models[{i}]': unknown model config '{name}'"
                + close_key(name, NAMED_CONFIGS).replace("valid keys", "known configs")
            )
    check_overrides((TrainConfig, ModelConfig), cfg.train.overrides, "train.overrides")
    for name, ov in cfg.train.per_model.items():
        if name not in cfg.train.models:
            raise ConfigError(
                f"key 'train.per_model.{name}': '{name}' is not in train.models"
                + close_key(name, cfg.train.models).replace("valid keys", "models")
            )
        if not isinstance(ov, dict):
            raise ConfigError(f"key 'train.per_model.{name}' must be a table, got {describe(ov)}")
        check_overrides((TrainConfig, ModelConfig), ov, f"train.per_model.{name}")


def _check_insilico_keys(cfg: Config) -> None:
    """The MEI recipe and overrides, the sweep's model and parameter, the Gabor bank."""
    if cfg.mei.recipe not in RECIPES:
        raise ConfigError(
            f"key 'mei.recipe': unknown recipe '{cfg.mei.recipe}'"
            + close_key(cfg.mei.recipe, RECIPES).replace("valid keys", "recipes")
        )
    check_overrides((MEIConfig,), cfg.mei.overrides, "mei.overrides")
    if cfg.sweep.model not in NAMED_CONFIGS:
        raise ConfigError(
            f"key 'sweep.model': unknown model config '{cfg.sweep.model}'"
            + close_key(cfg.sweep.model, NAMED_CONFIGS).replace("valid keys", "known configs")
        )
    check_overrides(
        (TrainConfig, ModelConfig),
        {cfg.sweep.parameter: cfg.sweep.values[0]} if cfg.sweep.values else {},
        "sweep.parameter",
    )
    valid = [n for n in inspect.signature(gabor_bank).parameters if n != "shape"]
    for key in cfg.gabor.bank:
        if key not in valid:
            raise ConfigError(f"unknown key 'gabor.bank.{key}'{close_key(key, valid)}")


def config_from_dict(data: dict) -> Config:
    """Validate a parsed TOML document into a :class:`Config`."""
    cfg = from_dict(Config, expand_twin_preset(data), style="toml")
    _check_values(cfg)
    return cfg


def _set_dotted(data: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    d = data
    for p in parts[:-1]:
        d = d.setdefault(p, {})
        if not isinstance(d, dict):
            raise ConfigError(f"override '{dotted}': '{p}' is not a table")
    d[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``'train.lr=0.01'`` -> ``('train.lr', 0.01)`` (the value is parsed as TOML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare string
    return key.strip(), value


def load_config(path: str | Path | None = None, *, overrides: dict | None = None) -> Config:
    """Read and validate a TOML config.

    Args:
      path: the TOML file; None = all defaults (the twin demo).
      overrides: ``{'section.key': value}`` applied on top of the file.

    Returns:
      The validated :class:`Config`.

    Raises:
      ConfigError: missing/unreadable file, TOML syntax error, unknown key, wrong type.
    """
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} not found")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: not valid TOML ({err})") from None
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value)
    try:
        return config_from_dict(data)
    except ConfigError as err:
        if path is not None:
            raise ConfigError(f"{path}: {err}") from None
        raise


def replace(cfg: Config, **sections) -> Config:
    """``replace(cfg, run={'out': 'x'})``: a copy with some keys of some sections changed."""
    data = to_dict(cfg)
    for sec, values in sections.items():
        data.setdefault(sec, {}).update(values)
    return config_from_dict(data)


def section_hash(cfg: Config, *sections: str) -> str:
    """A short hash of some sections of the config (what a stage's outputs depend on)."""
    d = to_dict(cfg)
    picked = {}
    for s in sections:  # 'section' or 'section.key'
        sec, _, key = s.partition(".")
        picked[s] = d[sec][key] if key else d[sec]
    blob = json.dumps(picked, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def demo_toml() -> str:
    """The text of the digital-twin demo config (package data ``demo_twin.toml``, the same
    file as ``experiments/demo_twin.toml``)."""
    return importlib.resources.files("jaxsel.pipeline").joinpath("demo_twin.toml").read_text()


def demo_config(*, overrides: dict | None = None) -> Config:
    """The demo config (:func:`demo_toml`), with ``{'section.key': value}`` overrides."""
    data = tomllib.loads(demo_toml())
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value)
    return config_from_dict(data)


__all__ = [
    "check_overrides",
    "config_from_dict",
    "demo_config",
    "demo_toml",
    "load_config",
    "parse_override",
    "replace",
    "section_hash",
]
