"""Response models: pure-functional Flax modules whose parameters are plain pytrees.

::

    model = build_model(ModelConfig(...), image_shape=(1, 36, 64), n_neurons=N)
    params, state = model.init(key, mean_response=..., source_grid=...)
    rates, state = model.apply(params, state, std_images, train=True, rng=key)

A fitted model is a :class:`ResponseModel`: ``fn(params, raw_images) -> rates`` and its
parameter pytree (it unpacks as ``fn, params = model``); :func:`predict` runs any model on
many images in fixed-size batches, compiled once. Named configurations live in
:func:`jaxsel.train.named_config`.
"""

from jaxsel.models._config import GridMeanPredictorConfig, ModelConfig, SessionModelConfig
from jaxsel.models._conv_impl import CONV_IMPLS, compiler_options, conv_implementation, fft_conv
from jaxsel.models._core import conv_padding, pooled_kernel
from jaxsel.models._model import Encoder, Model, build_model, default_hparams, elu1, elu1_inverse
from jaxsel.models._readout_init import energy_positions
from jaxsel.models._readouts import normalize_source_grid, sample_grid
from jaxsel.models._regularizers import group_sparsity, l1, laplace, laplace_l2, laplace_l2_norm
from jaxsel.models._response import ResponseModel, predict
from jaxsel.models._sampling import bilinear_sample, laplacian_pyramid
from jaxsel.models._sessions import (
    MultiModel,
    SessionShape,
    build_multi_model,
    multi_hparams,
)
from jaxsel.models._video_config import VideoModelConfig
from jaxsel.models._video_model import VideoModel, build_video_model, video_hparams
from jaxsel.models._video_readout_init import video_energy_positions

__all__ = [
    "CONV_IMPLS",
    "Encoder",
    "GridMeanPredictorConfig",
    "Model",
    "ModelConfig",
    "MultiModel",
    "ResponseModel",
    "SessionModelConfig",
    "SessionShape",
    "VideoModel",
    "VideoModelConfig",
    "bilinear_sample",
    "build_model",
    "build_multi_model",
    "build_video_model",
    "compiler_options",
    "conv_implementation",
    "conv_padding",
    "default_hparams",
    "elu1",
    "elu1_inverse",
    "energy_positions",
    "fft_conv",
    "group_sparsity",
    "l1",
    "laplace",
    "laplace_l2",
    "laplace_l2_norm",
    "laplacian_pyramid",
    "multi_hparams",
    "normalize_source_grid",
    "pooled_kernel",
    "predict",
    "sample_grid",
    "video_energy_positions",
    "video_hparams",
]
