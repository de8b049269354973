"""The one model protocol: :class:`ResponseModel` and the one batched :func:`predict`.

A response model is a pure function of raw images and a parameter pytree::

    rates = fn(params, raw_images)        # (batch, C, H, W) -> (batch, neuron)

:class:`ResponseModel` names that pair and carries what is needed to use it without the
data it was trained on (image shape, neuron ids and coords, config and provenance). It
unpacks as the pair (``fn, params = model``), so every function taking ``(fn, params)``
accepts it. :func:`predict` evaluates any such model on many images in fixed-size batches,
compiled once per model function (in the package's one compile cache, emptied by
:func:`jaxsel.clear_caches`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsel._compile_cache import jit
from jaxsel._errors import DataError
from jaxsel.data import as_images


@dataclasses.dataclass(frozen=True, eq=False)
class ResponseModel:
    """A response function, its parameters and what describes them.

    Attributes:
      fn: pure, jittable ``fn(params, raw_images) -> rates``; raw images are
        (batch, channel, y, x) (or (batch, y, x) for one channel) in the data's pixel units,
        rates (batch, neuron) in the data's response units.
      params: the parameter pytree (passed to ``fn`` as an argument, never closed over).
      image_shape: (channel, y, x) of the images the model takes.
      neuron_id: (neuron,) ids of the modelled neurons.
      coords: further per-neuron coords ``{name: (neuron,) array}`` (e.g. ``area``,
        ``session``); may be empty.
      meta: JSON-able description: ``config`` (model and train config), ``provenance``
        (versions, date, data fingerprint, seed, best epoch), ...

    ``fn, params = model`` unpacks the pair.
    """

    fn: Callable
    params: Any
    image_shape: tuple = ()
    neuron_id: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    coords: dict = dataclasses.field(default_factory=dict)
    meta: dict = dataclasses.field(default_factory=dict)

    def __iter__(self) -> Iterator:
        """``fn, params = model``."""
        return iter((self.fn, self.params))

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i):
        return (self.fn, self.params)[i]

    @property
    def n_neurons(self) -> int:
        """Number of modelled neurons."""
        return len(self.neuron_id)

    def predict(self, images, *, batch_size: int = 256) -> np.ndarray:
        """Rates (n, neuron) for raw images (see :func:`predict`)."""
        return predict(self, images, batch_size=batch_size)


def _resolve(model):
    """A ResponseModel or a pair ``(fn, params)`` for what :func:`predict` accepts."""
    if isinstance(model, ResponseModel):
        return model
    for method in ("response_model", "response_fn"):
        if hasattr(model, method) and not isinstance(model, tuple):
            return getattr(model, method)()
    if isinstance(model, (tuple, list)) and len(model) == 2 and callable(model[0]):
        return model[0], model[1]
    raise DataError(
        f"got a {type(model).__name__}",
        field="model",
        expected="a ResponseModel, a FitResult or an in-silico pair (fn, params)",
    )


def predict(model, images, *, batch_size: int = 256) -> np.ndarray:
    """Rates of a model for raw images, in fixed-size batches (one compilation).

    Every batch has the same size (the last one is padded by repeating an image and the
    padding is dropped), so ``fn`` is compiled once per model function and batch size.

    Args:
      model: a :class:`ResponseModel`, an in-silico pair ``(fn, params)``, or anything with
        ``response_model()``/``response_fn()`` (``FitResult``).
      images: (n, channel, y, x) or (n, y, x) raw images (NumPy or ``xarray.DataArray``).
      batch_size: images per call.

    Returns:
      (n, neuron) float32 NumPy rates (in the data's response units).

    Raises:
      DataError: the images are not (n, [channel,] y, x), or do not have the
        ``image_shape`` of a :class:`ResponseModel`.
    """
    model = _resolve(model)
    fn, params = model
    x = as_images(images, model.image_shape if isinstance(model, ResponseModel) else None)
    jfn = jit(fn, kind="predict")
    n = x.shape[0]
    if n == 0:
        out = jax.eval_shape(fn, params, jax.ShapeDtypeStruct((1,) + x.shape[1:], jnp.float32))
        return np.zeros((0,) + tuple(out.shape[1:]), np.float32)
    bs = max(1, min(int(batch_size), n))
    out = []
    for start in range(0, n, bs):
        chunk = x[start : start + bs]
        k = chunk.shape[0]
        if k < bs:
            chunk = np.concatenate([chunk, np.repeat(chunk[:1], bs - k, 0)])
        r = np.asarray(jfn(params, chunk))
        if r.ndim < 1 or r.shape[0] != bs:
            raise DataError(
                f"the model returned shape {r.shape} for {bs} images",
                field="fn",
                expected="rates (batch, neuron)",
            )
        out.append(r[:k])
    return np.concatenate(out)


__all__ = ["ResponseModel", "predict"]
