"""jaxsel: neural system identification and in-silico selectivity analysis in JAX.

``import jaxsel as js`` gives the everyday names flat (``js.simulate``, ``js.load_static``,
``js.fit``, ``js.fit_many``, ``js.evaluate``, ``js.save_model``, ``js.load_model``,
``js.predict``, ...) and one namespace per stage, in the order data flows through them:
:mod:`jaxsel.data` (datasets, loaders, stimuli, the digital twin), :mod:`jaxsel.models`,
:mod:`jaxsel.train`, :mod:`jaxsel.measures`, :mod:`jaxsel.insilico`, :mod:`jaxsel.viz`,
:mod:`jaxsel.pipeline` (whole runs from a TOML config) and :mod:`jaxsel.cli`. Modules whose
names start with an underscore are the implementation, not the API.

Importing jaxsel changes no JAX configuration and selects no device.
"""

__version__ = "0.1.0"

from jaxsel import data, insilico, measures, models, pipeline, train, viz
from jaxsel._compile_cache import clear_caches
from jaxsel._errors import ConfigError, DataError, JaxselError, MissingInput, TrainingError
from jaxsel.data import (
    load_allen_nwb,
    load_arrays,
    load_static,
    load_table,
    make_dataset,
    save_static,
    simulate,
    simulate_movies,
)
from jaxsel.insilico import gradient_rf, optimal_gabors, optimize_meis
from jaxsel.measures import evaluate, oracle_correlation, selection_table
from jaxsel.models import ModelConfig, ResponseModel, predict
from jaxsel.pipeline import load_config, run_pipeline
from jaxsel.train import (
    FitResult,
    ManyResult,
    as_response_model,
    fit,
    fit_many,
    fit_sessions,
    load_model,
    named_config,
    save_model,
)

__all__ = [
    "ConfigError",
    "DataError",
    "FitResult",
    "JaxselError",
    "ManyResult",
    "MissingInput",
    "ModelConfig",
    "ResponseModel",
    "TrainingError",
    "__version__",
    "as_response_model",
    "clear_caches",
    "data",
    "evaluate",
    "fit",
    "fit_many",
    "fit_sessions",
    "gradient_rf",
    "insilico",
    "load_allen_nwb",
    "load_arrays",
    "load_config",
    "load_model",
    "load_static",
    "load_table",
    "make_dataset",
    "measures",
    "models",
    "named_config",
    "optimal_gabors",
    "optimize_meis",
    "oracle_correlation",
    "pipeline",
    "predict",
    "run_pipeline",
    "save_model",
    "save_static",
    "selection_table",
    "simulate",
    "simulate_movies",
    "train",
    "viz",
]
