"""Training configuration, the full run config (model + training), and named configs."""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field

from jaxsel._dataclass_io import from_dict, to_dict
from jaxsel._errors import ConfigError
from jaxsel.models import GridMeanPredictorConfig, ModelConfig

LOSS_NAMES = ("poisson", "mse", "gamma", "zig")


@dataclass(frozen=True)
class TrainConfig:
    """How a model is fitted (defaults: the neuralpredictors training recipe, as in Lurz 2021).

    Attributes:
      loss: ``"poisson"`` (sum of f - r log(f + eps)), ``"mse"`` (sum of (f - r)^2),
        ``"gamma"`` (Gamma negative log-likelihood with shape ``gamma_shape``, mean f) or
        ``"zig"`` (zero-inflated gamma negative log-likelihood for calcium-like responses,
        mean f: :func:`~jaxsel.train.zig_loss`; its per-neuron gate, shape and zero
        threshold are estimated once from the train-tier responses by
        :func:`~jaxsel.train.fit_zig_parameters`; ``fit`` only, not ``fit_many``).
      eps: the epsilon inside the logarithms of the Poisson and Gamma losses.
      gamma_shape: shape parameter of the Gamma loss.
      batch_size: images per step (the last batch of an epoch is padded and masked).
      lr: initial Adam learning rate.
      lr_decay_factor: learning rate multiplier at each plateau.
      patience: epochs without improvement of the validation score that make a plateau.
      lr_decay_steps: plateaus allowed: at each plateau the best parameters are restored and
        the learning rate is multiplied by ``lr_decay_factor``; training stops at the
        ``lr_decay_steps``-th plateau (neuralpredictors ``early_stopping`` semantics).
      min_lr: the learning rate never decays below this.
      tolerance: an epoch improves if its score exceeds the best by more than this.
      max_epochs: hard limit on training epochs.
      scale_loss: multiply the summed batch loss by sqrt(n_train / batch_size) before adding
        the regularizers (neuralpredictors ``scale_loss``), so regularizer strengths mean the
        same for any batch size.
      scale_responses: divide responses by their train-tier std (floored) before fitting;
        predictions are scaled back, so rates come out in the data's units either way.
      per_pixel: z-score images per pixel instead of with one global mean and std.
      eval_batch_size: images per step when predicting (validation, evaluation).
      progress: show a tqdm progress bar (loss and validation correlation).
    """

    loss: str = "poisson"
    eps: float = 1e-8
    gamma_shape: float = 1.0
    batch_size: int = 64
    lr: float = 0.005
    lr_decay_factor: float = 0.3
    patience: int = 5
    lr_decay_steps: int = 3
    min_lr: float = 1e-4
    tolerance: float = 1e-6
    max_epochs: int = 200
    scale_loss: bool = True
    scale_responses: bool = True
    per_pixel: bool = False
    eval_batch_size: int = 256
    progress: bool = True

    def __post_init__(self):
        if self.loss not in LOSS_NAMES:
            close = difflib.get_close_matches(str(self.loss), list(LOSS_NAMES), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"train.loss = {self.loss!r} is not one of {list(LOSS_NAMES)}{hint}")
        for name in ("batch_size", "patience", "lr_decay_steps", "max_epochs", "eval_batch_size"):
            v = getattr(self, name)
            if (
                isinstance(v, bool)
                or not isinstance(v, int)
                or v < (0 if name == "max_epochs" else 1)
            ):
                raise ConfigError(f"train.{name} must be a positive integer (got {v!r})")
        if not self.lr > 0:
            raise ConfigError(f"train.lr must be > 0 (got {self.lr})")
        if not 0 < self.lr_decay_factor <= 1:
            raise ConfigError(
                f"train.lr_decay_factor must be in (0, 1] (got {self.lr_decay_factor})"
            )


# Fields that may differ between an interrupted run and its resumption.
RESUMABLE_FIELDS = ("max_epochs", "progress", "eval_batch_size")


@dataclass(frozen=True)
class Config:
    """A full run: model and training.

    Attributes:
      name: a label (the named config it came from, or "custom").
      model: the :class:`~jaxsel.ModelConfig`.
      train: the :class:`TrainConfig`.
    """

    name: str = "custom"
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_dict(cls, d: dict) -> Config:
        """Build from ``{"name": ..., "model": {...}, "train": {...}}``; unknown keys raise
        :class:`~jaxsel.ConfigError` naming the closest valid key. A ``"base"`` key
        starts from a named config and overrides it."""
        d = dict(d)
        base = d.pop("base", None)
        if base is not None:
            start = named_config(base)
            model = {**to_dict(start.model), **dict(d.pop("model", {}) or {})}
            train = {**to_dict(start.train), **dict(d.pop("train", {}) or {})}
            d = {"name": d.pop("name", base), "model": model, "train": train, **d}
        return from_dict(cls, d)

    def to_dict(self) -> dict:
        """The config as plain JSON-able data (round-trips through :meth:`from_dict`)."""
        return to_dict(self)

    def replace(self, **train_or_model) -> Config:
        """A copy with fields changed; keys are looked up in ``train`` then ``model``."""
        t, m = {}, {}
        tnames = {f.name for f in dataclasses.fields(TrainConfig)}
        mnames = {f.name for f in dataclasses.fields(ModelConfig)}
        for k, v in train_or_model.items():
            if k in tnames:
                t[k] = v
            elif k in mnames:
                m[k] = v
            else:
                close = difflib.get_close_matches(k, sorted(tnames | mnames), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise ConfigError(f"unknown config field '{k}'{hint}")
        return dataclasses.replace(
            self,
            model=dataclasses.replace(self.model, **m),
            train=dataclasses.replace(self.train, **t),
        )


def _named() -> dict[str, Config]:
    cortex = GridMeanPredictorConfig(
        type="cortex", input_dimensions=2, hidden_layers=0, hidden_features=0, final_tanh=False
    )
    return {
        # Stacked core + Gaussian readout with a cortex-position grid predictor, with the
        # hyperparameters of Lurz et al. 2021 (ICLR) (as taught at the FENS-2022 workshop).
        "lurz2020": Config(
            "lurz2020",
            ModelConfig(
                layers=4,
                hidden_channels=64,
                input_kern=15,
                hidden_kern=13,
                gamma_input=1.0,
                laplace_normalized=False,
                gamma_hidden=0.0,
                gamma_readout=2.439,
                init_mu_range=0.55,
                init_sigma=0.4,
                grid_mean_predictor=cortex,
            ),
        ),
        # Sensorium 2022 baseline (neuralpredictors stacked core + Gaussian readout).
        "sensorium2022": Config(
            "sensorium2022",
            ModelConfig(
                layers=4,
                hidden_channels=64,
                input_kern=9,
                hidden_kern=7,
                depth_separable=True,
                gamma_input=6.3831,
                laplace_normalized=True,
                gamma_hidden=0.0,
                gamma_readout=0.0076,
                init_mu_range=0.3,
                init_sigma=0.1,
                grid_mean_predictor=GridMeanPredictorConfig(
                    hidden_layers=1, hidden_features=30, final_tanh=True
                ),
            ),
        ),
        # Pyramid-readout CNN: 3 layers x 64 ch, 4x4 then 3x3 kernels, pool 2, all layers
        # stacked, positive-feature Laplacian-pyramid readout (gauss5x5, 3 levels).
        "pyramid": Config(
            "pyramid",
            ModelConfig(
                layers=3,
                hidden_channels=64,
                input_kern=4,
                hidden_kern=3,
                pooling=2,
                hidden_pooling=1,
                skip=1,
                stack=None,
                gamma_input=0.1,
                gamma_hidden=0.1,
                laplace_normalized=False,
                readout="pyramid",
                pyramid_levels=3,
                pyramid_filter="gauss5x5",
                positive_features=True,
                init_mu_range=0.1,
                gamma_readout=0.0,
            ),
        ),
        # A small, fast CNN for CPU demos and tests (measured: see benchmarks/).
        # 3 layers x 16 channels, 9x9 then 5x5 kernels, 2x2 average pooling after the
        # first layer, all layers read out (~4x fewer FLOPs than full resolution).
        # Readout positions start at each neuron's contrast-energy peak: with random
        # positions 33 of 270 responsive twin neurons never found their RF (correlation
        # with the truth < 0.5; median 0.915), with readout_init="energy" 1 (median 0.949).
        # Numbers of the last run: README "Measured on the digital twin".
        "small": Config(
            "small",
            ModelConfig(
                layers=3,
                hidden_channels=16,
                input_kern=9,
                hidden_kern=5,
                pooling=2,
                gamma_input=0.5,
                laplace_normalized=False,
                gamma_hidden=0.0,
                gamma_readout=0.5,
                init_mu_range=0.5,
                init_sigma=0.2,
                stack=None,
                readout_init="energy",
            ),
            TrainConfig(batch_size=64, max_epochs=30, patience=3),
        ),
        # LN model (BN -> linear -> ELU+1), Laplace-smoothed weights.
        "ln": Config(
            "ln",
            ModelConfig(
                kind="ln", input_bn=True, init_std=1e-3, gamma_input=1.0, gamma_readout=0.0
            ),
            TrainConfig(batch_size=64, max_epochs=100, patience=4),
        ),
    }


CONFIG_ALIASES = {"fens_lurz2020": "lurz2020", "seed002": "pyramid"}
"""Former names of named configs -> current ones (resolved silently by :func:`named_config`)."""
NAMED_CONFIGS = tuple(_named()) + tuple(CONFIG_ALIASES)
"""Every name :func:`named_config` accepts: the named configs and their aliases."""


def named_config(name: str) -> Config:
    """One of the named configs: ``lurz2020`` (stacked core, Gaussian readout, Lurz et al.
    2021 values), ``sensorium2022``, ``pyramid`` (stacked core, Laplacian-pyramid readout),
    ``small``, ``ln``; the former names in :data:`CONFIG_ALIASES` are accepted too.

    Raises:
      ConfigError: an unknown name (naming the closest one).
    """
    table = _named()
    name = CONFIG_ALIASES.get(name, name)
    if name not in table:
        close = difflib.get_close_matches(str(name), list(table), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown named config '{name}'{hint} (known: {', '.join(table)})")
    return table[name]


__all__ = [
    "CONFIG_ALIASES",
    "NAMED_CONFIGS",
    "RESUMABLE_FIELDS",
    "Config",
    "TrainConfig",
    "named_config",
]
