"""``jaxsel run CONFIG.toml``: the whole pipeline as the config says, resumable."""

from __future__ import annotations

import argparse
from pathlib import Path

from jaxsel._dataclass_io import close_key
from jaxsel._errors import ConfigError
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
            help="run config (TOML); default: the embedded twin demo config",
        )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="run folder (overrides run.out; default runs/<run.name>)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.lr=0.01 (repeatable; VALUE is TOML)",
    )
    p.add_argument("--force", action="store_true", help="recompute finished stages")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def load(args):
    """The validated config of a subcommand's arguments."""
    overrides = dict(parse_override(o) for o in args.overrides)
    if args.out is not None:
        overrides["run.out"] = str(args.out)
    if getattr(args, "no_progress", False):
        overrides["run.progress"] = False
    if args.config is None:
        return demo_config(overrides=overrides)
    path = Path(args.config)
    if path.is_dir():  # a run folder: its resolved config, in place
        overrides.setdefault("run.out", str(path))
        path = path / "config.toml"
    return load_config(path, overrides=overrides)


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
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
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
