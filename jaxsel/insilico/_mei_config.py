"""The options of the MEI engine: :class:`MEIConfig` (optimizer, step size, constraints,
preconditioning, regularizers, objective) and its validation."""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

from jaxsel._dataclass_io import from_dict, to_dict, traced
from jaxsel._errors import ConfigError
from jaxsel.data import BACKGROUND, SCALE
from jaxsel.insilico._mei_parts import STARTS

OPTIMIZERS = ("sgd", "momentum", "adam")
OBJECTIVES = ("max", "min", "discriminative")
# numeric fields that must be finite (None allowed where the field is optional)
_FLOAT_FIELDS = (
    "lr",
    "momentum",
    "lr_decay",
    "start_std",
    "gray",
    "offset",
    "scale",
    "mean",
    "std",
    "norm",
    "clip",
    "rescale",
    "precondition_alpha",
    "blur",
    "contrast_target",
    "contrast_weight",
    "tol",
    "diversity_weight",
)


_NONNEGATIVE_FIELDS = (
    "start_std",
    "precondition_alpha",
    "contrast_weight",
    "tol",
    "diversity_weight",
)


@dataclass(frozen=True)
class MEIConfig:
    """How one MEI is optimised (every field is a plain, hashable value).

    Fields declared ``traced(...)`` are numbers that enter the optimisation as traced
    arrays (:func:`split_config`): changing them reuses the compiled program.

    Attributes:
      steps: maximum number of ascent steps.
      optimizer: ``"sgd"``, ``"momentum"`` (SGD with ``momentum``) or ``"adam"``.
      lr: learning rate (in unit space).
      momentum: momentum of ``"momentum"``.
      lr_decay: final learning rate as a fraction of ``lr`` (cosine decay; 1 = constant).
      start: ``"noise"``, ``"gray"``, ``"black"`` or ``"natural"`` (needs ``start_images``).
      start_std: std of the white-noise start (unit space).
      gray: unit-space value of the gray start (and the centre of the noise start).
      offset, scale: raw image = ``offset + scale * u``. Defaults are the 8-bit / twin
        convention (``u`` is the contrast image ``(x - 127.5) / 127.5``).
      mean, std: if both set, every image has exactly this mean and std (unit space).
      norm: if set, every image has this L2 norm (after removing its mean if ``center``).
      center: remove the image mean before fixing the norm.
      clip: ``(lo, hi)`` pixel range in unit space, or None (applied last, straight-through
        gradient).
      rescale: ``(lo, hi)``: after each step map the image's min..max onto this range.
      precondition_alpha: FFT gradient filter ``1/|k|^alpha`` (0 = off).
      blur: ``(sigma_start, sigma_end)`` in pixels, decaying over ``steps``, or None.
      blur_schedule: ``"linear"`` or ``"accelerating"`` (step i moves the
        fraction i / steps of the remaining way to the end sigma, so it falls off within the
        first ~sqrt(2 * steps) steps; ``"seed002"`` is a former name of ``"accelerating"``).
      contrast_target, contrast_weight: penalty ``weight * |target - std(image)|``.
      jitter: maximal random translation (pixels) of the image before each model call.
      patience: stop a job when its objective has not improved by a relative ``tol`` for
        this many steps (0 = always run ``steps``).
      tol: relative improvement that resets the patience counter.
      objective: ``"max"`` (MEI), ``"min"`` (most inhibitory input) or
        ``"discriminative"`` (target minus the mean of a group, rates divided by
        ``rate_scale``).
      n_variants: images per job (``K``), optimised jointly.
      diversity_weight: weight of the mean pairwise cosine similarity of the K images.
      name: a label stored with the results.
    """

    steps: int = 500
    optimizer: str = "adam"
    lr: float = traced(0.01)
    momentum: float = traced(0.9)
    lr_decay: float = traced(1.0)
    start: str = "noise"
    start_std: float = traced(0.1)
    gray: float = traced(0.0)
    offset: float = traced(BACKGROUND)
    scale: float = traced(SCALE)
    mean: float | None = traced(None)
    std: float | None = traced(None)
    norm: float | None = traced(None)
    center: bool = True
    clip: tuple[float, float] | None = traced(None)
    rescale: tuple[float, float] | None = traced(None)
    precondition_alpha: float = traced(0.0)
    blur: tuple[float, float] | None = traced(None)
    blur_schedule: str = "linear"
    contrast_target: float | None = traced(None)
    contrast_weight: float = traced(0.0)
    jitter: int = 0
    patience: int = traced(0)
    tol: float = traced(1e-5)
    objective: str = "max"
    n_variants: int = 1
    diversity_weight: float = traced(0.0)
    name: str = "custom"

    def __post_init__(self):
        def bad(field, value, expected):
            raise ConfigError(f"MEIConfig.{field} = {value!r}: expected {expected}")

        for field in ("steps", "n_variants", "jitter", "patience"):
            v = getattr(self, field)
            lo = 1 if field in ("steps", "n_variants") else 0
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
                bad(field, v, f"an integer >= {lo}")
        for field in _FLOAT_FIELDS:
            v = getattr(self, field)
            if v is None:
                continue
            vs = v if isinstance(v, (tuple, list)) else (v,)
            if not all(
                isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)
                for x in vs
            ):
                bad(field, v, "finite numbers")
        for field in _NONNEGATIVE_FIELDS:
            if getattr(self, field) < 0:
                bad(field, getattr(self, field), "a number >= 0")
        if not 0 <= self.momentum < 1:
            bad("momentum", self.momentum, "a fraction in [0, 1)")
        if self.optimizer not in OPTIMIZERS:
            bad("optimizer", self.optimizer, f"one of {OPTIMIZERS}")
        if self.start not in STARTS:
            bad("start", self.start, f"one of {STARTS}")
        if self.objective not in OBJECTIVES:
            bad("objective", self.objective, f"one of {OBJECTIVES}")
        if not self.lr > 0:
            bad("lr", self.lr, "a positive learning rate")
        if not 0 < self.lr_decay <= 1:
            bad("lr_decay", self.lr_decay, "a fraction in (0, 1]")
        if self.scale == 0:
            bad("scale", self.scale, "a non-zero raw/unit scale")
        if (self.mean is None) != (self.std is None):
            bad("mean/std", (self.mean, self.std), "both set or both None")
        if self.std is not None and not self.std > 0:
            bad("std", self.std, "a positive std")
        if self.norm is not None and not self.norm > 0:
            bad("norm", self.norm, "a positive L2 norm")
        if self.norm is not None and self.std is not None:
            bad("norm", self.norm, "None when mean/std are fixed (choose one constraint)")
        for field in ("clip", "rescale"):
            v = getattr(self, field)
            if v is not None and (len(v) != 2 or not v[0] < v[1]):
                bad(field, v, "a (lo, hi) pair with lo < hi, or None")
        if self.blur is not None and (len(self.blur) != 2 or min(self.blur) < 0):
            bad("blur", self.blur, "(sigma_start, sigma_end) >= 0, or None")
        if self.blur_schedule == "seed002":  # former name
            object.__setattr__(self, "blur_schedule", "accelerating")
        if self.blur_schedule not in ("linear", "accelerating"):
            bad("blur_schedule", self.blur_schedule, "'linear' or 'accelerating'")
        if self.contrast_weight and self.contrast_target is None:
            bad("contrast_target", None, "a target std when contrast_weight is set")
        if int(self.n_variants) < 1:
            bad("n_variants", self.n_variants, "an integer >= 1")
        if self.jitter < 0 or self.patience < 0:
            bad("jitter/patience", (self.jitter, self.patience), "non-negative integers")

    def replace(self, **changes) -> MEIConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The config as plain JSON-able data (round-trips through :meth:`from_dict`)."""
        return to_dict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> MEIConfig:
        """Build from a plain dict (e.g. a results file's ``config`` attribute), strictly.

        Raises:
          ConfigError: an unknown key (naming the closest valid key) or a bad value.
        """
        return from_dict(cls, d, where="mei")
