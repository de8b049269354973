"""Multi-session models: one shared core, one readout (+ shifter, modulator) per session.

:func:`build_multi_model` turns a :class:`~jaxsel.ModelConfig` (its ``sessions`` part: a
:class:`~jaxsel.models.SessionModelConfig`) and the sessions' shapes into a
:class:`MultiModel`. Parameters are one plain pytree::

    params = {"core": {...},                      # shared by every session
              "shared": {"feature_basis": (rank, channel)},   # only feature_sharing="lowrank"
              "sessions": {sid: {"readout": {...}, "shifter": {...}, "modulator": {...}}}}
    state  = {"batch_stats": {"core": {...}},     # BatchNorm running statistics of the core
              "sessions": {sid: {"consts": {"readout": {"source_grid": ...}}}}}

Everything that runs is a function of ONE session's *view* (:meth:`MultiModel.view`):
``{"core", "shared", "session"}`` parameters and ``{"batch_stats", "consts"}`` state. The
view's shapes (neurons, image size, behaviour count) are all that distinguishes sessions,
so a jitted function of a view compiles once per distinct session shape.

A session's forward pass (images standardized, behaviour and pupil centre z-scored)::

    x = images [+ behaviour as constant channels if behavior="input"]
    shift = shifter(pupil_center)                         # (batch, 2) grid units, optional
    y = readout(core(x), mu + S z + shift)                # Gaussian readout, per session
    rates = (ELU(y + offset) + 1) * exp(modulator(behavior))   # gain optional

With one session, no shifter, no modulator and ``feature_sharing="none"`` the model is the
single-session :class:`~jaxsel.models.Model`: :meth:`MultiModel.init` of the first session
draws exactly the parameters ``Model.init`` draws with the same key (same module paths,
parameter order and initializers), and the forward pass is the same computation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import jax
import jax.numpy as jnp
import numpy as np

from jaxsel._errors import ConfigError
from jaxsel.models import _regularizers as R
from jaxsel.models._config import ModelConfig, SessionModelConfig
from jaxsel.models._core import first_layer_kernel, hidden_kernels, output_size
from jaxsel.models._flax_glue import jit_init, plain
from jaxsel.models._model import build_model
from jaxsel.models._readouts import normalize_source_grid
from jaxsel.models._session_modules import MLP, SessionEncoder, normal_init


@dataclass(frozen=True)
class SessionShape:
    """One session's shapes: the raw image (channel, y, x) and the neuron count."""

    image_shape: tuple[int, int, int]
    n_neurons: int


@dataclass(frozen=True)
class MultiModel:
    """A multi-session response model: config, per-session shapes and pure functions.

    Attributes:
      config: the model config (``config.sessions`` is never None here).
      sessions: ``{session id: SessionShape}`` in session order.
    """

    config: ModelConfig
    sessions: dict

    @property
    def scfg(self) -> SessionModelConfig:
        """The multi-session part of the config."""
        assert self.config.sessions is not None
        return self.config.sessions

    @property
    def n_behavior(self) -> int:
        """Behaviour variables the model reads (0 when ``behavior="none"``)."""
        return 0 if self.scfg.behavior == "none" else len(self.scfg.behavior_vars)

    @property
    def feature_rank(self) -> int:
        """Rank of the shared feature basis (0: per-neuron feature weights)."""
        return self.scfg.feature_rank if self.scfg.feature_sharing == "lowrank" else 0

    def core_image_shape(self, sid) -> tuple[int, int, int]:
        """(channel, y, x) the core sees for a session (behaviour channels appended)."""
        c, h, w = self.sessions[sid].image_shape
        extra = self.n_behavior if self.scfg.behavior == "input" else 0
        return (c + extra, h, w)

    def encoder(self, n_neurons: int) -> SessionEncoder:
        """The Flax core + readout module of a session with ``n_neurons`` neurons."""
        return SessionEncoder(self.config, int(n_neurons), self.feature_rank)

    # ------------------------------------------------------------------ init
    def init(self, key, mean_response=None, source_grid=None, positions=None) -> tuple[dict, dict]:
        """Initial ``(params, state)``.

        Session ``i`` (in order) draws its readout with ``fold_in(key, i)`` (session 0 with
        ``key`` itself, exactly as :meth:`Model.init`); the core comes from session 0's draw.

        Args:
          key: PRNG key.
          mean_response, source_grid, positions: optional ``{session id: array}`` as the
            arguments of :meth:`jaxsel.models.Model.init` (mean training response per neuron,
            cortical coordinates for a grid-mean predictor, initial positions).
        """
        mean_response, source_grid, positions = (
            mean_response or {},
            source_grid or {},
            positions or {},
        )
        params: dict = {"sessions": {}}
        state: dict = {"sessions": {}}
        for i, (sid, shape) in enumerate(self.sessions.items()):
            k = key if i == 0 else jax.random.fold_in(key, i)
            p, s = self._init_session(
                k, sid, shape, mean_response.get(sid), source_grid.get(sid), positions.get(sid)
            )
            if i == 0:
                params["core"] = p.pop("core")
                state["batch_stats"] = {"core": s.pop("batch_stats")["core"]}
            sess = {"readout": p["readout"]}
            k_shift, k_mod = jax.random.split(jax.random.fold_in(k, 7))
            if self.scfg.shifter:
                sess["shifter"] = self._shifter().init(k_shift, jnp.zeros((1, 2)))["params"]
            if self.scfg.behavior == "modulator":
                mod = self._modulator(shape.n_neurons)
                sess["modulator"] = mod.init(k_mod, jnp.zeros((1, self.n_behavior)))["params"]
            params["sessions"][sid] = plain(sess)
            state["sessions"][sid] = {"consts": plain(s.get("consts", {}))}
        if self.feature_rank:
            c = self._core_channels()
            basis = normal_init(1.0 / math.sqrt(c))(
                jax.random.fold_in(key, -1 % 2**31), (self.feature_rank, c)
            )
            params["shared"] = {"feature_basis": basis}
        return plain(params), plain(state)

    def _init_session(self, key, sid, shape: SessionShape, mean_response, source_grid, positions):
        if self.feature_rank == 0:  # exactly the single-session init
            single = build_model(
                _single_config(self.config),
                image_shape=self.core_image_shape(sid),
                n_neurons=shape.n_neurons,
            )
            return single.init(
                key, mean_response=mean_response, source_grid=source_grid, positions=positions
            )
        enc = self.encoder(shape.n_neurons)
        x = jnp.zeros((1,) + self.core_image_shape(sid), jnp.float32)
        basis = jnp.zeros((self.feature_rank, self._core_channels()), jnp.float32)
        k_params, k_sample = jax.random.split(key)
        init = jit_init("multi_model_init", enc)
        variables = plain(init({"params": k_params, "sample": k_sample}, x, basis=basis))
        p = variables.pop("params")
        from jaxsel.models._model import elu1_inverse

        if mean_response is not None:
            p["readout"]["bias"] = jnp.asarray(elu1_inverse(mean_response) - self.config.elu_offset)
        gmp = self.config.grid_mean_predictor
        if gmp is None and positions is not None:
            p["readout"]["mu"] = jnp.asarray(positions, jnp.float32)
        if gmp is not None:
            if source_grid is None:
                raise ConfigError(
                    f"session {sid!r}: grid_mean_predictor needs cortical coordinates "
                    "(cortex_x/cortex_y)"
                )
            src = np.asarray(source_grid)[:, : gmp.input_dimensions]
            variables["consts"]["readout"]["source_grid"] = jnp.asarray(normalize_source_grid(src))
        return p, variables

    def _core_channels(self) -> int:
        from jaxsel.models._core import output_channels

        return output_channels(self.config)

    def _shifter(self) -> MLP:
        s = self.scfg
        return MLP(s.shifter_hidden_layers, s.shifter_hidden_features, 2, "tanh")

    def _modulator(self, n_neurons: int) -> MLP:
        s = self.scfg
        return MLP(s.modulator_hidden_layers, s.modulator_hidden_features, int(n_neurons), "elu")

    # ------------------------------------------------------------------ views
    @staticmethod
    def view(params, state, sid) -> tuple[dict, dict]:
        """One session's ``(params, state)`` view (what :meth:`apply` takes)."""
        vp = {
            "core": params["core"],
            "shared": params.get("shared", {}),
            "session": params["sessions"][sid],
        }
        vs = {"batch_stats": state["batch_stats"], "consts": state["sessions"][sid]["consts"]}
        return vp, vs

    # ------------------------------------------------------------------ apply
    def apply(
        self,
        params,
        state,
        images,
        behavior=None,
        pupil_center=None,
        *,
        train: bool = False,
        rng=None,
        mask=None,
        train_core: bool = True,
    ):
        """Rates of one session for standardized images.

        Args:
          params, state: one session's view (:meth:`view`).
          images: (batch, channel, y, x) standardized images.
          behavior: (batch, n_behavior) z-scored behaviour (needed when ``behavior`` is not
            ``"none"``).
          pupil_center: (batch, 2) z-scored pupil centre (needed with a shifter).
          train: training mode (BN batch statistics, sampled readout positions).
          rng: PRNG key for the readout samples (required when ``train``).
          mask: optional (batch,) bool for the BN batch statistics.
          train_core: False keeps the core in eval mode while the readout trains (a frozen
            core: its BN running statistics are used and not updated).

        Returns:
          ``(rates, new_state)``: (batch, neuron) rates and the view's state.
        """
        s = self.scfg
        n = params["session"]["readout"]["bias"].shape[0]
        x = images
        if s.behavior == "input":
            b = _need(behavior, "behavior")
            planes = jnp.broadcast_to(b[:, :, None, None], (x.shape[0], b.shape[1]) + x.shape[2:])
            x = jnp.concatenate([x, planes.astype(x.dtype)], axis=1)
        shift = self.shift(params, _need(pupil_center, "pupil_center")) if s.shifter else None
        basis = params["shared"].get("feature_basis") if self.feature_rank else None
        variables = {
            "params": {"core": params["core"], "readout": params["session"]["readout"]},
            "batch_stats": state["batch_stats"],
            "consts": state["consts"],
        }
        enc = self.encoder(n)
        core_train = train and train_core
        if not train:
            rates = enc.apply(variables, x, train=False, shift=shift, basis=basis)
            new_state = state
        else:
            if rng is None:
                raise ValueError("train=True needs an rng for the readout position samples")
            mutable = ["batch_stats"] if (core_train and state["batch_stats"]) else []
            rates, updates = enc.apply(
                variables,
                x,
                train=True,
                mask=mask,
                shift=shift,
                basis=basis,
                core_train=core_train,
                rngs={"sample": rng},
                mutable=mutable,
            )
            new_state = dict(state)
            if mutable:
                new_state["batch_stats"] = plain(updates["batch_stats"])
        if s.behavior == "modulator":
            rates = rates * self.gain(params, _need(behavior, "behavior"))
        return rates, new_state

    def gain(self, params, behavior):
        """(batch, neuron) behaviour gain of one session view (ones without a modulator)."""
        n = params["session"]["readout"]["bias"].shape[0]
        if self.scfg.behavior != "modulator":
            return jnp.ones((behavior.shape[0], n), jnp.float32)
        return jnp.exp(_mlp(self._modulator(n), params["session"]["modulator"], behavior))

    def shift(self, params, pupil_center):
        """(batch, 2) readout shift of one session view for z-scored pupil centres."""
        if not self.scfg.shifter:
            return jnp.zeros((pupil_center.shape[0], 2), jnp.float32)
        return jnp.tanh(_mlp(self._shifter(), params["session"]["shifter"], pupil_center))

    # ------------------------------------------------------------------ penalties
    def regularizer(self, params, hparams, *, include_core: bool = True) -> jnp.ndarray:
        """Penalties of one session view: core (Laplace on the first layer, group sparsity),
        L1 on the session's effective feature weights, L2 on shifter/modulator weights.

        Args:
          params: a session view.
          hparams: ``gamma_input``, ``gamma_hidden``, ``gamma_readout``, ``gamma_shifter``,
            ``gamma_modulator`` (see :func:`multi_hparams`).
          include_core: False leaves out the core's penalties (a frozen core).
        """
        cfg = self.config
        total = jnp.float32(0.0)
        if include_core:
            laplace = R.laplace_l2_norm if cfg.laplace_normalized else R.laplace_l2
            core = params["core"]
            total = hparams["gamma_input"] * laplace(R.hwio_filters(first_layer_kernel(core)))
            total = total + hparams["gamma_hidden"] * R.group_sparsity(hidden_kernels(core, cfg))
        total = total + hparams["gamma_readout"] * R.l1(self.feature_weights(params))
        sess = params["session"]
        for name, gamma in (("shifter", "gamma_shifter"), ("modulator", "gamma_modulator")):
            if name in sess:
                sq = sum(jnp.sum(v["kernel"] ** 2) for v in sess[name].values())
                total = total + hparams[gamma] * sq
        return total

    def feature_weights(self, params) -> jnp.ndarray:
        """(neuron, channel) readout feature weights of a session view."""
        ro = params["session"]["readout"]
        if self.feature_rank:
            return ro["coeffs"] @ params["shared"]["feature_basis"]
        return ro["features"]

    def constrain(self, params):
        """Project every session's readout onto its constraint set (pure)."""
        cfg = self.config
        out = dict(params)
        out["sessions"] = {}
        for sid, sess in params["sessions"].items():
            ro = dict(sess["readout"])
            if "mu" in ro:
                ro["mu"] = jnp.clip(ro["mu"], -1.0, 1.0)
            if cfg.gauss_type == "isotropic":
                ro["sigma"] = jnp.maximum(ro["sigma"], 0.0)
            if cfg.positive_features and "features" in ro:
                ro["features"] = jnp.maximum(ro["features"], 0.0)
            out["sessions"][sid] = {**sess, "readout": ro}
        return out


def multi_hparams(cfg: ModelConfig) -> dict:
    """Regularizer strengths of a multi-session config as float32 arrays."""
    s = cfg.sessions or SessionModelConfig()
    return {
        "gamma_input": jnp.float32(cfg.gamma_input),
        "gamma_hidden": jnp.float32(cfg.gamma_hidden),
        "gamma_readout": jnp.float32(cfg.gamma_readout),
        "gamma_shifter": jnp.float32(s.gamma_shifter),
        "gamma_modulator": jnp.float32(s.gamma_modulator),
    }


def build_multi_model(cfg: ModelConfig, sessions: dict) -> MultiModel:
    """A :class:`MultiModel` for ``sessions = {session id: (image_shape, n_neurons)}``.

    Args:
      cfg: a CNN model config with a Gaussian readout; ``cfg.sessions`` None means
        ``SessionModelConfig()``.
      sessions: ``{session id: ((channel, y, x), n_neurons)}`` (or :class:`SessionShape`),
        in session order; every session needs the same channel count (the core is shared).

    Raises:
      ConfigError: an LN or pyramid-readout config, no sessions, differing channel counts,
        or images the core shrinks below 2x2.
    """
    if cfg.kind != "cnn" or cfg.readout != "gaussian":
        raise ConfigError(
            f"multi-session models share a CNN core and use Gaussian readouts; got "
            f"kind={cfg.kind!r}, readout={cfg.readout!r} (set model.kind='cnn', "
            "model.readout='gaussian')"
        )
    if cfg.sessions is None:
        cfg = _replace(cfg, sessions=SessionModelConfig())
    shapes = {}
    for sid, v in sessions.items():
        if isinstance(v, SessionShape):
            shapes[sid] = v
        else:
            shape, n = v
            shapes[sid] = SessionShape(tuple(int(s) for s in shape), int(n))  # type: ignore[arg-type]
    if not shapes:
        raise ConfigError(
            "build_multi_model: no sessions given (pass {session id: (image_shape, n_neurons)})"
        )
    channels = {sid: s.image_shape[0] for sid, s in shapes.items()}
    if len(set(channels.values())) > 1:
        raise ConfigError(
            f"sessions have different image channel counts {channels}: the shared core needs one"
        )
    for sid, s in shapes.items():
        h, w = output_size(cfg, s.image_shape[1], s.image_shape[2])
        if h < 2 or w < 2:
            raise ConfigError(
                f"session {sid!r}: the core shrinks {s.image_shape[1]}x{s.image_shape[2]} "
                f"images to {h}x{w}; use less pooling"
            )
    return MultiModel(cfg, shapes)


def _replace(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, **kw)


def _single_config(cfg: ModelConfig) -> ModelConfig:
    """The config of the single-session model a session's init is drawn from."""
    return _replace(cfg, sessions=None)


def _mlp(module: MLP, params, x) -> jax.Array:
    # flax types apply() as "output or (output, mutated vars)"; nothing is mutable here
    return cast(jax.Array, module.apply({"params": params}, x))


def _need(x, name: str):
    if x is None:
        raise ValueError(f"this multi-session model needs {name} (batch, ...) for every trial")
    return x


__all__ = [
    "MultiModel",
    "SessionShape",
    "build_multi_model",
    "multi_hparams",
]
