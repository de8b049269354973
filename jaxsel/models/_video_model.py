"""Video response models as pure functions of plain pytrees (the video twin of ``Model``).

:func:`build_video_model` turns a :class:`VideoModelConfig` and the data's shapes into a
:class:`VideoModel`:

* ``init(key, mean_response=None) -> (params, state)``;
* ``apply(params, state, videos, train=False, rng=None, mask=None) -> (rates, state)`` with
  ``videos`` (batch, channel, time, y, x) standardized and ``rates`` (batch, time, neuron);
* ``regularizer(params, hparams) -> scalar``; ``constrain(params) -> params``.

Causality: in evaluation mode the rate at frame t depends on frames <= t only (the temporal
convolutions are causal, the spatial ones and the readout act frame by frame). Parameters do
not depend on the clip length: one model runs on clips of any number of frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp

from jaxsel._errors import ConfigError
from jaxsel.models import _regularizers as R
from jaxsel.models._flax_glue import apply_module, init_variables
from jaxsel.models._model import elu1_inverse
from jaxsel.models._video_config import VideoModelConfig
from jaxsel.models._video_core import VideoEncoder


@dataclass(frozen=True)
class VideoModel:
    """A video response model: config, frame shape, neuron count and pure functions.

    Attributes:
      config: the :class:`VideoModelConfig`.
      frame_shape: (channel, y, x) of one standardized frame.
      n_neurons: number of output neurons.
    """

    config: VideoModelConfig
    frame_shape: tuple[int, int, int]
    n_neurons: int

    @property
    def module(self) -> VideoEncoder:
        """The Flax module (hashable; parameters live outside it)."""
        return VideoEncoder(self.config, self.n_neurons)

    def init(self, key, mean_response=None, positions=None) -> tuple[dict, dict]:
        """Initial ``(params, state)``.

        Args:
          key: PRNG key.
          mean_response: optional (neuron,) mean response in model units: the readout bias
            starts at ``elu1_inverse(mean_response)`` (initial rates near the means).
          positions: optional (neuron, 2) ``[x, y]`` initial readout positions in [-1, 1]
            (e.g. :func:`jaxsel.models.video_energy_positions`).
        """
        c, h, w = self.frame_shape
        x = jnp.zeros((1, c, self.config.receptive_frames, h, w), jnp.float32)
        params, state = init_variables("video_model_init", self.module, key, x)
        if mean_response is not None:
            mean = jnp.asarray(mean_response, jnp.float32).reshape(-1)
            if mean.shape != (self.n_neurons,):
                raise ConfigError(
                    f"mean_response has shape {tuple(mean.shape)}; expected ({self.n_neurons},)"
                )
            params["readout"]["bias"] = jnp.asarray(
                elu1_inverse(mean) - self.config.elu_offset, jnp.float32
            )
        if positions is not None:
            pos = jnp.asarray(positions, jnp.float32)
            if pos.shape != (self.n_neurons, 2):
                raise ConfigError(
                    f"positions has shape {tuple(pos.shape)}; expected ({self.n_neurons}, 2)"
                )
            params["readout"]["mu"] = jnp.clip(pos, -1.0, 1.0)
        return params, state

    def apply(self, params, state, videos, *, train: bool = False, rng=None, mask=None):
        """Rates for standardized clips.

        Args:
          params, state: from :meth:`init` (or training).
          videos: (batch, channel, time, y, x) standardized clips.
          train: training mode (BatchNorm batch statistics, sampled readout positions).
          rng: PRNG key for the readout position samples (required when ``train``).
          mask: optional (batch,) bool: in training mode BatchNorm statistics use only these
            clips (the padding of a last batch is excluded).

        Returns:
          ``(rates (batch, time, neuron), new_state)``; in eval mode ``new_state is state``.
        """
        return apply_module(self.module, params, state, videos, train=train, rng=rng, mask=mask)

    def regularizer(self, params, hparams) -> jnp.ndarray:
        """``gamma_input * laplace(first spatial kernels) + gamma_temporal * sum of squared
        second differences of the temporal kernels + gamma_readout * L1(features)``.

        Args:
          params: model parameters.
          hparams: dict with scalar ``gamma_input``, ``gamma_temporal``, ``gamma_readout``
            (see :func:`video_hparams`).
        """
        core = params["core"]
        total = hparams["gamma_input"] * R.laplace_l2(R.hwio_filters(core["layer0_spatial"]))
        smooth = jnp.float32(0.0)
        for layer in range(self.config.layers):
            k = core[f"layer{layer}_temporal"]
            if k.shape[0] >= 3:
                smooth = smooth + jnp.sum((k[2:] - 2.0 * k[1:-1] + k[:-2]) ** 2)
        total = total + hparams["gamma_temporal"] * smooth
        return total + hparams["gamma_readout"] * R.l1(params["readout"]["features"])

    def constrain(self, params):
        """Readout positions clipped to [-1, 1] (isotropic sigma kept >= 0); pure."""
        ro = dict(params["readout"])
        ro["mu"] = jnp.clip(ro["mu"], -1.0, 1.0)
        if self.config.gauss_type == "isotropic":
            ro["sigma"] = jnp.maximum(ro["sigma"], 0.0)
        return {**params, "readout": ro}

    def positions(self, params) -> jnp.ndarray:
        """(neuron, 2) readout positions ``[x, y]`` in [-1, 1]."""
        return jnp.clip(params["readout"]["mu"], -1.0, 1.0)


def video_hparams(cfg: VideoModelConfig) -> dict:
    """Regularizer strengths of a config as float32 arrays (the ``hparams`` of a step)."""
    return {
        "gamma_input": jnp.float32(cfg.gamma_input),
        "gamma_temporal": jnp.float32(cfg.gamma_temporal),
        "gamma_readout": jnp.float32(cfg.gamma_readout),
    }


def build_video_model(cfg: VideoModelConfig, *, frame_shape, n_neurons: int) -> VideoModel:
    """A :class:`VideoModel` for frames of ``frame_shape`` = (channel, y, x).

    Raises:
      ConfigError: ``cfg`` is not a VideoModelConfig, a bad ``frame_shape`` or
        ``n_neurons``.
    """
    if not isinstance(cfg, VideoModelConfig):
        raise ConfigError(
            f"build_video_model: cfg is a {type(cfg).__name__}; expected a VideoModelConfig "
            "(VideoModelConfig.from_dict({...}))"
        )
    shape = tuple(int(s) for s in frame_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(
            f"build_video_model: frame_shape = {tuple(frame_shape)!r}: expected (channel, y, x)"
        )
    if isinstance(n_neurons, bool) or int(n_neurons) < 1:
        raise ConfigError(f"build_video_model: n_neurons = {n_neurons!r}: expected >= 1")
    return VideoModel(cfg, shape, int(n_neurons))


__all__ = ["VideoModel", "build_video_model", "video_hparams"]
