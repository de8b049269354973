"""Run configuration: a TOML file validated against a schema of frozen dataclasses.

A config has one table per pipeline section. Every key has a default (documented in the
``doc`` metadata of its field, printed by ``jaxsel run --defaults``), so an empty file is a
valid config (the digital-twin demo). Validation is strict: an unknown key, a value of the
wrong type or a missing data path is a :class:`~jaxsel.errors.ConfigError` whose message
names the key, the expected type and, for unknown keys, the closest valid key.

Sections: ``[run]``, ``[data]`` (with ``[data.twin]`` = :class:`jaxsel.data.twin_simulate.
TwinConfig`), ``[select]`` (= :class:`jaxsel.measures.selection.SelectionRule`),
``[train]``, ``[evaluate]``, ``[mei]``, ``[gabor]``, ``[sweep]``,
``[report]``.

Example::

    cfg = load_config("experiments/demo_twin.toml", overrides={"run.out": "/tmp/x"})
    cfg.train.models        # ('ln', 'small')
    to_toml(cfg)            # the resolved config, every key spelled out
"""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import hashlib
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jaxsel.data.twin_simulate import TwinConfig
from jaxsel.errors import ConfigError
from jaxsel.measures.selection import SelectionRule


def _f(default, doc: str, **kw):
    """A dataclass field with a default and its documentation."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"doc": doc},
                     **kw)
    return field(default=default, metadata={"doc": doc}, **kw)


DATA_SOURCES = ("twin", "static", "arrays", "table", "allen")
STAGES = ("data", "select", "train", "evaluate", "mei", "gabor", "figures", "report")


@dataclass(frozen=True)
class RunSection:
    """``[run]``: where the run goes and what it runs."""

    name: str = _f("demo", "run name; the run folder is runs/<name> unless 'out' is set")
    out: str = _f("", "run folder (default runs/<name>, relative to the working directory)")
    seed: int = _f(0, "seed of every random choice (data split, init, MEI starts)")
    stages: tuple[str, ...] = _f(STAGES, f"stages to run, a subset of {list(STAGES)}")
    progress: bool = _f(True, "show progress bars")


@dataclass(frozen=True)
class DataSection:
    """``[data]``: the recordings (or the digital twin)."""

    source: str = _f("twin", f"one of {list(DATA_SOURCES)}: 'twin' simulates the digital "
                             "twin; 'static' a Sensorium/Lurz static folder or .zip; 'arrays' "
                             "an .npz/.npy folder; 'table' a CSV of responses + image folder; "
                             "'allen' an Allen Neuropixels NWB + scene image folder")
    path: str = _f("", "the data file or folder (static folder/zip, .npz, CSV, NWB)")
    images: str = _f("", "image folder or array ('allen': the 118 scenes; 'table': images)")
    area: str = _f("VISam", "'allen': keep units of this brain area ('' = all)")
    window: tuple[float, float] = _f((0.05, 0.25), "'allen': spike-count window (s) after "
                                                   "each onset")
    image_size: tuple[int, int] = _f((36, 64), "'allen'/'table': resize images to (y, x)")
    tiers: tuple[float, float, float] = _f((0.7, 0.1, 0.2), "'allen'/'table': train, "
                                           "validation, test fractions of the image ids")
    hint: str = _f("", "where to get the data (printed when the path is missing)")
    twin: TwinConfig = _f(TwinConfig(), "'twin': the simulated population and experiment "
                                        "(jaxsel.data.twin_simulate.TwinConfig)")




@dataclass(frozen=True)
class TrainSection:
    """``[train]``: the models fitted (named configs of :mod:`jaxsel.train.config`)."""

    models: tuple[str, ...] = _f(("ln", "small"), "named configs to fit (jaxsel.train.config."
                                                  "NAMED_CONFIGS); the first is the LN "
                                                  "baseline, the last the CNN used in silico")
    overrides: dict = _f({}, "fields of TrainConfig / ModelConfig changed for every model, "
                             "e.g. {max_epochs = 20}")
    per_model: dict = _f({}, "per-model overrides, e.g. {small = {hidden_channels = 8}}")


@dataclass(frozen=True)
class EvaluateSection:
    """``[evaluate]``: model evaluation on the test tier."""

    fev_threshold: float = _f(0.15, "report FEVE for neurons with FEV at least this")


@dataclass(frozen=True)
class MeiSection:
    """``[mei]``: most exciting inputs (model and, on the twin, truth), gradient RFs."""

    recipe: str = _f("norm", "MEI recipe of jaxsel.insilico.recipes: 'norm' (fixed L2 "
                             "budget of the contrast image), 'fens' (fixed mean/std) or "
                             "'seed002'")
    norm_fraction: float = _f(1.0, "'norm': budget as a fraction of the twin's norm budget "
                                   "(recorded data: of 0.15 x the median contrast norm)")
    n_neurons: int = _f(0, "MEIs for at most this many selected neurons (0 = all)")
    seeds: int = _f(1, "random starts per neuron (the best is kept)")
    chunk_size: int = _f(256, "neurons x seeds optimised per compiled call")
    truth: bool = _f(True, "on the twin, also compute MEIs of the true neurons")
    overrides: dict = _f({}, "fields of MEIConfig changed from the recipe, e.g. "
                             "{steps = 200, lr = 0.05}")


@dataclass(frozen=True)
class GaborSection:
    """``[gabor]``: the optimal Gabor of each neuron."""

    steps: int = _f(200, "gradient-ascent steps on the Gabor parameters (Adam)")
    lr: float = _f(0.05, "Adam learning rate of the Gabor ascent")
    truth: bool = _f(True, "on the twin, also fit Gabors to the true neurons")
    bank: dict = _f({}, "arguments of jaxsel.insilico.gabor_search.gabor_bank for the "
                        "screening bank, e.g. {n_theta = 8, n_phase = 4}")


@dataclass(frozen=True)
class SweepSection:
    """``[sweep]``: a hyperparameter sweep (``jaxsel sweep``; needs jaxsel.train.fit_many)."""

    model: str = _f("small", "the named config swept")
    parameter: str = _f("lr", "the TrainConfig / ModelConfig field varied")
    values: tuple[float, ...] = _f((0.001, 0.003, 0.01), "its values (one model each, "
                                                         "trained together)")
    seeds: int = _f(1, "seeds per value")
    max_epochs: int = _f(0, "cap on training epochs (0 = the model config's max_epochs)")


@dataclass(frozen=True)
class ReportSection:
    """``[report]``: figures and the HTML report."""

    title: str = _f("", "report title (default: the run name)")
    pdf: bool = _f(True, "also save every figure as PDF")
    n_examples: int = _f(12, "neurons shown in the MEI / RF / Gabor grids")
    embed_images: bool = _f(True, "embed figures in report.html (base64) so it is one file")


@dataclass(frozen=True)
class Config:
    """A whole run. Every section and key has a default."""

    run: RunSection = _f(RunSection(), "the run")
    data: DataSection = _f(DataSection(), "the data")
    select: SelectionRule = _f(SelectionRule(), "neuron selection "
                                                "(jaxsel.measures.selection.SelectionRule)")
    train: TrainSection = _f(TrainSection(), "model fitting")
    evaluate: EvaluateSection = _f(EvaluateSection(), "evaluation")
    mei: MeiSection = _f(MeiSection(), "MEIs and gradient RFs")
    gabor: GaborSection = _f(GaborSection(), "optimal Gabors")
    sweep: SweepSection = _f(SweepSection(), "hyperparameter sweep")
    report: ReportSection = _f(ReportSection(), "figures and report")

    @property
    def out_dir(self) -> Path:
        """The run folder."""
        return Path(self.run.out) if self.run.out else Path("runs") / self.run.name


# --------------------------------------------------------------------------- validation

def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return f"table [{tp.__name__}]"
    if origin in (tuple,):
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"array of {_type_name(args[0])}"
        return f"array of {len(args)} ({', '.join(_type_name(a) for a in args)})"
    if origin in (list,):
        return f"array of {_type_name(typing.get_args(tp)[0])}"
    if origin in (dict, collections.abc.Mapping):
        return f"table of {' -> '.join(_type_name(a) for a in typing.get_args(tp))}"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    return {int: "integer", float: "float", str: "string", bool: "boolean", dict: "table",
            type(None): "nothing"}.get(tp, getattr(tp, "__name__", str(tp)))


def _describe(value) -> str:
    kind = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array",
            dict: "table"}.get(type(value), type(value).__name__)
    text = repr(value)
    return f"{kind} {text if len(text) < 40 else text[:37] + '...'}"


def _convert(value, tp, key: str):
    """Check ``value`` against the annotation ``tp``; return it in the field's form."""
    def bad():
        return ConfigError(f"key '{key}' must be {_type_name(tp)}, got {_describe(value)}")

    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad()
        return from_dict(tp, value, prefix=key)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _convert(value, arg, key)
            except ConfigError:
                continue
        raise bad()
    if tp is type(None):
        if value is not None:
            raise bad()
        return None
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise bad()
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"key '{key}' must be {_type_name(tp)}, got an array of "
                              f"{len(value)}")
        return tuple(_convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (collections.abc.Mapping, dict) and typing.get_args(tp):
        kt, vt = typing.get_args(tp)
        if not isinstance(value, dict):
            raise bad()
        return {_convert(k, kt, key): _convert(v, vt, f"{key}.{k}") for k, v in value.items()}
    if origin is list:
        (arg,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise bad()
        return [_convert(v, arg, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise bad()
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise bad()
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad()
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad()
        return value
    if tp is Any:
        return value
    raise bad()


def close_key(key: str, valid) -> str:
    """`` (did you mean 'x'?)`` for the closest valid key, or a list of the valid keys."""
    valid = sorted(valid)
    near = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    if near:
        return f" (did you mean '{near[0]}'?)"
    return f" (valid keys: {', '.join(valid)})"


def from_dict(cls, data: dict, *, prefix: str = ""):
    """Build the dataclass ``cls`` from a (TOML) dict, checking keys and types.

    Args:
      cls: a dataclass type (any: jaxsel's sections or another module's config).
      data: the table; missing keys keep their defaults.
      prefix: the dotted key of this table, used in messages.

    Returns:
      An instance of ``cls``.

    Raises:
      ConfigError: unknown key (with the closest valid key) or wrong type (naming the
        expected type and the value found).
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if key not in fields:
            where = f" in [{prefix}]" if prefix else ""
            raise ConfigError(f"unknown key '{dotted}'{where}{close_key(key, fields)}")
        kwargs[key] = _convert(value, hints[key], dotted)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"[{prefix or cls.__name__}]: {err}") from None


def _check_values(cfg: Config) -> None:
    """Checks that need more than a type: choices and ranges."""
    def need(cond, key, what):
        if not cond:
            raise ConfigError(f"key '{key}' {what}")

    need(cfg.data.source in DATA_SOURCES, "data.source",
         f"must be one of {list(DATA_SOURCES)}, got {cfg.data.source!r}"
         + close_key(cfg.data.source, DATA_SOURCES).replace("valid keys", "valid values"))
    for s in cfg.run.stages:
        need(s in STAGES, "run.stages", f"holds unknown stage {s!r}"
             + close_key(s, STAGES).replace("valid keys", "valid stages"))
    need(cfg.run.name and "/" not in cfg.run.name, "run.name",
         f"must be a non-empty name without '/', got {cfg.run.name!r}")
    need(len(cfg.train.models) >= 1, "train.models", "must name at least one model")
    need(cfg.mei.norm_fraction > 0, "mei.norm_fraction", "must be > 0")
    need(cfg.mei.seeds >= 1, "mei.seeds", f"must be >= 1, got {cfg.mei.seeds}")
    need(cfg.mei.chunk_size >= 1, "mei.chunk_size", "must be >= 1")
    _check_library_keys(cfg)


def check_overrides(classes, data: dict, prefix: str) -> None:
    """Check an overrides table against the fields (and types) of some config dataclasses.

    Args:
      classes: dataclass types whose fields may be overridden (first match wins).
      data: the overrides.
      prefix: dotted key of the table, for messages.

    Raises:
      ConfigError: unknown key (closest valid key) or a value of the wrong type.
    """
    hints = {}
    for cls in classes:
        for name, tp in typing.get_type_hints(cls).items():
            hints.setdefault(name, tp)
    for key, value in data.items():
        if key not in hints:
            raise ConfigError(f"unknown key '{prefix}.{key}'{close_key(key, hints)}")
        _convert(value, hints[key], f"{prefix}.{key}")


def _check_library_keys(cfg: "Config") -> None:
    """Validate the names and overrides that the model / MEI libraries interpret."""
    try:
        from jaxsel.models.config import ModelConfig
        from jaxsel.train.config import NAMED_CONFIGS, TrainConfig
    except ImportError:                         # pragma: no cover - library not there yet
        return
    for i, name in enumerate(cfg.train.models):
        if name not in NAMED_CONFIGS:
            raise ConfigError(f"key 'train.models[{i}]': unknown model config '{name}'"
                              + close_key(name, NAMED_CONFIGS).replace("valid keys",
                                                                       "known configs"))
    check_overrides((TrainConfig, ModelConfig), cfg.train.overrides, "train.overrides")
    for name, ov in cfg.train.per_model.items():
        if name not in cfg.train.models:
            raise ConfigError(f"key 'train.per_model.{name}': '{name}' is not in train.models"
                              + close_key(name, cfg.train.models).replace("valid keys",
                                                                          "models"))
        if not isinstance(ov, dict):
            raise ConfigError(f"key 'train.per_model.{name}' must be a table, got "
                              f"{_describe(ov)}")
        check_overrides((TrainConfig, ModelConfig), ov, f"train.per_model.{name}")
    try:
        from jaxsel.insilico.mei import MEIConfig
        from jaxsel.insilico.recipes import RECIPES
    except ImportError:                         # pragma: no cover
        return
    if cfg.mei.recipe not in RECIPES:
        raise ConfigError(f"key 'mei.recipe': unknown recipe '{cfg.mei.recipe}'"
                          + close_key(cfg.mei.recipe, RECIPES).replace("valid keys",
                                                                       "recipes"))
    check_overrides((MEIConfig,), cfg.mei.overrides, "mei.overrides")
    if cfg.sweep.model not in NAMED_CONFIGS:
        raise ConfigError(f"key 'sweep.model': unknown model config '{cfg.sweep.model}'"
                          + close_key(cfg.sweep.model, NAMED_CONFIGS).replace(
                              "valid keys", "known configs"))
    check_overrides((TrainConfig, ModelConfig), {cfg.sweep.parameter: cfg.sweep.values[0]}
                    if cfg.sweep.values else {}, "sweep.parameter")
    need_pos = {"mei.seeds": cfg.mei.seeds, "gabor.steps": cfg.gabor.steps}
    for key, v in need_pos.items():
        if v < 1:
            raise ConfigError(f"key '{key}' must be >= 1, got {v}")
    try:
        import inspect

        from jaxsel.insilico.gabor_search import gabor_bank
    except ImportError:                         # pragma: no cover
        return
    valid = [n for n in inspect.signature(gabor_bank).parameters if n != "shape"]
    for key in cfg.gabor.bank:
        if key not in valid:
            raise ConfigError(f"unknown key 'gabor.bank.{key}'{close_key(key, valid)}")


def config_from_dict(data: dict) -> Config:
    """Validate a parsed TOML document into a :class:`Config`."""
    cfg = from_dict(Config, data)
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
        value = raw.strip()                     # a bare string
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


# --------------------------------------------------------------------------- output

def to_dict(obj) -> dict:
    """A dataclass config as plain TOML-able data (tuples become lists)."""
    def plain(v):
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        return v
    return plain(obj)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise ConfigError(f"cannot write {v!r} as TOML")


def to_toml(cfg, *, docs: bool = False) -> str:
    """The config as TOML text (every key spelled out; ``docs`` adds each key's comment)."""
    lines: list[str] = []

    def table(obj, name: str):
        scalars, subs = [], []
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            (subs if dataclasses.is_dataclass(v) else scalars).append((f, v))
        if name:
            if lines:
                lines.append("")
            doc = (obj.__doc__ or "").strip().splitlines()[0] if docs and obj.__doc__ else ""
            lines.append(f"[{name}]" + (f"  # {doc}" if doc and name.count(".") == 0 else ""))
        for f, v in scalars:
            if v is None:                     # TOML has no null: leave the key out
                lines.append(f"# {f.name} = (unset)")
                continue
            line = f"{f.name} = {_toml_value(to_dict_value(v))}"
            doc = f.metadata.get("doc") or field_docs(type(obj)).get(f.name)
            if docs and doc:
                line += f"  # {doc}"
            lines.append(line)
        for f, v in subs:
            table(v, f"{name}.{f.name}" if name else f.name)

    table(cfg, "")
    return "\n".join(lines) + "\n"


def to_dict_value(v):
    """One field value in plain form (tuples -> lists)."""
    if isinstance(v, (tuple, list)):
        return [to_dict_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): to_dict_value(x) for k, x in v.items()}
    return v


def section_hash(cfg: Config, *sections: str) -> str:
    """A short hash of some sections of the config (what a stage's outputs depend on)."""
    d = to_dict(cfg)
    picked = {}
    for s in sections:                      # 'section' or 'section.key'
        sec, _, key = s.partition(".")
        picked[s] = d[sec][key] if key else d[sec]
    blob = json.dumps(picked, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def field_docs(cls) -> dict[str, str]:
    """Per-field documentation: ``doc`` metadata, else the docstring's ``Attributes:``."""
    import re

    out: dict[str, str] = {}
    text = cls.__doc__ or ""
    if "Attributes:" in text:
        body = text.split("Attributes:", 1)[1]
        cur = None
        for line in body.splitlines():
            m = re.match(r"^\s{4,6}([a-z_][a-z_0-9, ]*):\s*(.*)$", line)
            if m:
                cur = [n.strip() for n in m.group(1).split(",")]
                for n in cur:
                    out[n] = m.group(2).strip()
            elif cur and line.strip():
                for n in cur:
                    out[n] += " " + line.strip()
            elif not line.strip() and cur:
                cur = None
    for f in dataclasses.fields(cls):
        if f.metadata.get("doc"):
            out[f.name] = f.metadata["doc"]
    return out


def defaults_toml() -> str:
    """Every key with its default and documentation, as TOML."""
    return to_toml(Config(), docs=True)


# --------------------------------------------------------------------------- the demo

DEMO_TOML = """\
# The digital-twin demo (jaxsel demo / make demo): the embedded default run.
# Every key not written here keeps its documented default (jaxsel run --defaults).

[run]
name = "demo"
seed = 0

[data]
source = "twin"

[data.twin]
n_neurons = 300
n_train = 4000
n_validation = 500
n_test = 100
test_repeats = 10

[select]
percentiles = { oracle = 60.0, variance = 50.0 }

[train]
models = ["ln", "small"]   # LN baseline and the small CNN (jaxsel.train.config)

[train.per_model]          # epoch caps (2-core CPU: ln ~1 s/epoch, small ~4 s/epoch)
ln = { max_epochs = 40 }
small = { max_epochs = 30 }

[mei]
recipe = "norm"            # fixed L2 budget = the twin's norm budget: comparable with the truth
n_neurons = 24             # the 24 most reliable selected neurons

[mei.overrides]
steps = 300

[gabor]
steps = 200

[gabor.bank]
n_x = 7
n_y = 4
n_phase = 4

[report]
n_examples = 12
"""


def demo_config(*, overrides: dict | None = None) -> Config:
    """The embedded demo config (:data:`DEMO_TOML`, also ``experiments/demo_twin.toml``)."""
    data = tomllib.loads(DEMO_TOML)
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value)
    return config_from_dict(data)
