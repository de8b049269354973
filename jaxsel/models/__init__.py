"""Response models: pure-functional Flax modules whose parameters are plain pytrees.

Public API::

    from jaxsel.models import ModelConfig, build_model
    model = build_model(ModelConfig(...), image_shape=(1, 36, 64), n_neurons=N)
    params, state = model.init(key, mean_response=..., source_grid=...)
    rates, state = model.apply(params, state, std_images, train=True, rng=key)
    penalty = model.regularizer(params, default_hparams(model.config))

Named configurations live in :func:`jaxsel.train.named_config`.
"""

from jaxsel.models._response import ResponseModel, as_images, predict
from jaxsel.models.config import GridMeanPredictorConfig, ModelConfig, from_dict, to_dict
from jaxsel.models.model import (Encoder, Model, build_model, default_hparams, elu1,
                                 elu1_inverse)
from jaxsel.models.readouts import sample_grid
from jaxsel.models.regularizers import (group_sparsity, l1, laplace, laplace_l2,
                                        laplace_l2_norm)
from jaxsel.models.sampling import bilinear_sample, laplacian_pyramid

__all__ = [
    "Encoder", "GridMeanPredictorConfig", "Model", "ModelConfig", "ResponseModel",
    "as_images", "bilinear_sample",
    "build_model", "default_hparams", "elu1", "elu1_inverse", "from_dict", "group_sparsity",
    "l1", "laplace", "laplace_l2", "laplace_l2_norm", "laplacian_pyramid", "predict",
    "sample_grid", "to_dict",
]
