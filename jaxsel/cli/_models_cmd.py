"""``jaxsel models [NAME]``: the named model configs (``train.models`` of a run config)."""

from __future__ import annotations

from jaxsel._dataclass_io import close_key
from jaxsel._errors import ConfigError
from jaxsel.cli._help import HelpFormatter, examples

# what each named config is (jaxsel.train.named_config); the shape is derived from the config
ABOUT = {
    "lurz2020": "Lurz et al. 2021 (ICLR): stacked core, Gaussian readout with a "
    "cortex-position grid predictor",
    "sensorium2022": "Sensorium 2022 baseline: depth-separable stacked core, Gaussian readout",
    "pyramid": "stacked core, positive-feature Laplacian-pyramid readout",
    "small": "a small, fast CNN for CPU demos and tests",
    "ln": "linear-nonlinear baseline (BN -> linear -> ELU+1), Laplace-smoothed weights",
}


def add_parser(sub) -> None:
    p = sub.add_parser(
        "models",
        help="list the named model configs, or show every field of one",
        description="Without NAME: every named model config (the names train.models and "
        "sweep.model accept) with a one-line description, aliases included. With NAME: "
        "every field of that config with its value; change one for every model with "
        "--set train.overrides.FIELD=VALUE, for one model with "
        "--set train.per_model.NAME.FIELD=VALUE.",
        epilog=examples("jaxsel models", "jaxsel models small"),
        formatter_class=HelpFormatter,
    )
    p.add_argument("name", nargs="?", default=None, help="a named config (e.g. small)")
    p.set_defaults(run=run)


def _shape(cfg) -> str:
    m = cfg.model
    if m.kind == "ln":
        return "LN"
    return f"CNN, {m.layers} layers x {m.hidden_channels} channels, {m.readout} readout"


def _value(v) -> str:
    """A TOML-like rendering of a config value (``none`` for an unset one)."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return str(v)


def run(args) -> int:
    from jaxsel.train import CONFIG_ALIASES, NAMED_CONFIGS, named_config

    if args.name is None:
        width = max(len(n) for n in NAMED_CONFIGS)
        for name in NAMED_CONFIGS:
            if name in CONFIG_ALIASES:
                line = f"alias of '{CONFIG_ALIASES[name]}'"
            else:
                cfg = named_config(name)
                line = f"{ABOUT.get(name, '')} ({_shape(cfg)})".strip()
            print(f"{name:{width}s}  {line}")
        print("'jaxsel models NAME' shows every field of one.")
        return 0
    if args.name not in NAMED_CONFIGS:
        raise ConfigError(
            f"unknown model config '{args.name}'"
            + close_key(args.name, NAMED_CONFIGS).replace("valid keys", "known configs")
            + "; 'jaxsel models' lists them"
        )
    name = str(args.name)
    cfg = named_config(name)
    d = cfg.to_dict()
    real = CONFIG_ALIASES.get(name, name)
    alias = f" (alias of '{real}')" if real != name else ""
    print(f"# {name}{alias}: {ABOUT.get(real, '')} ({_shape(cfg)})")
    for section in ("model", "train"):
        print(f"[{section}]")
        for k, v in d[section].items():
            print(f"{k} = {_value(v)}")
    return 0
