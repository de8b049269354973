"""Whole runs: the run configuration (a TOML file validated against frozen dataclasses), the
run folder, one function per stage and the HTML report. ``run_pipeline(config)`` runs every
stage in order, skipping those already finished with the same config."""

from jaxsel.pipeline._config_docs import defaults_toml, to_toml
from jaxsel.pipeline._config_io import (
    config_from_dict,
    demo_config,
    demo_toml,
    load_config,
    parse_override,
    section_hash,
)
from jaxsel.pipeline._config_schema import STAGES, Config
from jaxsel.pipeline._context import check_data_paths, open_nc, save_nc
from jaxsel.pipeline._insilico_stages import load_mei
from jaxsel.pipeline._report import HEADLINE_METRICS
from jaxsel.pipeline._stages import run_pipeline
from jaxsel.pipeline._sweep import run_config_sweep

__all__ = [
    "HEADLINE_METRICS",
    "STAGES",
    "Config",
    "check_data_paths",
    "config_from_dict",
    "defaults_toml",
    "demo_config",
    "demo_toml",
    "load_config",
    "load_mei",
    "open_nc",
    "parse_override",
    "run_config_sweep",
    "run_pipeline",
    "save_nc",
    "section_hash",
    "to_toml",
]
