"""Argument checks shared by the public entry points (``fit``, ``optimize_meis``, ...).

Every check raises a :class:`~jaxsel.ConfigError` (a setting: a number, a count, a shape)
or a :class:`~jaxsel.DataError` (an array or pytree of data or parameters) whose one-line
message names the function and the argument, what was found and what is expected, before any
work starts. Nothing here computes more than an abstract evaluation of the model
(:func:`jax.eval_shape`) or a finiteness reduction.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsel._errors import ConfigError, DataError


def _bad(where: str, name: str, value, expected: str) -> ConfigError:
    return ConfigError(f"{where}: {name} = {value!r}: expected {expected}")


def check_int(where: str, name: str, value, *, minimum: int | None = None) -> int:
    """``value`` as an int (a Python or NumPy integer, not a bool), at least ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        lo = "" if minimum is None else f" >= {minimum}"
        raise _bad(where, name, value, f"an integer{lo}")
    if minimum is not None and int(value) < minimum:
        raise _bad(where, name, value, f"an integer >= {minimum}")
    return int(value)


def check_number(
    where: str,
    name: str,
    value,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    nonzero: bool = False,
) -> float:
    """``value`` as a finite float (optionally > 0, >= 0 or != 0)."""
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        raise _bad(where, name, value, "a finite number")
    x = float(value)
    what = (
        "a positive finite number"
        if positive
        else "a finite number >= 0"
        if nonnegative
        else "a finite non-zero number"
        if nonzero
        else "a finite number"
    )
    if not math.isfinite(x) or (positive and x <= 0) or (nonnegative and x < 0):
        raise _bad(where, name, value, what)
    if nonzero and x == 0:
        raise _bad(where, name, value, what)
    return x


def check_finite_array(where: str, name: str, x) -> np.ndarray:
    """``x`` as a NumPy array of finite numbers (DataError naming ``name`` otherwise)."""
    try:
        a = np.asarray(x)
    except Exception as err:
        raise DataError(f"{where}: not an array ({type(x).__name__}: {err})", field=name) from None
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise DataError(f"{where}: {name} has dtype {a.dtype}", field=name, expected="numbers")
    if np.issubdtype(a.dtype, np.inexact):
        bad = ~np.isfinite(a)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise DataError(
                f"{where}: {int(bad.sum())} non-finite values in {name}, the first at "
                f"index {first}: {a[first]}",
                field=name,
                expected="finite numbers",
            )
    return a


def _positive_ints(t: tuple) -> bool:
    return all(
        isinstance(s, numbers.Integral) and not isinstance(s, (bool, np.bool_)) and int(s) >= 1
        for s in t
    )


def check_hw(where: str, name: str, shape) -> tuple[int, int]:
    """A (height, width) pair of positive integers."""
    try:
        t = tuple(shape)
    except TypeError:
        raise _bad(where, name, shape, "(height, width) in pixels") from None
    if len(t) != 2 or not _positive_ints(t):
        raise _bad(where, name, shape, "(height, width): two positive integers")
    return int(t[0]), int(t[1])


def check_shape3(where: str, name: str, shape) -> tuple[int, int, int]:
    """(H, W) or (C, H, W) of positive integers -> (C, H, W)."""
    try:
        t = tuple(shape)
    except TypeError:
        raise _bad(where, name, shape, "(height, width) or (channel, height, width)") from None
    if len(t) not in (2, 3) or not _positive_ints(t):
        raise _bad(
            where, name, shape, "(height, width) or (channel, height, width) positive integers"
        )
    t = tuple(int(s) for s in t)
    return (1, *t) if len(t) == 2 else t  # type: ignore[return-value]


def model_image_shape(fn) -> tuple[int, ...] | None:
    """The (C, H, W) a model function declares (``fn.image_shape``, set by
    :func:`jaxsel.train.response_function`), else None."""
    shape = getattr(fn, "image_shape", None)
    return tuple(int(s) for s in shape) if shape else None


def check_model_input(
    where: str, fn, params, shape3, *, name: str = "image_shape", probe: float | None = 0.0
) -> int:
    """Check that the model ``(fn, params)`` takes images of (C, H, W) ``shape3``; return its
    number of neurons.

    The shape is compared with the one the model declares (``fn.image_shape``); a bare pair
    is probed with :func:`jax.eval_shape` (no compute) and a failure there becomes a
    DataError naming ``name``. With ``probe`` (a grey value), the model is run once on a
    uniform image of that value and non-finite rates (NaN parameters) are a DataError
    naming ``params``. (Parameters themselves may hold NaN on purpose, e.g. the twin's
    dispersion of Poisson neurons, so their rates are checked, not their leaves.)
    """
    if not callable(fn):
        raise DataError(
            f"{where}: fn is a {type(fn).__name__}",
            field="fn",
            expected="a model function fn(params, images) -> rates, or pass a "
            "ResponseModel as *model",
        )
    declared = model_image_shape(fn)
    if declared is not None and tuple(shape3) != declared:
        raise DataError(
            f"{where}: {name} (channel, y, x) = {tuple(shape3)} but the model takes {declared}",
            field=name,
            expected=f"{name} matching the model's (channel, y, x) = {declared}",
        )
    try:
        out = jax.eval_shape(fn, params, jax.ShapeDtypeStruct((1, *shape3), jnp.float32))
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise DataError(
            f"{where}: the model cannot take images of (channel, y, x) = {tuple(shape3)} "
            f"({type(err).__name__}: {first})",
            field=name,
            expected="the (channel, y, x) shape of the images the model was trained on",
        ) from None
    shape: Any = getattr(out, "shape", None)
    if shape is None or len(shape) != 2 or shape[0] != 1:
        raise DataError(
            f"{where}: the model returned shape {shape} for one image",
            field="fn",
            expected="rates (batch, neuron) from fn(params, images (batch, channel, y, x))",
        )
    if probe is not None:
        rates = np.asarray(fn(params, jnp.full((1, *shape3), probe, jnp.float32)))
        bad = ~np.isfinite(rates[0])
        if bad.any():
            raise DataError(
                f"{where}: the model gives non-finite rates for {int(bad.sum())} of "
                f"{bad.size} neurons (the first: neuron {int(np.flatnonzero(bad)[0])}) on a "
                f"uniform image of {probe:g}: its params hold NaN/inf",
                field="params",
                expected="a model with finite parameters (a diverged fit has NaN "
                "parameters: use its best checkpoint, e.g. jaxsel.load_model)",
            )
    return int(shape[1])


__all__ = [
    "check_finite_array",
    "check_hw",
    "check_int",
    "check_model_input",
    "check_number",
    "check_shape3",
    "model_image_shape",
]
