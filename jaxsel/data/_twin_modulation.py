"""The twin's behavioural modulation: gain from behaviour, receptive-field shift from the eye.

For one session with twin parameters ``p`` and modulation arrays (``coupling`` (neuron, 3),
``behavior_mean``/``behavior_std`` (3,), ``shift_matrix`` (2, 2), ``shift_offset`` (2,)),
a trial with behaviour ``b`` (pupil, dpupil, running) and pupil centre ``e`` (x, y) has

* per-neuron gain ``exp(coupling @ z)`` with ``z = (b - behavior_mean) / behavior_std``,
  multiplying the stimulus-driven part of the rate (not the baseline);
* receptive-field shift ``d = shift_matrix @ e + shift_offset`` (x, y, image pixels),
  the same for every neuron: a neuron whose field moved by ``d`` sees the image moved by
  ``-d``, so the rate is the twin's rate on :func:`shift_images` ``(images, -d)``.

At the mean state (``b = behavior_mean``, ``d = 0``) the rates are exactly
:func:`jaxsel.data.twin_rates`. Everything here is pure JAX (jit / vmap / grad compose).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxsel.data._pixels import BACKGROUND
from jaxsel.data._twin import twin_rates

#: the per-session modulation arrays (besides the twin's own parameters)
MODULATION_KEYS = ("coupling", "behavior_mean", "behavior_std", "shift_matrix", "shift_offset")


def _shift_axis(a, d, axis: int, fill):
    """``out[k] = a[k - d]`` along ``axis`` with linear interpolation; ``fill`` outside."""
    n = a.shape[axis]
    i0 = jnp.floor(d)
    f = d - i0
    src0 = jnp.arange(n) - i0.astype(jnp.int32)
    src1 = src0 - 1

    def take(src):
        vals = jnp.take(a, jnp.clip(src, 0, n - 1), axis=axis)
        inside = (src >= 0) & (src < n)
        shape = [1] * a.ndim
        shape[axis] = n
        return jnp.where(inside.reshape(shape), vals, fill)

    return (1.0 - f) * take(src0) + f * take(src1)


def shift_images(images, shift, fill=BACKGROUND):
    """Move images by sub-pixel amounts (bilinear; differentiable in ``shift``).

    ``out[..., y, x] = images[..., y - dy, x - dx]``, interpolated linearly between pixels;
    pixels that come from outside the image are ``fill`` (mid-grey for raw images, use 0
    for contrast images). A zero shift returns the images exactly.

    Args:
      images: (batch, y, x) or (batch, channel, y, x).
      shift: (batch, 2) shifts ``(dx, dy)`` in pixels (positive: right / down).
      fill: value of pixels shifted in from outside.

    Returns:
      Shifted images, same shape as ``images``.
    """
    images = jnp.asarray(images, jnp.float32)
    shift = jnp.asarray(shift, jnp.float32)

    def one(im, d):
        im = _shift_axis(im, d[0], im.ndim - 1, fill)
        return _shift_axis(im, d[1], im.ndim - 2, fill)

    return jax.vmap(one)(images, shift)


def session_modulation(params: dict, behavior, pupil_center) -> tuple[jax.Array, jax.Array]:
    """True per-trial gain and receptive-field shift.

    Args:
      params: a session's parameters (twin parameters and :data:`MODULATION_KEYS`).
      behavior: (batch, 3) pupil, dpupil, running.
      pupil_center: (batch, 2) x, y (eye-camera pixels).

    Returns:
      ``(gain, shift)``: (batch, neuron) multiplicative gains and (batch, 2) shifts
      ``(dx, dy)`` in image pixels.
    """
    b = jnp.asarray(behavior, jnp.float32)
    e = jnp.asarray(pupil_center, jnp.float32)
    z = (b - params["behavior_mean"]) / params["behavior_std"]
    gain = jnp.exp(z @ jnp.asarray(params["coupling"]).T)
    shift = e @ jnp.asarray(params["shift_matrix"]).T + params["shift_offset"]
    return gain, shift


def session_rates(params: dict, images, behavior, pupil_center) -> jax.Array:
    """Noise-free rates of one session's neurons under behaviour and eye position.

    Args:
      params: the session's parameters (``SessionTruth.params``).
      images: (batch, y, x) or (batch, 1, y, x) raw grey images.
      behavior: (batch, 3) pupil, dpupil, running.
      pupil_center: (batch, 2) x, y.

    Returns:
      (batch, neuron) rates in spikes per trial.
    """
    gain, shift = session_modulation(params, behavior, pupil_center)
    moved = shift_images(images, -shift, BACKGROUND)
    return twin_rates({**params, "gain": params["gain"] * gain}, moved)
