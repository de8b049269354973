"""Run configuration (compatibility re-export).

The run configuration lives in :mod:`jaxsel.pipeline`: the schema in
``jaxsel.pipeline._config_schema``, reading/validation in ``jaxsel.pipeline._config_io``,
TOML output in ``jaxsel.pipeline._config_docs`` and the demo TOML as package data
(``jaxsel/pipeline/demo_twin.toml``). This module only re-exports those names.
"""

from __future__ import annotations

from jaxsel._dataclass_io import close_key, to_dict
from jaxsel._dataclass_io import plain as to_dict_value
from jaxsel.pipeline._config_docs import defaults_toml, field_docs, to_toml
from jaxsel.pipeline._config_io import (check_overrides, config_from_dict, demo_config,
                                        demo_toml, load_config, parse_override, replace,
                                        section_hash)
from jaxsel.pipeline._config_schema import (DATA_SOURCES, STAGES, Config, DataSection,
                                            EvaluateSection, GaborSection, MeiSection,
                                            ReportSection, RunSection, SweepSection,
                                            TrainSection)

__all__ = ["DATA_SOURCES", "STAGES", "Config", "DataSection", "EvaluateSection",
           "GaborSection", "MeiSection", "ReportSection", "RunSection", "SweepSection",
           "TrainSection", "check_overrides", "close_key", "config_from_dict", "defaults_toml",
           "demo_config", "demo_toml", "field_docs", "load_config",
           "parse_override", "replace", "section_hash", "to_dict", "to_dict_value", "to_toml"]
