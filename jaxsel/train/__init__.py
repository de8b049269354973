"""Training: losses, the vmappable train step, early stopping, checkpoints, ``fit`` and
``fit_many``, sweeps, sharding, and self-contained model files.

::

    result = fit("small", ds, seed=0, out_dir="runs/x")     # -> FitResult
    model = as_response_model(result)                        # -> jaxsel.models.ResponseModel
    save_model(result, "model/")                             # one self-contained folder
    model = load_model("model/")                             # no dataset needed
    many = fit_many("small", ds, seeds=[0, 1, 2])            # K models, one model axis
    multi = fit_sessions("small", {"s1": ds1, "s2": ds2})    # one core, a readout per session
    new = fit_readout(multi, {"s3": ds3})                    # a new session on the frozen core
    rm = multi.response_model("s1")                          # one session as a ResponseModel

Building blocks for vectorised training (one model written, ``jax.vmap`` for many):
``make_train_step``, ``make_predict``, ``make_optimizer``, ``set_learning_rate``,
``make_hparams``, ``plateau_init``/``plateau_update``.
"""

from jaxsel.train._config import CONFIG_ALIASES, NAMED_CONFIGS, Config, TrainConfig, named_config
from jaxsel.train._fit import FitResult, fit, load_fit, response_function
from jaxsel.train._losses import (
    LOSSES,
    fit_zig_parameters,
    gamma_loss,
    masked_correlation,
    mse_loss,
    poisson_loglik,
    poisson_loss,
    zig_loglik,
    zig_loss,
    zig_parameters,
)
from jaxsel.train._many import PER_MODEL_FIELDS, ManyResult, fit_many
from jaxsel.train._model_file import (
    FORMAT_VERSION,
    as_response_model,
    load_model,
    predict_responses,
    read_model_meta,
    save_model,
)
from jaxsel.train._multi_fit import fit_readout, fit_sessions
from jaxsel.train._multi_result import MultiFitResult, evaluate_sessions, load_sessions_fit
from jaxsel.train._per_neuron import make_per_neuron_step
from jaxsel.train._schedule import (
    PlateauEvent,
    PlateauState,
    plateau_init,
    plateau_update,
    select_tree,
)
from jaxsel.train._sharding import initialize_distributed, model_mesh, model_sharding, shard_models
from jaxsel.train._step import (
    get_learning_rate,
    make_hparams,
    make_optimizer,
    make_predict,
    make_train_step,
    set_learning_rate,
)
from jaxsel.train._sweep import SweepSpec, run_sweep, sweep_spec
from jaxsel.train._video_data import VideoConfig
from jaxsel.train._video_fit import fit_video, make_video_train_step
from jaxsel.train._video_result import VideoFitResult, load_video_fit

__all__ = [
    "CONFIG_ALIASES",
    "FORMAT_VERSION",
    "LOSSES",
    "NAMED_CONFIGS",
    "PER_MODEL_FIELDS",
    "Config",
    "FitResult",
    "ManyResult",
    "MultiFitResult",
    "PlateauEvent",
    "PlateauState",
    "SweepSpec",
    "TrainConfig",
    "VideoConfig",
    "VideoFitResult",
    "as_response_model",
    "evaluate_sessions",
    "fit",
    "fit_many",
    "fit_readout",
    "fit_sessions",
    "fit_video",
    "fit_zig_parameters",
    "gamma_loss",
    "get_learning_rate",
    "initialize_distributed",
    "load_fit",
    "load_model",
    "load_sessions_fit",
    "load_video_fit",
    "make_hparams",
    "make_optimizer",
    "make_per_neuron_step",
    "make_predict",
    "make_train_step",
    "make_video_train_step",
    "masked_correlation",
    "model_mesh",
    "model_sharding",
    "mse_loss",
    "named_config",
    "plateau_init",
    "plateau_update",
    "poisson_loglik",
    "poisson_loss",
    "predict_responses",
    "read_model_meta",
    "response_function",
    "run_sweep",
    "save_model",
    "select_tree",
    "set_learning_rate",
    "shard_models",
    "sweep_spec",
    "zig_loglik",
    "zig_loss",
    "zig_parameters",
]
