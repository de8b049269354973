"""Image metrics: masked luminance and contrast, power spectrum, axial average,
n-fold symmetry index, dominant orientation and spatial frequency, and the comparison of
MEI vs optimal Gabor vs best natural image.

Metric functions act on ONE (H, W) image and are pure ``jax.numpy`` (``vmap`` them over
neurons). Frequencies are in cycles per pixel; angles follow the project convention
(``theta`` = direction of the wave vector, from +x towards +y with y = row index
downwards), so a grating ``grating(shape, theta, sf, ...)`` has dominant orientation
``theta mod pi`` and spatial frequency ``sf``.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from jaxsel._errors import ConfigError
from jaxsel.insilico._mei import neuron_indices, output_size
from jaxsel.models import predict

BIN = np.pi / 16


def circular_mask(
    shape: tuple[int, int], radius: float, cx: float | None = None, cy: float | None = None
):
    """Boolean (H, W) disc: pixels whose centre lies within ``radius`` of (cx, cy).

    The default centre is the image centre ``((W - 1) / 2, (H - 1) / 2)``.
    """
    h, w = shape
    cx = (w - 1) / 2.0 if cx is None else cx
    cy = (h - 1) / 2.0 if cy is None else cy
    y, x = jnp.meshgrid(
        jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij"
    )
    return (x - cx) ** 2 + (y - cy) ** 2 <= radius**2


def masked_luminance(img, mask):
    """Mean pixel value inside ``mask``."""
    m = mask.astype(jnp.float32)
    return jnp.sum(img * m) / jnp.maximum(jnp.sum(m), 1.0)


def masked_contrast(img, mask):
    """Standard deviation (ddof 0) of the pixels inside ``mask``."""
    m = mask.astype(jnp.float32)
    mu = masked_luminance(img, mask)
    return jnp.sqrt(jnp.sum(m * (img - mu) ** 2) / jnp.maximum(jnp.sum(m), 1.0))


def spectrum_frequencies(shape: tuple[int, int]):
    """fftshift-ed frequency axes (ky (H,), kx (W,)) in cycles per pixel."""
    h, w = shape
    return (
        np.fft.fftshift(np.fft.fftfreq(h)).astype(np.float32),
        np.fft.fftshift(np.fft.fftfreq(w)).astype(np.float32),
    )


def power_spectrum(
    img, *, subtract_mean: bool = True, window: bool = True, pad_to: int | None = None
):
    """|FFT|^2 of an image, fftshift-ed (DC at index (H'//2, W'//2)).

    Args:
      img: (H, W).
      subtract_mean: remove the mean first (the DC term then carries no power).
      window: multiply by a 2-D Hann window first (less leakage from the image edges).
      pad_to: zero-pad to a (pad_to, pad_to) grid (finer, isotropic frequency sampling).

    Returns:
      (H', W') power; frequencies from :func:`spectrum_frequencies` of (H', W').
    """
    img = jnp.asarray(img, jnp.float32)
    h, w = img.shape
    if subtract_mean:
        img = img - jnp.mean(img)
    if window:
        img = img * jnp.asarray(
            np.outer(np.hanning(h + 2)[1:-1], np.hanning(w + 2)[1:-1]), jnp.float32
        )
    s = (h, w) if pad_to is None else (max(pad_to, h), max(pad_to, w))
    f = jnp.fft.fft2(img, s=s)
    return jnp.fft.fftshift(jnp.abs(f) ** 2)


def _angles(shape):
    ky, kx = spectrum_frequencies(shape)
    kyy, kxx = np.meshgrid(ky, kx, indexing="ij")
    return np.mod(np.arctan2(kyy, kxx), np.pi), np.hypot(kyy, kxx)


def axial_average(power, *, bin_size: float = BIN, kmax: float | None = 0.5):
    """Mean power per orientation bin of width ``bin_size`` over [0, pi).

    The spectrum of a real image is point symmetric, so angles are folded mod pi. The DC
    term is excluded, and so are frequencies above ``kmax`` (default: the inscribed
    circle |k| <= 0.5, so every direction is sampled to the same radius).

    Args:
      power: (H, W) fftshift-ed power (:func:`power_spectrum`).
      bin_size: bin width in radians (default pi/16).
      kmax: radial cut-off in cycles/pixel, or None.

    Returns:
      ``(p_theta (n_bins,), theta (n_bins,))`` with ``theta`` the bin centres.
    """
    n_bins = round(float(np.pi / bin_size))
    if n_bins < 1 or not np.isclose(n_bins * bin_size, np.pi):
        raise ConfigError(f"bin_size = {bin_size}: expected pi / integer")
    ang, k = _angles(power.shape)
    use = (k > 0) & (k <= (np.inf if kmax is None else kmax))
    b = np.minimum(np.floor(ang / bin_size + 1e-9).astype(int), n_bins - 1)  # ties: upper bin
    onehot = (b[..., None] == np.arange(n_bins)) & use[..., None]  # (H, W, bins)
    count = onehot.sum((0, 1))
    total = jnp.einsum("hw,hwb->b", power, jnp.asarray(onehot, jnp.float32))
    p = total / jnp.asarray(np.maximum(count, 1), jnp.float32)
    return p, jnp.asarray((np.arange(n_bins) + 0.5) * bin_size, jnp.float32)


def symmetry_index(p_theta, theta, n: int):
    """``SI_n = |sum P_theta exp(i 2 n theta)| / sum P_theta`` (0 = no n-fold symmetry, 1 =
    all power at one orientation)."""
    num = jnp.abs(jnp.sum(p_theta * jnp.exp(1j * 2 * n * theta)))
    return num / jnp.maximum(jnp.sum(p_theta), 1e-30)


def dominant_orientation_sf(img, *, pad_to: int = 128, window: bool = True, ring: float = 0.5):
    """Dominant orientation (radians in [0, pi)) and spatial frequency (cycles/pixel).

    The spectral peak (zero-padded to ``pad_to``, DC excluded) is refined by a power-weighted
    average over the ring ``(1 - ring) k_peak <= |k| <= (1 + ring) k_peak``: the orientation
    is the doubled-angle circular mean there, the frequency the mean ``|k|``.
    """
    power = power_spectrum(img, window=window, pad_to=pad_to)
    ang, k = _angles(power.shape)
    ang, k = jnp.asarray(ang), jnp.asarray(k)
    i = jnp.argmax(jnp.where(k > 0, power, -1.0).ravel())
    k0 = k.ravel()[i]
    wgt = power * ((k >= (1 - ring) * k0) & (k <= (1 + ring) * k0) & (k > 0))
    z = jnp.sum(wgt * jnp.exp(2j * ang))
    theta = jnp.mod(0.5 * jnp.angle(z), jnp.pi)
    sf = jnp.sum(wgt * k) / jnp.maximum(jnp.sum(wgt), 1e-30)
    return theta, sf


def image_metrics(
    img,
    *,
    radius: float,
    cx: float | None = None,
    cy: float | None = None,
    bin_size: float = BIN,
    window: bool = True,
    pad_to: int = 128,
) -> dict:
    """All image metrics of one (H, W) image.

    Returns:
      dict of scalars: ``luminance``, ``contrast`` (inside the circular mask), ``si_1``,
      ``si_2`` (symmetry indices of the axially averaged power spectrum), ``orientation``
      (radians, [0, pi)) and ``sf`` (cycles/pixel) of the spectral peak.
    """
    mask = circular_mask(img.shape, radius, cx, cy)
    p, th = axial_average(power_spectrum(img, window=window), bin_size=bin_size)
    ori, sf = dominant_orientation_sf(img, pad_to=pad_to, window=window)
    return {
        "luminance": masked_luminance(img, mask),
        "contrast": masked_contrast(img, mask),
        "si_1": symmetry_index(p, th, 1),
        "si_2": symmetry_index(p, th, 2),
        "orientation": ori,
        "sf": sf,
    }


@partial(jax.jit, static_argnames=("bin_size", "window", "pad_to"))
def _metrics_batch(images, radius, cx, cy, *, bin_size, window, pad_to):
    return jax.vmap(
        lambda im, x, y: image_metrics(
            im, radius=radius, cx=x, cy=y, bin_size=bin_size, window=window, pad_to=pad_to
        )
    )(images, cx, cy)


def metrics_table(
    images,
    *,
    radius: float,
    cx=None,
    cy=None,
    dim: str = "neuron",
    bin_size: float = BIN,
    window: bool = True,
    pad_to: int = 128,
) -> xr.Dataset:
    """:func:`image_metrics` vmapped over a stack (n, [1,] H, W) -> Dataset over ``dim``.

    ``cx``, ``cy``: mask centres, scalars or (n,) arrays (default: the image centre).
    """
    x = np.asarray(images, np.float32)
    x = x[:, 0] if x.ndim == 4 else x
    if x.ndim != 3:
        raise ConfigError(f"images have shape {np.shape(images)}; expected (n, [1,] H, W)")
    n, h, w = x.shape
    cx = np.broadcast_to(np.float32((w - 1) / 2 if cx is None else cx), (n,))
    cy = np.broadcast_to(np.float32((h - 1) / 2 if cy is None else cy), (n,))
    out = _metrics_batch(
        jnp.asarray(x),
        jnp.float32(radius),
        jnp.asarray(cx, jnp.float32),
        jnp.asarray(cy, jnp.float32),
        bin_size=float(bin_size),
        window=bool(window),
        pad_to=int(pad_to),
    )
    return xr.Dataset({k: (dim, np.asarray(v, np.float32)) for k, v in out.items()})


def best_natural_images(
    fn, params, images, *, neurons=None, image_id=None, batch_size: int = 256
) -> xr.Dataset:
    """Per neuron, the natural image (of ``images``) that the model rates highest.

    Returns:
      Dataset over ``neuron``: ``image`` (neuron, channel, y, x), ``response``,
      ``image_id``.
    """
    x = np.asarray(images, np.float32)
    x = x[:, None] if x.ndim == 3 else x
    idx = neuron_indices(neurons, output_size(fn, params, x.shape[1:]))
    r = predict((fn, params), x, batch_size=batch_size)[:, idx]
    best = r.argmax(0)
    ids = np.arange(len(x)) if image_id is None else np.asarray(image_id)
    return xr.Dataset(
        {
            "image": (("neuron", "channel", "y", "x"), x[best]),
            "response": ("neuron", r[best, np.arange(len(idx))]),
            "image_id": ("neuron", ids[best]),
        },
        coords={"neuron_index": ("neuron", idx)},
    )


def stimulus_comparison(
    fn,
    params,
    stimuli: dict,
    *,
    neurons,
    radius: float,
    centers=None,
    neuron_id=None,
    **metric_kwargs,
) -> xr.Dataset:
    """Compare stimuli per neuron (e.g. MEI vs optimal Gabor vs best natural image).

    Args:
      fn, params: the model on raw images.
      stimuli: name -> (neuron, [C,] H, W) raw images, row i belonging to neuron i.
      neurons: the model neuron index of every row.
      radius: radius of the circular mask for luminance/contrast.
      centers: optional (neuron, 2) mask centres (cx, cy) in pixels (e.g. the RF centre);
        default the image centre.
      neuron_id: labels.
      **metric_kwargs: passed to :func:`image_metrics`.

    Returns:
      ``xarray.Dataset`` (neuron, stimulus): ``activation`` (the model's rate of neuron i
      to its own stimulus) and every metric of :func:`image_metrics`.
    """
    idx = np.asarray(neurons)
    names = list(stimuli)
    if not names:
        raise ConfigError("stimulus_comparison needs at least one stimulus set")
    tables = []
    for name in names:
        x = np.asarray(stimuli[name], np.float32)
        x = x[:, None] if x.ndim == 3 else x
        if len(x) != len(idx):
            raise ConfigError(f"stimuli[{name!r}] has {len(x)} images for {len(idx)} neurons")
        act = predict((fn, params), x)[np.arange(len(idx)), idx]
        c = (None, None) if centers is None else np.asarray(centers, np.float32).T
        t = metrics_table(x[:, 0], radius=radius, cx=c[0], cy=c[1], **metric_kwargs)
        tables.append(t.assign(activation=("neuron", act.astype(np.float32))))
    out = xr.concat(tables, dim=xr.DataArray(names, dims="stimulus", name="stimulus"))
    out = out.transpose("neuron", "stimulus")
    return out.assign_coords(
        neuron_index=("neuron", idx),
        neuron_id=("neuron", idx if neuron_id is None else np.asarray(neuron_id)),
    )
