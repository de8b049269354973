"""Named MEI recipes: functions returning an :class:`~jaxsel.insilico.MEIConfig`.

* :func:`mean_std` — SGD with momentum 0.9 on an image whose mean and std are fixed
  (mean = train mean, std = train std / 10), white-noise start (as taught at the FENS-2022
  workshop).
* :func:`fft_preconditioned` — FFT gradient preconditioning (1/|k|^(1/4)), Gaussian blur
  with sigma decaying 7 -> 0.001 px (the ``"accelerating"`` schedule), contrast penalty
  ``2 * |c* - std(x)|`` with ``c*`` the mean image std, every step rescaled to the full
  [0, 1] range, plain gradient steps of 0.1.
* :func:`norm` — fixed L2 norm of the (centred) contrast image, Adam; the recipe whose
  optimum is the twin's true optimal stimulus at the same budget.

Every recipe takes ``**overrides`` (any :class:`MEIConfig` field), e.g. ``steps=200``.
:func:`get` builds one by name. Former names, still accepted by :func:`get` and
:func:`resolve` (:data:`RECIPE_ALIASES`): ``"fens"`` = ``"mean_std"``, ``"seed002"`` =
``"fft_preconditioned"``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxsel._errors import ConfigError
from jaxsel.data import BACKGROUND, SCALE
from jaxsel.insilico._mei_config import MEIConfig

RECIPE_NAMES = ("mean_std", "fft_preconditioned", "norm")
"""The recipes, by method."""
RECIPE_ALIASES = {"fens": "mean_std", "seed002": "fft_preconditioned"}
"""Former recipe names -> current ones (resolved silently)."""
RECIPES = RECIPE_NAMES + tuple(RECIPE_ALIASES)
"""Every name :func:`get` accepts: the recipes and their aliases."""


def resolve(name: str) -> str:
    """The current name of a recipe (an alias such as ``"fens"`` -> ``"mean_std"``)."""
    return RECIPE_ALIASES.get(name, name)


def mean_std(image_mean: float, image_std: float, **overrides) -> MEIConfig:
    """Fixed mean/std recipe: momentum SGD, fixed mean (= train mean) and std (= train std / 10).

    Unit space is the z-scored image ``u = (x - image_mean) / image_std``, so the
    constraint is mean 0, std 0.1 there, and the learning rate does not depend on the
    data set's grey-level units.

    Args:
      image_mean, image_std: global train-tier pixel mean and std in raw units
        (``jaxsel.data.global_image_stats(ds)``).
      **overrides: other :class:`MEIConfig` fields (default ``steps=1000``, ``lr=1.0``).
    """
    if not image_std > 0:
        raise ConfigError(f"mean_std: image_std = {image_std}: expected a positive raw std")
    kw: dict[str, Any] = dict(
        steps=1000,
        optimizer="momentum",
        momentum=0.9,
        lr=1.0,
        start="noise",
        start_std=0.1,
        offset=float(image_mean),
        scale=float(image_std),
        mean=0.0,
        std=0.1,
        name="mean_std",
    )
    kw.update(overrides)
    return MEIConfig(**kw)


def fft_preconditioned(
    c_star: float, value_range: tuple[float, float] = (0.0, 255.0), **overrides
) -> MEIConfig:
    """FFT-preconditioned recipe: preconditioned, blurred, contrast-penalised ascent in [0, 1].

    Unit space is the image mapped onto [0, 1]: ``u = (x - lo) / (hi - lo)``.

    Args:
      c_star: target contrast, the mean per-image std of natural images in RAW units
        (:func:`mean_image_std`); converted to unit space here.
      value_range: raw (lo, hi) that [0, 1] maps onto.
      **overrides: other :class:`MEIConfig` fields (default ``steps=1000``).
    """
    lo, hi = (float(v) for v in value_range)
    if not hi > lo:
        raise ConfigError(f"fft_preconditioned: value_range = {value_range}: expected lo < hi")
    kw: dict[str, Any] = dict(
        steps=1000,
        optimizer="sgd",
        lr=0.1,
        start="noise",
        start_std=1.0,
        gray=0.5,
        offset=lo,
        scale=hi - lo,
        rescale=(0.0, 1.0),
        precondition_alpha=0.25,
        blur=(7.0, 0.001),
        blur_schedule="accelerating",
        contrast_target=float(c_star) / (hi - lo),
        contrast_weight=2.0,
        center=False,
        name="fft_preconditioned",
    )
    kw.update(overrides)
    return MEIConfig(**kw)


def norm(
    budget: float, background: float = BACKGROUND, scale: float = SCALE, **overrides
) -> MEIConfig:
    """Fixed-norm recipe: Adam on the contrast image ``(x - background) / scale``, whose
    centred L2 norm is held at ``budget`` (e.g. ``twin.meta['norm_budget']``).

    Args:
      budget: L2 norm of the contrast image.
      background, scale: raw = background + scale * contrast.
      **overrides: other :class:`MEIConfig` fields (default 300 steps, lr 0.02 with cosine
        decay to 0.1 lr, white-noise start).
    """
    kw: dict[str, Any] = dict(
        steps=300,
        optimizer="adam",
        lr=0.02,
        lr_decay=0.1,
        start="noise",
        start_std=0.05,
        offset=float(background),
        scale=float(scale),
        norm=float(budget),
        center=True,
        name="norm",
    )
    kw.update(overrides)
    return MEIConfig(**kw)


def get(name: str, **kwargs) -> MEIConfig:
    """A recipe by name: ``get("norm", budget=2.9, steps=200)``."""
    table = {"mean_std": mean_std, "fft_preconditioned": fft_preconditioned, "norm": norm}
    if resolve(name) not in table:
        raise ConfigError(
            f"unknown MEI recipe {name!r}; expected one of {RECIPE_NAMES} "
            f"(or a former name: {', '.join(RECIPE_ALIASES)})"
        )
    try:
        return table[resolve(name)](**kwargs)
    except TypeError as e:
        raise ConfigError(f"recipe {name!r}: {e}") from None


def mean_image_std(images) -> float:
    """Mean over images of each image's pixel std (the target contrast ``c*`` of
    :func:`fft_preconditioned`)."""
    a = np.asarray(images, np.float64)
    a = a.reshape(len(a), -1)
    return float(a.std(axis=1).mean())


fens = mean_std
"""Former name of :func:`mean_std`."""
seed002 = fft_preconditioned
"""Former name of :func:`fft_preconditioned`."""


__all__ = [
    "RECIPES",
    "RECIPE_ALIASES",
    "RECIPE_NAMES",
    "fft_preconditioned",
    "get",
    "mean_image_std",
    "mean_std",
    "norm",
    "resolve",
]
