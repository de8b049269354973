"""Input gradients of many neurons: gradient receptive fields and sensitivity maps.

Every function uses one forward pass per image and ``vmap`` over one-hot cotangents of the
vector-Jacobian product (one backward pass per neuron), chunked over neurons; never
``jacrev`` of a whole population inside a Python loop.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from jaxsel._checks import (
    check_finite_array,
    check_int,
    check_model_input,
    check_number,
    check_shape3,
)
from jaxsel._errors import ConfigError
from jaxsel.insilico._ensemble import model_pair
from jaxsel.insilico._mei import neuron_indices, output_size
from jaxsel.insilico._mei_parts import gaussian_blur

METHODS = ("grad", "abs", "grad_x_input")


@partial(jax.jit, static_argnames=("fn",))
def _input_grads(params, images, neurons, *, fn):
    """(M, C, H, W) images, (B,) neuron indices -> (M, B, C, H, W) gradients, (M, N) rates."""

    def one(x):
        rates, vjp = jax.vjp(lambda z: fn(params, z[None])[0], x)
        cot = jax.nn.one_hot(neurons, rates.shape[0], dtype=rates.dtype)
        return jax.vmap(lambda c: vjp(c)[0])(cot), rates

    return jax.vmap(one)(images)


def _as_images(images, shape=None) -> np.ndarray:
    a = np.asarray(images, np.float32)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4:
        raise ConfigError(f"images have shape {a.shape}; expected (image, [channel,] y, x)")
    if shape is not None and a.shape[1:] != tuple(shape):
        raise ConfigError(f"images have shape {a.shape[1:]}; the model takes {shape}")
    return a


def _neuron_chunks(idx, chunk):
    for s in range(0, len(idx), chunk):
        sel = np.arange(s, s + chunk) % len(idx)  # fixed shape: pad by wrapping
        yield s, min(chunk, len(idx) - s), idx[sel]


def gradient_rf(
    fn,
    params=None,
    image=None,
    *,
    image_shape=None,
    value: float | None = None,
    neurons=None,
    neuron_id=None,
    chunk_size: int = 256,
) -> xr.DataArray:
    """Gradient receptive fields ``d f_i / d x`` at one image (the mean image) for all neurons.

    Args:
      fn, params: the model on raw images (or, ``params`` omitted, a model object: a
        ResponseModel, a ``FitResult`` or a ``ManyResult``'s ensemble mean).
      image: (C, H, W) or (H, W) raw image to differentiate at, e.g. the dataset's
        ``image_mean`` (the mean image).
      image_shape, value: alternatively a uniform image of grey ``value`` and this shape.
      neurons: indices into the model's neuron axis (default all).
      neuron_id: labels for the neurons.
      chunk_size: neurons per backward batch.

    Returns:
      ``DataArray`` (neuron, channel, y, x) in rate per raw grey level.

    Raises:
      ConfigError: a bad ``image_shape``, a non-finite ``value``.
      DataError: non-finite pixels in ``image``, an image shape the model cannot take (or
        not its declared shape), a model giving non-finite rates (NaN parameters).
    """
    where = "gradient_rf"
    fn, params = model_pair(fn, params)
    check_int(where, "chunk_size", chunk_size, minimum=1)
    name = "image"
    if image is None:
        if image_shape is None or value is None:
            raise ConfigError(
                "gradient_rf needs image= (the mean image) or image_shape= and "
                "value= (a uniform grey)"
            )
        value = check_number(where, "value", value)
        image = np.full(check_shape3(where, "image_shape", image_shape), value, np.float32)
        name = "image_shape"
    x = check_finite_array(where, "image", image).astype(np.float32)
    x = x[None] if x.ndim == 2 else x
    if x.ndim != 3:
        raise ConfigError(f"image has shape {np.shape(image)}; expected (H, W) or (C, H, W)")
    n_out = check_model_input(where, fn, params, x.shape, name=name)
    idx = neuron_indices(neurons, n_out)
    chunk = min(int(chunk_size), len(idx))
    out = np.empty((len(idx),) + x.shape, np.float32)
    for s, keep, sel in _neuron_chunks(idx, chunk):
        g, _ = _input_grads(params, jnp.asarray(x[None]), jnp.asarray(sel), fn=fn)
        out[s : s + keep] = np.asarray(g[0, :keep])
    return xr.DataArray(
        out,
        dims=("neuron", "channel", "y", "x"),
        name="gradient_rf",
        coords={
            "neuron_id": ("neuron", idx if neuron_id is None else np.asarray(neuron_id)),
            "neuron_index": ("neuron", idx),
        },
    )


def sensitivity_maps(
    fn,
    params,
    images,
    *,
    neurons=None,
    method: str = "abs",
    smooth: float = 0.0,
    baseline=None,
    reduce: str | None = "mean",
    image_id=None,
    neuron_id=None,
    image_chunk: int = 16,
    neuron_chunk: int = 64,
) -> xr.DataArray:
    """Pixel sensitivity of each neuron to each image (traceback maps).

    Args:
      fn, params: the model on raw images.
      images: (M, [C,] H, W) raw images.
      neurons: indices into the model's neuron axis (default all).
      method: ``"abs"`` (``|df/dx|``), ``"grad"`` (signed ``df/dx``) or ``"grad_x_input"``
        (``df/dx * (x - baseline)``).
      smooth: Gaussian smoothing sigma in pixels applied to each map (0 = none).
      baseline: reference image or scalar for ``grad_x_input`` (default: the mean over
        ``images`` of each image's mean grey).
      reduce: ``"mean"`` (average over images) or None (keep every image: memory is
        M x N x C x H x W floats).
      image_id, neuron_id: labels.
      image_chunk, neuron_chunk: batch sizes of the compiled call.

    Returns:
      ``DataArray`` (neuron, channel, y, x) if ``reduce == "mean"``, else
      (image, neuron, channel, y, x).
    """
    if method not in METHODS:
        raise ConfigError(f"method = {method!r}: expected one of {METHODS}")
    if reduce not in ("mean", None):
        raise ConfigError(f"reduce = {reduce!r}: expected 'mean' or None")
    x = _as_images(images)
    m = len(x)
    if m == 0:
        raise ConfigError("sensitivity_maps needs at least one image")
    n_out = output_size(fn, params, x.shape[1:])
    idx = neuron_indices(neurons, n_out)
    if baseline is None:
        baseline = float(x.mean())
    base = np.broadcast_to(np.asarray(baseline, np.float32), x.shape[1:])
    nc = min(int(neuron_chunk), len(idx))
    ic = min(int(image_chunk), m)
    shape = (len(idx),) + x.shape[1:]
    out = np.zeros(shape, np.float64) if reduce == "mean" else np.empty((m,) + shape, np.float32)
    for i0 in range(0, m, ic):
        isel = np.arange(i0, i0 + ic) % m
        ikeep = min(ic, m - i0)
        xi = jnp.asarray(x[isel])
        for s, keep, sel in _neuron_chunks(idx, nc):
            g, _ = _input_grads(params, xi, jnp.asarray(sel), fn=fn)
            g = _postprocess(g, xi, jnp.asarray(base), method, float(smooth))
            g = np.asarray(g[:ikeep, :keep])
            if reduce == "mean":
                out[s : s + keep] += g.sum(0)
            else:
                out[i0 : i0 + ikeep, s : s + keep] = g
    ids = {
        "neuron_id": ("neuron", idx if neuron_id is None else np.asarray(neuron_id)),
        "neuron_index": ("neuron", idx),
    }
    if reduce == "mean":
        return xr.DataArray(
            (out / m).astype(np.float32),
            dims=("neuron", "channel", "y", "x"),
            coords=ids,
            name="sensitivity",
            attrs={"method": method, "n_images": m},
        )
    ids["image_id"] = ("image", np.arange(m) if image_id is None else np.asarray(image_id))
    return xr.DataArray(
        out,
        dims=("image", "neuron", "channel", "y", "x"),
        coords=ids,
        name="sensitivity",
        attrs={"method": method},
    )


@partial(jax.jit, static_argnames=("method", "smooth"))
def _postprocess(g, x, base, method, smooth):
    if method == "abs":
        g = jnp.abs(g)
    elif method == "grad_x_input":
        g = g * (x - base)[:, None]
    if smooth > 0:
        g = gaussian_blur(g, smooth)
    return g
