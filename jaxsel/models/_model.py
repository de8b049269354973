"""Response models as pure functions of plain pytrees.

:func:`build_model` turns a :class:`~jaxsel.ModelConfig` and the data's shapes
into a :class:`Model`, a bundle of pure functions:

* ``init(key, mean_response=None, source_grid=None) -> (params, state)``;
* ``apply(params, state, images, train=False, rng=None) -> (rates, state)``;
* ``regularizer(params, hparams) -> scalar``;
* ``constrain(params) -> params`` (projection after each optimizer update).

``params`` is the nested dict of trainable arrays; ``state`` holds the non-trainable
collections: ``batch_stats`` (BatchNorm running statistics) and ``consts`` (data-derived
constants such as the normalized cortical coordinates of the grid-mean predictor). Both are
plain dicts of arrays, so ``jax.vmap`` over a leading model axis (ensembles, sweeps) works.
Images are standardized (batch, channel, y, x); rates are in standardized response units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxsel._errors import ConfigError
from jaxsel.models import _regularizers as R
from jaxsel.models._config import ModelConfig
from jaxsel.models._core import StackedCore, batchnorm_mask, first_layer_kernel, hidden_kernels
from jaxsel.models._flax_glue import apply_module, init_variables
from jaxsel.models._readouts import GaussianReadout, GridMeanPredictor, PyramidReadout


def elu1(x):
    """The output nonlinearity ``ELU(x) + 1`` (positive rates)."""
    return nn.elu(x) + 1.0


def elu1_inverse(r):
    """Inverse of :func:`elu1` for r > 0 (used to initialise biases at the mean response)."""
    r = np.maximum(np.asarray(r, np.float64), 1e-6)
    return np.where(r >= 1.0, r - 1.0, np.log(r)).astype(np.float32)


class LNModule(nn.Module):
    """Optional BatchNorm on the image -> linear map to every neuron (drives, before ELU+1)."""

    cfg: ModelConfig
    n_neurons: int

    @nn.compact
    def __call__(self, x, train: bool, mask=None):
        if self.cfg.input_bn:
            x = nn.BatchNorm(
                use_running_average=not train,
                momentum=self.cfg.bn_momentum,
                epsilon=1e-5,
                name="bn",
            )(x, mask=batchnorm_mask(mask, x) if train else None)
        x = x.reshape(x.shape[0], -1)  # NHWC flattened: (h, w, c) order
        return nn.Dense(
            self.n_neurons, kernel_init=nn.initializers.normal(self.cfg.init_std), name="linear"
        )(x)


class Encoder(nn.Module):
    """Standardized NCHW images -> positive rates (batch, neuron)."""

    cfg: ModelConfig
    n_neurons: int

    @nn.compact
    def __call__(self, images, train: bool = False, mask=None):
        x = jnp.moveaxis(images, 1, -1)  # NCHW -> NHWC
        if self.cfg.kind == "ln":
            y = LNModule(self.cfg, self.n_neurons, name="ln")(x, train, mask)
        else:
            f = StackedCore(self.cfg, name="core")(x, train, mask)
            readout = GaussianReadout if self.cfg.readout == "gaussian" else PyramidReadout
            y = readout(self.cfg, self.n_neurons, name="readout")(f, train)
        return elu1(y + self.cfg.elu_offset)


@dataclass(frozen=True)
class Model:
    """A response model: its config, input shape and neuron count, and pure functions.

    Attributes:
      config: the model config.
      image_shape: (channel, y, x) of the standardized input images.
      n_neurons: number of output neurons.
    """

    config: ModelConfig
    image_shape: tuple[int, int, int]
    n_neurons: int

    @property
    def module(self) -> Encoder:
        return Encoder(self.config, self.n_neurons)

    def init(self, key, mean_response=None, source_grid=None, positions=None) -> tuple[dict, dict]:
        """Initial ``(params, state)``.

        Args:
          key: PRNG key.
          mean_response: (neuron,) mean training response in model units; the readout bias
            starts at ``elu1_inverse(mean_response)`` so initial rates equal the means.
          source_grid: (neuron, d) cortical coordinates for the grid-mean predictor
            (normalized here; required when the config has one).
          positions: (neuron, 2) ``[x, y]`` initial readout positions in [-1, 1] (e.g. the
            energy-based start of ``readout_init="energy"``); ignored by LN models and
            by a grid-mean predictor.
        """
        x = jnp.zeros((1,) + tuple(self.image_shape), jnp.float32)
        params, state = init_variables("model_init", self.module, key, x)
        if mean_response is not None:
            bias = jnp.asarray(elu1_inverse(mean_response) - self.config.elu_offset)
            group = "ln" if self.config.kind == "ln" else "readout"
            leaf = "bias"
            if self.config.kind == "ln":
                params[group]["linear"][leaf] = bias
            else:
                params[group][leaf] = bias
        gmp = self.config.grid_mean_predictor
        if positions is not None and self.config.kind == "cnn" and gmp is None:
            pos = jnp.asarray(positions, jnp.float32)
            if pos.shape != (self.n_neurons, 2):
                raise ConfigError(
                    f"positions has shape {pos.shape}; expected "
                    f"({self.n_neurons}, 2) [x, y] in [-1, 1]"
                )
            leaf = "mu" if self.config.readout == "gaussian" else "grid"
            params["readout"][leaf] = pos
        if gmp is not None and self.config.kind == "cnn" and self.config.readout == "gaussian":
            if source_grid is None:
                raise ConfigError(
                    "grid_mean_predictor needs cortical coordinates: the dataset "
                    "has no cortex_x/cortex_y coords (set grid_mean_predictor "
                    "to null to learn positions instead)"
                )
            from jaxsel.models._readouts import normalize_source_grid

            src = np.asarray(source_grid)[:, : gmp.input_dimensions]
            state["consts"]["readout"]["source_grid"] = jnp.asarray(normalize_source_grid(src))
        return params, state

    def apply(self, params, state, images, *, train: bool = False, rng=None, mask=None):
        """Rates for standardized images.

        Args:
          params, state: from :meth:`init` (or training).
          images: (batch, channel, y, x) standardized images.
          train: training mode (batch statistics in BN, sampled readout positions).
          rng: PRNG key for the readout samples (required when ``train``).
          mask: optional (batch,) bool: in training mode, BatchNorm statistics use only these
            trials (so the padding of a last batch does not bias them).

        Returns:
          ``(rates, new_state)``; in eval mode ``new_state is state``.
        """
        return apply_module(self.module, params, state, images, train=train, rng=rng, mask=mask)

    def regularizer(self, params, hparams) -> jnp.ndarray:
        """Weighted sum of the model's penalties.

        Args:
          params: model parameters.
          hparams: dict with scalar (or 0-d array) ``gamma_input``, ``gamma_hidden`` and
            ``gamma_readout`` (see :func:`default_hparams`).
        """
        cfg = self.config
        laplace = R.laplace_l2_norm if cfg.laplace_normalized else R.laplace_l2
        if cfg.kind == "ln":
            w = params["ln"]["linear"]["kernel"]  # (h*w*c, n)
            c, h, wd = self.image_shape
            imgs = jnp.moveaxis(w.reshape(h, wd, c * self.n_neurons), -1, 0)
            return hparams["gamma_input"] * laplace(imgs) + hparams["gamma_readout"] * R.l1(w)
        core = params["core"]
        total = hparams["gamma_input"] * laplace(R.hwio_filters(first_layer_kernel(core)))
        total = total + hparams["gamma_hidden"] * R.group_sparsity(hidden_kernels(core, cfg))
        return total + hparams["gamma_readout"] * R.l1(params["readout"]["features"])

    def constrain(self, params):
        """Project parameters onto their constraint sets (pure; used after every update)."""
        cfg = self.config
        if cfg.kind == "ln":
            return params
        ro = dict(params["readout"])
        if "mu" in ro:
            ro["mu"] = jnp.clip(ro["mu"], -1.0, 1.0)
        if "grid" in ro:
            ro["grid"] = jnp.clip(ro["grid"], -1.0, 1.0)
        if cfg.readout == "gaussian" and cfg.gauss_type == "isotropic":
            ro["sigma"] = jnp.maximum(ro["sigma"], 0.0)
        if cfg.positive_features:
            ro["features"] = jnp.maximum(ro["features"], 0.0)
        return {**params, "readout": ro}

    def positions(self, params, state) -> jnp.ndarray | None:
        """(neuron, 2) readout mean positions ``[x, y]`` in [-1, 1] (None for LN models)."""
        if self.config.kind == "ln":
            return None
        ro = params["readout"]
        if "mu" in ro:
            return jnp.clip(ro["mu"], -1.0, 1.0)
        if "grid" in ro:
            return jnp.clip(ro["grid"], -1.0, 1.0)
        gmp = self.config.grid_mean_predictor
        assert gmp is not None  # the only readout with neither "mu" nor "grid"
        mlp = GridMeanPredictor(gmp.hidden_layers, gmp.hidden_features, gmp.final_tanh)
        src = state["consts"]["readout"]["source_grid"]
        # flax types apply() as "output or (output, mutated vars)"; nothing is mutable here
        mu = cast(jax.Array, mlp.apply({"params": ro["grid_mean_predictor"]}, src))
        return jnp.clip(mu, -1.0, 1.0)


def default_hparams(cfg: ModelConfig) -> dict:
    """Regularizer strengths of a config as float32 arrays (the per-model ``hparams``)."""
    return {
        "gamma_input": jnp.float32(cfg.gamma_input),
        "gamma_hidden": jnp.float32(cfg.gamma_hidden),
        "gamma_readout": jnp.float32(cfg.gamma_readout),
    }


def build_model(cfg: ModelConfig, *, image_shape, n_neurons: int) -> Model:
    """A :class:`Model` for images of ``image_shape`` = (channel, y, x) and ``n_neurons``."""
    image_shape = tuple(int(s) for s in image_shape)
    if len(image_shape) != 3:
        raise ConfigError(f"image_shape must be (channel, y, x), got {image_shape}")
    if cfg.kind == "cnn":
        from jaxsel.models._core import output_size

        h, w = output_size(cfg, image_shape[1], image_shape[2])
        if h < 2 or w < 2:
            raise ConfigError(
                f"the core shrinks {image_shape[1]}x{image_shape[2]} images to "
                f"{h}x{w}; use less pooling or pad_input=true"
            )
    return Model(cfg, image_shape, int(n_neurons))


__all__ = ["Encoder", "LNModule", "Model", "build_model", "default_hparams", "elu1", "elu1_inverse"]
