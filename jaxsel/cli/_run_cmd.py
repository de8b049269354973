"""``jaxsel run CONFIG.toml``: the whole pipeline as the config says, resumable."""

from __future__ import annotations

import argparse
from pathlib import Path

from jaxsel._dataclass_io import close_key
from jaxsel._errors import ConfigError
from jaxsel.cli._help import HelpFormatter, examples
from jaxsel.pipeline import (
    STAGES,
    defaults_toml,
    demo_config,
    load_config,
    parse_override,
    run_pipeline,
)


def add_common(p: argparse.ArgumentParser, *, config_required: bool = True) -> None:
    """Options shared by every config-driven subcommand."""
    if config_required:
        p.add_argument(
            "config",
            type=Path,
            help="run config (TOML; see experiments/) or an existing run folder",
        )
    else:
        p.add_argument(
            "config",
            type=Path,
            nargs="?",
            default=None,
            help="run config (TOML; see experiments/) or an existing run folder; not needed "
            "with --defaults",
        )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="run folder (overrides run.out; default runs/<run.name>)",
    )
    add_run_options(p)


def add_run_options(p: argparse.ArgumentParser) -> None:
    """``--set``, ``--force`` and ``--no-progress``: shared by ``run``, the stage commands
    and ``demo``."""
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.overrides.lr=0.01 (repeatable; "
        "VALUE is TOML; 'jaxsel run --defaults' lists every key)",
    )
    p.add_argument("--force", action="store_true", help="recompute finished stages")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


# tables whose keys are fields of another config: a --set of such a field one level too
# high (train.lr) is pointed to its table (train.overrides.lr)
_OVERRIDE_TABLES = {"train": "train.overrides", "mei": "mei.overrides"}


def _override_hint(key: str) -> str:
    """``'; did you mean --set train.overrides.lr=...?'`` for ``train.lr``, else ''."""
    from jaxsel.insilico import MEIConfig
    from jaxsel.models import ModelConfig
    from jaxsel.train import TrainConfig

    section, _, field = key.partition(".")
    fields = {
        "train": {*TrainConfig.__dataclass_fields__, *ModelConfig.__dataclass_fields__},
        "mei": set(MEIConfig.__dataclass_fields__),
    }.get(section, set())
    if "." not in field and field in fields:
        return f"; did you mean --set {_OVERRIDE_TABLES[section]}.{field}=...?"
    return ""


def _parse_overrides(texts) -> dict:
    """``--set`` arguments -> ``{'section.key': value}`` (errors name ``--set``)."""
    overrides = {}
    for text in texts:
        try:
            key, value = parse_override(text)
        except ConfigError as err:
            raise ConfigError(f"--set {text}: {err}") from None
        overrides[key] = value
    return overrides


def load(args):
    """The validated config of a subcommand's arguments.

    A config that fails only once the ``--set`` overrides are applied is blamed on
    ``--set`` (naming the offending ``--set`` argument where the message names its key),
    not on the config file.
    """
    sets = _parse_overrides(args.overrides)
    overrides = dict(sets)
    if args.out is not None:
        overrides["run.out"] = str(args.out)
    if getattr(args, "no_progress", False):
        overrides["run.progress"] = False
    path = None
    if args.config is not None:
        path = Path(args.config)
        if path.is_dir():  # a run folder: its resolved config, in place
            overrides.setdefault("run.out", str(path))
            path = path / "config.toml"
        load_config(path)  # the file alone: its errors name the file
    try:
        if path is None:
            return demo_config(overrides=overrides)
        return load_config(path, overrides=overrides)
    except ConfigError as err:
        msg = str(err)
        if path is not None and msg.startswith(f"{path}: "):
            msg = msg[len(f"{path}: ") :]
        named = [k for k in sets if f"'{k}" in msg or f"{k}[" in msg]
        which = " ".join(f"{k}={_raw(args.overrides, k)}" for k in named) if named else ""
        hint = "".join(_override_hint(k) for k in named)
        raise ConfigError(f"--set {which}: {msg}{hint}" if which else f"--set: {msg}") from None


def _raw(texts, key: str) -> str:
    """The VALUE text of the last ``--set key=VALUE`` among ``texts``."""
    for text in reversed(texts):
        k, _, raw = text.partition("=")
        if k.strip() == key:
            return raw.strip()
    return "..."  # pragma: no cover


def run_stages(args, stages) -> int:
    """Run ``stages`` (and print where the results are)."""
    cfg = load(args)
    res = run_pipeline(cfg, force=args.force, stages=stages)
    report(res)
    return 0


def report(res) -> None:
    """Print the stage status and where the results are."""
    bad = {k: v for k, v in res["status"].items() if v not in ("done", "skipped")}
    if bad:
        print("stages not run: " + ", ".join(f"{k} ({v})" for k, v in bad.items()))
    rep = Path(res["run_dir"]) / "report.html"
    print(f"run folder: {res['run_dir']}")
    print(f"metrics:    {Path(res['run_dir']) / 'metrics.json'}")
    if rep.is_file():
        print(f"report:     {rep.resolve()}")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "run",
        help="run the whole pipeline from a TOML config",
        description="Run every stage (" + " -> ".join(STAGES) + ") as CONFIG says, into the "
        "run folder. Finished stages (outputs + a done-marker with the config "
        "hash) are skipped on a rerun; --force recomputes them. "
        "'jaxsel run --defaults' prints every key with its default.",
        epilog=examples(
            "jaxsel run experiments/demo_twin.toml",
            "jaxsel run experiments/demo_twin.toml --out runs/lr01 --set train.overrides.lr=0.01",
            "jaxsel run experiments/demo_twin.toml --stages data,select",
            "jaxsel run runs/demo --stages figures,report",
            "jaxsel run --defaults",
        ),
        formatter_class=HelpFormatter,
    )
    add_common(p, config_required=False)
    p.add_argument(
        "--defaults",
        action="store_true",
        help="print every config key with its default and documentation, and exit",
    )
    p.add_argument(
        "--stages",
        default=None,
        help=f"comma-separated subset of {','.join(STAGES)} (default: run.stages)",
    )
    p.set_defaults(run=run)


def run(args) -> int:
    if args.defaults:
        print(defaults_toml(), end="")
        return 0
    if args.config is None:
        raise ConfigError(
            "give a config file: jaxsel run CONFIG.toml (see experiments/), or "
            "'jaxsel demo' for the twin demo"
        )
    stages = None
    if args.stages:
        stages = [s.strip() for s in args.stages.split(",") if s.strip()]
        for s in stages:
            if s not in STAGES:
                raise ConfigError(
                    f"--stages: unknown stage '{s}'"
                    + close_key(s, STAGES).replace("valid keys", "valid stages")
                )
    return run_stages(args, stages)
