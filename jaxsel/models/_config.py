"""Model configuration: frozen dataclasses with documented defaults and strict ``from_dict``.

A :class:`ModelConfig` describes one response model completely (architecture, initialisation
and regularizer strengths); it is hashable, so it can be a static argument of ``jax.jit`` and
an attribute of a Flax module. :func:`from_dict` (the package's one dataclass-config
reader) builds any config dataclass from a plain dict (e.g. parsed JSON/TOML) and rejects
unknown keys, naming the closest valid one.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from jaxsel._dataclass_io import from_dict, to_dict
from jaxsel._errors import ConfigError


@dataclass(frozen=True)
class GridMeanPredictorConfig:
    """Predict each neuron's readout position from its cortical coordinates (Lurz 2020).

    Attributes:
      type: source of the coordinates; only ``"cortex"`` (dataset coords ``cortex_x``,
        ``cortex_y`` [, ``cortex_z``]).
      input_dimensions: how many cortical coordinates to use (2: x, y; 3: x, y, z).
      hidden_layers: hidden layers of the MLP (0: one affine map coordinates -> position).
      hidden_features: width of the hidden layers.
      final_tanh: squash the predicted position with ``tanh`` (keeps it inside [-1, 1]).
    """

    type: str = "cortex"
    input_dimensions: int = 2
    hidden_layers: int = 0
    hidden_features: int = 20
    final_tanh: bool = False

    def __post_init__(self):
        _check_choice("grid_mean_predictor.type", self.type, ("cortex",))
        _check_positive("grid_mean_predictor.input_dimensions", self.input_dimensions)
        if self.input_dimensions > 3:
            raise ConfigError(
                f"grid_mean_predictor.input_dimensions must be 2 or 3 (got {self.input_dimensions})"
            )


@dataclass(frozen=True)
class SessionModelConfig:
    """What a multi-session model adds to the shared core (:func:`jaxsel.models.build_multi_model`).

    One core is shared by every session; each session has its own Gaussian readout (with the
    ``grid_mean_predictor`` of the :class:`ModelConfig`, if any, fitted per session) and
    optionally a shifter and a behaviour modulator.

    Attributes:
      behavior: how per-trial behaviour (``behavior`` variable of a dataset, z-scored per
        session with its train-tier statistics) enters: ``"none"``; ``"modulator"`` (an MLP
        per session from behaviour to a positive gain per neuron, ``exp`` of its output,
        multiplying the rates); ``"input"`` (each behaviour variable is appended to the
        images as a constant channel, so the core sees it).
      behavior_vars: which ``behavior_var`` entries are used, in this order.
      modulator_hidden_layers: hidden ELU layers of the modulator MLP (0: exp of an affine
        map of the behaviour).
      modulator_hidden_features: width of those layers.
      gamma_modulator: L2 penalty (sum of squares) on the modulator's weight matrices.
      shifter: an MLP per session from the (z-scored) pupil centre to a shift of every
        readout position of the trial (Sinz et al. 2018): needs ``pupil_center``.
      shifter_hidden_layers: hidden tanh layers of the shifter (its output is tanh too).
      shifter_hidden_features: width of those layers.
      gamma_shifter: L2 penalty (sum of squares) on the shifter's weight matrices.
      feature_sharing: ``"none"`` (each neuron its own feature weights) or ``"lowrank"``
        (every neuron's weights are ``coeffs[n] @ basis``; the (feature_rank, channel)
        basis is shared by all sessions, the coefficients are per neuron).
      feature_rank: rank of the shared basis for ``"lowrank"``.
    """

    behavior: str = "none"
    behavior_vars: tuple[str, ...] = ("pupil", "dpupil", "running")
    modulator_hidden_layers: int = 1
    modulator_hidden_features: int = 16
    gamma_modulator: float = 0.0
    shifter: bool = False
    shifter_hidden_layers: int = 2
    shifter_hidden_features: int = 5
    gamma_shifter: float = 0.0
    feature_sharing: str = "none"
    feature_rank: int = 8

    def __post_init__(self):
        if isinstance(self.behavior_vars, list):
            object.__setattr__(self, "behavior_vars", tuple(self.behavior_vars))
        _check_choice("sessions.behavior", self.behavior, ("none", "modulator", "input"))
        _check_choice("sessions.feature_sharing", self.feature_sharing, ("none", "lowrank"))
        if self.behavior != "none" and len(self.behavior_vars) == 0:
            raise ConfigError(
                f"sessions.behavior = {self.behavior!r} needs at least one entry in "
                "sessions.behavior_vars (e.g. ['pupil', 'dpupil', 'running'])"
            )
        if len(set(self.behavior_vars)) != len(self.behavior_vars):
            raise ConfigError(f"sessions.behavior_vars has duplicates: {list(self.behavior_vars)}")
        for name in ("modulator_hidden_features", "shifter_hidden_features", "feature_rank"):
            _check_positive(f"sessions.{name}", getattr(self, name))
        for name in ("modulator_hidden_layers", "shifter_hidden_layers"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ConfigError(f"sessions.{name} must be an integer >= 0 (got {v!r})")
        for name in ("gamma_modulator", "gamma_shifter"):
            if getattr(self, name) < 0:
                raise ConfigError(f"sessions.{name} must be >= 0 (got {getattr(self, name)})")


@dataclass(frozen=True)
class ModelConfig:
    """A response model: LN, or a CNN core with a Gaussian or pyramid readout.

    Every model maps standardized images (batch, channel, y, x) to positive rates
    (batch, neuron) in standardized response units through ``ELU(.) + 1``.

    Attributes:
      kind: ``"cnn"`` (core + readout) or ``"ln"`` (optional BN -> linear -> ELU+1).
      layers: conv layers in the core.
      hidden_channels: channels of every core layer.
      input_kern: kernel size of the first layer.
      hidden_kern: kernel size of the other layers.
      hidden_dilation: dilation of the hidden kernels.
      pad_input: zero-pad the first layer to keep the image size (else 'valid').
      pooling: average-pool size (and stride) after the first conv (1: none).
      hidden_pooling: average-pool size after each hidden conv (1: none).
      batch_norm: BatchNorm after each conv (after pooling).
      bn_momentum: BatchNorm running-average momentum, Flax convention
        (0.9 here equals PyTorch's momentum 0.1).
      skip: if > 1, layer l reads the concatenated outputs of the last ``min(skip, l)``
        layers (dense skip connections); 0 or 1: plain stack.
      stack: which layers' outputs go to the readout, as layer indices (negative counts from
        the end); ``None`` concatenates all layers. Default: the last layer only.
      depth_separable: hidden layers are 1x1 -> depthwise kxk -> 1x1 convolutions.
      linear: drop every nonlinearity inside the core (the "linearized" model: an LN model
        with the CNN's architecture; only the final ELU+1 remains).
      final_nonlinearity: ELU after the last core layer.
      gamma_input: strength of the Laplace smoothness penalty on first-layer kernels (for
        ``kind="ln"``: on the weight images).
      laplace_normalized: use the normalized penalty sum|lap w|^2 / sum|w|^2 instead of
        sum|lap w|^2 / 2.
      gamma_hidden: strength of the group-sparsity penalty on hidden kernels (mean over
        (in, out) channel pairs of the L2 norm of the spatial kernel, averaged over layers).
      readout: ``"gaussian"`` (Lurz 2020) or ``"pyramid"`` (seed 002).
      gauss_type: Gaussian readout covariance: ``"full"`` (2x2 square root, init
        uniform(-init_sigma, init_sigma)) or ``"isotropic"`` (one sigma, init init_sigma).
      readout_init: ``"random"`` (positions uniform in +-init_mu_range) or ``"energy"``
        (each neuron's position starts where its training responses correlate best with
        the local contrast energy of the images).
      init_mu_range: readout positions start uniform in [-init_mu_range, init_mu_range]
        (normalized coordinates, [-1, 1] spans the feature map; pyramid: its ``init_range``).
      init_sigma: see ``gauss_type``.
      gamma_readout: L1 penalty on the readout feature weights (sum of absolute values; for
        ``kind="ln"`` on the linear weights).
      grid_mean_predictor: predict positions from cortical coordinates (None: learn them).
      pyramid_levels: Laplacian-pyramid band-pass levels (``scale_n``); the readout samples
        ``pyramid_levels + 1`` maps (the bands and the final low-pass).
      pyramid_filter: ``"gauss5x5"`` or ``"gauss3x3"``.
      positive_features: constrain readout feature weights to be >= 0 (projected after
        every update; the pyramid readout of seed 002 uses it).
      input_bn: ``kind="ln"`` only: BatchNorm on the input image first.
      init_std: ``kind="ln"`` only: std of the normal initialisation of the weights.
      elu_offset: constant added before the final ELU+1.
      sessions: multi-session options (shifter, behaviour, feature sharing) used by
        :func:`jaxsel.train.fit_sessions`; None means the defaults of
        :class:`SessionModelConfig` there, and is ignored by single-session ``fit``.
    """

    kind: str = "cnn"
    # core
    layers: int = 4
    hidden_channels: int = 64
    input_kern: int = 9
    hidden_kern: int = 7
    hidden_dilation: int = 1
    pad_input: bool = True
    pooling: int = 1
    hidden_pooling: int = 1
    batch_norm: bool = True
    bn_momentum: float = 0.9
    skip: int = 0
    stack: tuple[int, ...] | None = (-1,)
    depth_separable: bool = False
    linear: bool = False
    final_nonlinearity: bool = True
    gamma_input: float = 6.3831
    laplace_normalized: bool = False
    gamma_hidden: float = 0.0
    # readout
    readout: str = "gaussian"
    gauss_type: str = "full"
    readout_init: str = "random"
    init_mu_range: float = 0.3
    init_sigma: float = 0.1
    gamma_readout: float = 0.0076
    grid_mean_predictor: GridMeanPredictorConfig | None = None
    pyramid_levels: int = 3
    pyramid_filter: str = "gauss5x5"
    positive_features: bool = False
    # LN
    input_bn: bool = True
    init_std: float = 1e-3
    elu_offset: float = 0.0
    sessions: SessionModelConfig | None = None

    def __post_init__(self):
        if isinstance(self.stack, list):  # a list from Python or TOML: hashable
            object.__setattr__(self, "stack", tuple(self.stack))
        _check_choice("kind", self.kind, ("cnn", "ln"))
        _check_choice("readout", self.readout, ("gaussian", "pyramid"))
        _check_choice("gauss_type", self.gauss_type, ("full", "isotropic"))
        _check_choice("readout_init", self.readout_init, ("random", "energy"))
        _check_choice("pyramid_filter", self.pyramid_filter, ("gauss5x5", "gauss3x3"))
        for name in (
            "layers",
            "hidden_channels",
            "input_kern",
            "hidden_kern",
            "hidden_dilation",
            "pooling",
            "hidden_pooling",
        ):
            _check_positive(name, getattr(self, name))
        if self.pyramid_levels < 0:
            raise ConfigError(f"pyramid_levels must be >= 0 (got {self.pyramid_levels})")
        if not 0.0 < self.init_mu_range <= 1.0:
            raise ConfigError(f"init_mu_range must be in (0, 1] (got {self.init_mu_range})")
        if self.init_sigma <= 0:
            raise ConfigError(f"init_sigma must be > 0 (got {self.init_sigma})")
        for name in ("gamma_input", "gamma_hidden", "gamma_readout"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0 (got {getattr(self, name)})")
        multi = self.stack is None or len({s % self.layers for s in self.stack}) > 1
        if self.hidden_pooling > 1 and self.layers > 1 and (self.skip > 1 or multi):
            raise ConfigError(
                "hidden_pooling > 1 changes the map size from layer to layer, "
                "so layers cannot be concatenated: use skip <= 1 and a single "
                "stacked layer (e.g. stack = [-1]), or hidden_pooling = 1"
            )
        if self.stack is not None:
            if len(self.stack) == 0:
                raise ConfigError("stack must name at least one layer (or be null for all)")
            for s in self.stack:
                if not -self.layers <= s < self.layers:
                    raise ConfigError(
                        f"stack index {s} is outside the {self.layers} layers "
                        f"(use values in [{-self.layers}, {self.layers - 1}])"
                    )


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"{name} = {value!r} is not one of {list(choices)}{hint}")


def _check_positive(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a positive integer (got {value!r})")


__all__ = [
    "GridMeanPredictorConfig",
    "ModelConfig",
    "SessionModelConfig",
    "from_dict",
    "to_dict",
]
