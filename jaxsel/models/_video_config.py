"""Configuration of a video response model (:class:`VideoModelConfig`), strict and hashable.

A video model maps standardized clips (batch, channel, time, y, x) to positive rates
(batch, time, neuron). Its core is factorised in space and time: every layer is a spatial
``k x k`` convolution followed by a *causal* temporal convolution of ``kt`` frames (the
output at frame t sees frames t-kt+1..t only), then BatchNorm and ELU. A Gaussian readout
reads every frame of the last layer at one position per neuron, with one feature vector per
neuron, both shared over time; ``ELU(.) + 1`` gives the rates.
"""

from __future__ import annotations

from dataclasses import dataclass

from jaxsel._dataclass_io import from_dict, to_dict
from jaxsel._errors import ConfigError

_POSITIVE_INTS = (
    "layers",
    "hidden_channels",
    "input_kern",
    "hidden_kern",
    "input_kern_time",
    "hidden_kern_time",
)


@dataclass(frozen=True)
class VideoModelConfig:
    """A factorised (2-D space then causal 1-D time) convolutional core + Gaussian readout.

    Attributes:
      layers: conv layers in the core.
      hidden_channels: channels of every layer.
      input_kern: spatial kernel size (pixels) of the first layer.
      hidden_kern: spatial kernel size of the other layers.
      input_kern_time: temporal kernel length (frames) of the first layer (causal).
      hidden_kern_time: temporal kernel length of the other layers (causal).
      batch_norm: BatchNorm after each layer's temporal conv (statistics over batch, time
        and space per channel; in training mode they mix frames of a clip, so causality
        holds in evaluation mode, the mode of every prediction and in-silico experiment).
      bn_momentum: BatchNorm running-average momentum (Flax convention, 0.9 = PyTorch 0.1).
      final_nonlinearity: ELU after the last layer.
      gamma_input: Laplace smoothness penalty on the first layer's spatial kernels
        (``sum |lap w|^2 / 2``).
      gamma_temporal: smoothness penalty on every temporal kernel: the sum of squared
        second differences along time.
      gamma_readout: L1 penalty on the readout feature weights.
      readout_init: ``"energy"`` (each neuron's position starts where its training
        responses correlate best with the recent local contrast energy of the clips, see
        :func:`jaxsel.models.video_energy_positions`) or ``"random"`` (uniform in
        +-init_mu_range).
      gauss_type: readout covariance: ``"full"`` or ``"isotropic"`` (see
        :class:`jaxsel.ModelConfig`).
      init_mu_range: readout positions start uniform in [-init_mu_range, init_mu_range].
      init_sigma: initial readout position spread.
      elu_offset: constant added before the final ELU+1.
    """

    layers: int = 2
    hidden_channels: int = 16
    input_kern: int = 9
    hidden_kern: int = 5
    input_kern_time: int = 11
    hidden_kern_time: int = 5
    batch_norm: bool = True
    bn_momentum: float = 0.9
    final_nonlinearity: bool = True
    gamma_input: float = 0.5
    gamma_temporal: float = 0.1
    gamma_readout: float = 0.5
    readout_init: str = "energy"
    gauss_type: str = "full"
    init_mu_range: float = 0.5
    init_sigma: float = 0.2
    elu_offset: float = 0.0

    def __post_init__(self):
        for name in _POSITIVE_INTS:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(
                    f"video model: {name} = {v!r}: expected a positive integer "
                    f"(VideoModelConfig({name}=...))"
                )
        if self.gauss_type not in ("full", "isotropic"):
            raise ConfigError(
                f"video model: gauss_type = {self.gauss_type!r}: expected 'full' or 'isotropic'"
            )
        if self.readout_init not in ("energy", "random"):
            raise ConfigError(
                f"video model: readout_init = {self.readout_init!r}: expected 'energy' or 'random'"
            )
        if not 0.0 < self.init_mu_range <= 1.0:
            raise ConfigError(
                f"video model: init_mu_range = {self.init_mu_range!r}: expected a number in (0, 1]"
            )
        if not self.init_sigma > 0:
            raise ConfigError(f"video model: init_sigma = {self.init_sigma!r}: expected > 0")
        if not 0.0 <= self.bn_momentum < 1.0:
            raise ConfigError(
                f"video model: bn_momentum = {self.bn_momentum!r}: expected a number in [0, 1)"
            )
        for name in ("gamma_input", "gamma_temporal", "gamma_readout"):
            if not getattr(self, name) >= 0:
                raise ConfigError(
                    f"video model: {name} = {getattr(self, name)!r}: expected a number >= 0"
                )

    @property
    def receptive_frames(self) -> int:
        """Frames one output frame depends on: ``input_kern_time + (layers - 1) *
        (hidden_kern_time - 1)`` (a sensible lower bound for a clip's burn-in)."""
        return self.input_kern_time + (self.layers - 1) * (self.hidden_kern_time - 1)

    def to_dict(self) -> dict:
        """Plain JSON-able data (round-trips through :meth:`from_dict`)."""
        return to_dict(self)

    @classmethod
    def from_dict(cls, d: dict) -> VideoModelConfig:
        """Build strictly from a dict: an unknown key raises a ConfigError naming the
        closest valid one."""
        return from_dict(cls, d, where="video_model")


__all__ = ["VideoModelConfig"]
