"""Composable parts of MEI optimisation, each a pure ``jax.numpy`` function of ONE job.

An MEI job optimises a variable ``u`` of shape ``(K, C, H, W)`` (``K`` images optimised
together; ``K = 1`` except for diverse MEIs). ``u`` lives in *unit space*: the raw image shown
to the model is ``offset + scale * u`` (see :class:`jaxsel.insilico.MEIConfig`), so
constraints and step sizes do not depend on the data set's grey-level units.

Everything here acts on the last three axes (one image = ``(C, H, W)``) and broadcasts over
leading axes, so the engine can ``vmap`` it over jobs.

Parts:
  * starts: :func:`start_image` (white noise, gray, black, a natural image);
  * constraints (reparameterisations and projections): :func:`fix_mean_std`,
    :func:`fix_norm`, :func:`clip_range`, :func:`rescale_range`;
  * gradient preconditioning: :func:`fft_filter`, :func:`precondition`,
    :func:`preconditioner` (an optax transformation);
  * smoothing: :func:`gaussian_blur` (any ``sigma``, traced), :func:`blur_sigma`;
  * :func:`jitter` (random translation);
  * penalties: :func:`contrast_penalty`, :func:`similarity_penalty`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

_AXES = (-3, -2, -1)
_EPS = 1e-8


# ----------------------------------------------------------------------------- starts
STARTS = ("noise", "gray", "black", "natural")


def start_image(
    kind: str,
    rng: np.random.Generator,
    shape: tuple[int, ...],
    *,
    std: float = 0.1,
    gray: float = 0.0,
    black: float = -1.0,
    natural=None,
) -> np.ndarray:
    """A starting point in unit space (made on the host: it is data, not program).

    Args:
      kind: ``"noise"`` (white Gaussian noise of ``std`` around ``gray``), ``"gray"``
        (constant ``gray``), ``"black"`` (constant ``black``) or ``"natural"`` (``natural``).
        Constant starts get 1e-3 of noise so that norm/std constraints are defined.
      rng: a NumPy generator (seeded per job by the engine).
      shape: ``(K, C, H, W)``.
      std, gray, black: noise std and the unit-space values of gray and black.
      natural: ``(C, H, W)`` unit-space image (for ``"natural"``).

    Returns:
      ``shape`` float32 array.
    """
    if kind not in STARTS:
        raise ValueError(f"unknown start {kind!r}; expected one of {STARTS}")
    noise = rng.standard_normal(shape)
    if kind == "noise":
        return (gray + std * noise).astype(np.float32)
    base = {"gray": gray, "black": black}.get(kind)
    base = np.asarray(natural if base is None else base, np.float64)
    return (base + 1e-3 * noise).astype(np.float32)


# ------------------------------------------------------------------------ constraints
def _mean(u):
    return jnp.mean(u, axis=_AXES, keepdims=True)


def image_std(u):
    """Per-image standard deviation over (C, H, W), keeping dims."""
    return jnp.sqrt(jnp.mean((u - _mean(u)) ** 2, axis=_AXES, keepdims=True) + _EPS**2)


def image_norm(u):
    """Per-image L2 norm over (C, H, W), keeping dims."""
    return jnp.sqrt(jnp.sum(u**2, axis=_AXES, keepdims=True) + _EPS**2)


def fix_mean_std(u, mean: float, std: float):
    """Reparameterise to an image with exactly the given mean and std (the fixed mean/std
    constraint)."""
    return (u - _mean(u)) / image_std(u) * std + mean


def fix_norm(u, norm: float, center: bool = True):
    """Reparameterise to an image with L2 norm ``norm`` (after removing its mean if ``center``)."""
    if center:
        u = u - _mean(u)
    return norm * u / image_norm(u)


def clip_range(u, lo: float, hi: float):
    """Clip pixel values into ``[lo, hi]``."""
    return jnp.clip(u, lo, hi)


def rescale_range(u, lo: float = 0.0, hi: float = 1.0):
    """Affinely map each image's min..max onto ``[lo, hi]`` (the min-max rescale of
    ``recipes.fft_preconditioned``)."""
    mn = jnp.min(u, axis=_AXES, keepdims=True)
    mx = jnp.max(u, axis=_AXES, keepdims=True)
    return lo + (u - mn) * (hi - lo) / jnp.maximum(mx - mn, _EPS)


# ----------------------------------------------------------------------- frequencies
def _freqs(h: int, w: int, rfft: bool):
    ky = np.fft.fftfreq(h)[:, None]
    kx = (np.fft.rfftfreq(w) if rfft else np.fft.fftfreq(w))[None, :]
    return ky, kx


def fft_filter(shape: tuple[int, int], alpha):
    """Gradient preconditioner ``1/|k|^alpha`` on the rfft grid, normalised to mean 1.

    ``|k|`` is the radial frequency in cycles per pixel with proper negative frequencies;
    the DC term gets the weight of the lowest non-zero frequency.

    Args:
      shape: (H, W).
      alpha: exponent, a number or a traced scalar (0 = identity;
        ``recipes.fft_preconditioned`` uses 1/4).

    Returns:
      (H, W // 2 + 1) float32 array.
    """
    h, w = shape
    ky, kx = _freqs(h, w, rfft=True)
    k = np.sqrt(ky**2 + kx**2)
    k[0, 0] = np.min(k[k > 0]) if k.size > 1 else 1.0
    f = jnp.asarray(k, jnp.float32) ** (-jnp.asarray(alpha, jnp.float32))
    return f / jnp.mean(f)


def is_zero(v) -> bool:
    """True for a Python number equal to 0 (a traced value is never 'zero' here)."""
    return isinstance(v, (int, float)) and v == 0


def precondition(g, alpha):
    """Filter a gradient (..., H, W) in Fourier space with :func:`fft_filter`."""
    h, w = g.shape[-2:]
    if is_zero(alpha):
        return g
    f = fft_filter((h, w), alpha)
    return jnp.fft.irfft2(jnp.fft.rfft2(g) * f, s=(h, w)).astype(g.dtype)


def preconditioner(alpha: float) -> optax.GradientTransformation:
    """An optax transformation applying :func:`precondition` to every update leaf."""

    def init(params):
        del params
        return optax.EmptyState()

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda g: precondition(g, alpha), updates), state

    return optax.GradientTransformation(init, update)


# -------------------------------------------------------------------------- smoothing
def gaussian_blur(u, sigma):
    """Gaussian blur over the last two axes with a traced ``sigma`` (pixels).

    Exact Gaussian transfer function on a mirror-extended image (edges reflect, as
    ``scipy.ndimage.gaussian_filter(mode='reflect')``, which it matches to 1e-6 for
    ``sigma >= 1.5``; below ~1 px a sampled kernel aliases, this does not), so ``sigma`` may
    change every step without recompiling. ``sigma <= 0`` is the identity.

    Args:
      u: (..., H, W) array.
      sigma: scalar envelope std in pixels.

    Returns:
      Blurred array, same shape.
    """
    h, w = u.shape[-2:]
    ext = jnp.concatenate([u, jnp.flip(u, -2)], axis=-2)
    ext = jnp.concatenate([ext, jnp.flip(ext, -1)], axis=-1)
    ky, kx = _freqs(2 * h, 2 * w, rfft=True)
    k2 = jnp.asarray((ky**2 + kx**2).astype(np.float32))
    s = jnp.maximum(jnp.asarray(sigma, jnp.float32), 0.0)
    transfer = jnp.exp(-2.0 * jnp.pi**2 * s**2 * k2)
    out = jnp.fft.irfft2(jnp.fft.rfft2(ext) * transfer, s=(2 * h, 2 * w))
    return out[..., :h, :w].astype(u.dtype)


def blur_sigma(step, steps: int, start: float, end: float, schedule: str = "linear"):
    """Blur width used after step ``step`` (0-based) of ``steps``.

    Args:
      step: current step (traced).
      steps: total steps.
      start, end: sigma at the first step and the limit.
      schedule: ``"linear"`` (straight line from ``start`` to ``end``) or ``"accelerating"``
        (former name ``"seed002"``): step i moves the fraction i / steps of the way to
        ``end``, ``s_i = s_{i-1} + (end - s_{i-1}) * i / steps``, i = 1..steps, in closed
        form: ``end + (start - end) * prod_{j<=i} (1 - j/steps)``; it falls off within the
        first ~sqrt(2 * steps) steps).
    """
    if schedule == "linear":
        t = jnp.clip(step / jnp.maximum(steps - 1, 1), 0.0, 1.0)
        return start + (end - start) * t
    if schedule in ("accelerating", "seed002"):
        i = jnp.clip(jnp.asarray(step, jnp.float32) + 1.0, 1.0, steps - 1.0)
        t = float(steps)
        log_prod = jax.scipy.special.gammaln(t) - jax.scipy.special.gammaln(t - i) - i * jnp.log(t)
        return end + (start - end) * jnp.exp(log_prod) * (step + 1 < steps)
    raise ValueError(f"unknown blur schedule {schedule!r}; expected 'linear' or 'accelerating'")


def hash32(x):
    """A 32-bit integer mixing function (murmur3 finaliser): cheap, vmappable randomness."""
    x = jnp.asarray(x, jnp.uint32)
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x85EBCA6B)
    x = x ^ (x >> 13)
    x = x * jnp.uint32(0xC2B2AE35)
    return x ^ (x >> 16)


def jitter(u, code, max_shift: int):
    """Translate every image by one pseudo-random (dy, dx) in ``[-max_shift, max_shift]``
    (circular), drawn from the integer ``code`` (e.g. a hash of job and step)."""
    if max_shift <= 0:
        return u
    n = 2 * max_shift + 1
    h = hash32(code)
    dy = (h % n).astype(jnp.int32) - max_shift
    dx = (hash32(h + jnp.uint32(1)) % n).astype(jnp.int32) - max_shift
    return jnp.roll(u, (dy, dx), axis=(-2, -1))


# -------------------------------------------------------------------------- penalties
def contrast_penalty(u, target: float, weight: float):
    """``weight * |target - std(u)|`` summed over images (the contrast term of
    ``recipes.fft_preconditioned``)."""
    return weight * jnp.sum(jnp.abs(target - image_std(u)))


def similarity_penalty(u, weight: float):
    """``weight`` times the mean pairwise cosine similarity of the (centred) K images."""
    k = u.shape[0]
    if k < 2 or is_zero(weight):
        return jnp.zeros((), u.dtype)
    v = (u - _mean(u)).reshape(k, -1)
    v = v / jnp.sqrt(jnp.sum(v**2, axis=1, keepdims=True) + _EPS)
    s = v @ v.T
    off = (jnp.sum(s) - jnp.trace(s)) / (k * (k - 1))
    return weight * off
