"""Training: losses, the vmappable train step, early stopping, checkpoints and ``fit``.

Public API::

    from jaxsel.train import fit, named_config
    result = fit("small", ds, seed=0, out_dir="runs/x")      # -> FitResult
    fn, params = result.response_fn()                         # in-silico pair
    rates = result.predict(raw_images)
    save_model(result, "model/")                              # one self-contained folder
    model = load_model("model/")                              # -> ResponseModel, no dataset
    rates = predict(model, raw_images)

Building blocks for vectorised training (one model written, ``jax.vmap`` for many):
``make_train_step``, ``make_predict``, ``make_optimizer``, ``set_learning_rate``,
``make_hparams``, ``plateau_init``/``plateau_update``/``select_tree``.
"""

from jaxsel.models import predict
from jaxsel.train._model_file import (as_response_model, load_model, predict_responses,
                                      save_model)
from jaxsel.train.config import NAMED_CONFIGS, Config, TrainConfig, named_config
from jaxsel.train.fit import FitResult, fit, load_fit, response_function
from jaxsel.train.losses import (LOSSES, gamma_loss, masked_correlation, mse_loss,
                                 poisson_loglik, poisson_loss)
from jaxsel.train.schedule import (PlateauEvent, PlateauState, plateau_init, plateau_update,
                                   select_tree)
from jaxsel.train.step import (get_learning_rate, make_hparams, make_optimizer, make_predict,
                               make_train_step, set_learning_rate)

__all__ = [
    "LOSSES", "NAMED_CONFIGS", "Config", "FitResult", "PlateauEvent", "PlateauState",
    "TrainConfig", "as_response_model", "fit", "gamma_loss", "get_learning_rate", "load_fit",
    "load_model", "make_hparams",
    "make_optimizer", "make_predict", "make_train_step", "masked_correlation", "mse_loss",
    "named_config", "plateau_init", "plateau_update", "poisson_loglik", "poisson_loss",
    "predict", "predict_responses", "response_function", "save_model", "select_tree", "set_learning_rate",
]
