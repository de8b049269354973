"""Single-neuron information of models against a reference (the twin's truth).

* :func:`information_table`: the exact information (:func:`rate_information`) of several
  sets of rates (e.g. ``true`` = the twin's noise-free rates, ``estimated`` = a trained
  model's, ``untrained`` = the same model initialised only) on one labelled set under one
  observation model, as one labelled table (source, neuron), with each source's Spearman
  correlation to the reference over neurons and its informative-neuron count.
* :func:`information_vs_input_noise`: the same for models run on the images plus Gaussian
  pixel noise of several amplitudes (every model sees identical noisy images), so a
  model's robustness is read against the truth's at the same noise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import scipy.stats
import xarray as xr

from jaxsel._errors import DataError
from jaxsel.data import add_gaussian_noise
from jaxsel.measures._information import INFO_THRESHOLD
from jaxsel.measures._information_noise import ObservationModel
from jaxsel.measures._information_rates import rate_information
from jaxsel.models import predict


def rank_correlation(a, b) -> float:
    """Spearman correlation over the finite pairs (NaN if < 3 pairs or a constant vector)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return float("nan")
    res = scipy.stats.spearmanr(a[ok], b[ok])
    return float(res.statistic)  # pyright: ignore[reportAttributeAccessIssue]


def information_table(
    rates: Mapping[str, object],
    labels,
    noise: ObservationModel | None = None,
    *,
    reference: str = "true",
    threshold: float = INFO_THRESHOLD,
    neuron_id=None,
) -> xr.Dataset:
    """Exact information of each set of rates, compared with the reference set.

    Args:
      rates: ``{source: (image, neuron) rates}``, all on the same images and neurons, e.g.
        ``{"true": twin_rates, "estimated": model_rates, "untrained": init_rates}``.
      labels: (image,) or (image, neuron) classes.
      noise: observation model shared by every source (default Poisson).
      reference: the source the others are compared with.
      threshold: informative if ``I >= threshold`` bits.
      neuron_id: (neuron,) ids (default ``0..n-1``).

    Returns:
      ``xr.Dataset`` with ``information`` (neuron, source) in bits; per source
      ``spearman`` (rank correlation with the reference over neurons; 1 for the reference)
      and ``informative`` (count with ``I >= threshold``); attrs ``threshold``, ``noise``,
      ``reference``.
    """
    if reference not in rates:
        raise DataError(
            f"reference '{reference}' is not among the rates {list(rates)}",
            field="reference",
            expected="one of the keys of rates",
        )
    infos = {k: rate_information(v, labels, noise) for k, v in rates.items()}
    names = list(infos)
    n = len(infos[reference])
    ids = np.arange(n) if neuron_id is None else np.asarray(neuron_id)
    info = np.stack([np.asarray(infos[k].values) for k in names], axis=1)
    ref = info[:, names.index(reference)]
    return xr.Dataset(
        {
            "information": (("neuron", "source"), info, {"units": "bit"}),
            "spearman": ("source", [rank_correlation(info[:, i], ref) for i in range(len(names))]),
            "informative": ("source", (info >= threshold).sum(0).astype(np.int64)),
        },
        coords={"neuron_id": ("neuron", ids), "source": names},
        attrs={
            "threshold": float(threshold),
            "noise": type(noise).__name__ if noise is not None else "PoissonNoise",
            "reference": reference,
        },
    )


def information_vs_input_noise(
    models: Mapping[str, object],
    images,
    labels,
    noise: ObservationModel | None = None,
    sigmas: Sequence[float] = (0.0, 20.0, 40.0, 80.0),
    *,
    reference: str = "true",
    threshold: float = INFO_THRESHOLD,
    seed: int = 0,
    clip: tuple[float, float] | None = (0.0, 255.0),
    neuron_id=None,
) -> xr.Dataset:
    """:func:`information_table` of models run on noisy images, for each noise amplitude.

    Args:
      models: ``{source: (fn, params)}`` (or anything :func:`jaxsel.models.predict` takes),
        e.g. the twin's truth, the trained and the untrained model.
      images: (image, channel, y, x) raw images.
      labels: (image,) or (image, neuron) classes.
      noise: the response observation model (default Poisson).
      sigmas: Gaussian pixel-noise sd (raw pixel units) added to the images; amplitude k
        uses seed ``seed + k``, identical for every model.
      reference: the source the others are compared with at each amplitude.
      threshold: informative threshold (bits).
      seed: noise seed.
      clip: pixel range the noisy images are clipped to (None: no clipping).
      neuron_id: (neuron,) ids.

    Returns:
      ``xr.Dataset`` over ``input_noise`` (pixel sd): ``information`` (input_noise, neuron,
      source), ``spearman`` and ``informative`` (input_noise, source).
    """
    sig = [float(s) for s in np.atleast_1d(np.asarray(sigmas, float))]
    if not sig or any(not np.isfinite(s) or s < 0 for s in sig):
        raise DataError(f"sigmas = {sigmas!r}", field="sigmas", expected="finite values >= 0")
    x = np.asarray(images, np.float32)
    tabs = []
    for k, s in enumerate(sig):
        xn = add_gaussian_noise(x, s, seed=seed + k, clip=clip if s > 0 else None)
        rates = {name: predict(m, xn) for name, m in models.items()}
        tabs.append(
            information_table(
                rates,
                labels,
                noise,
                reference=reference,
                threshold=threshold,
                neuron_id=neuron_id,
            )
        )
    out = xr.concat(tabs, dim=xr.DataArray(sig, dims="input_noise", name="input_noise"))
    assert isinstance(out, xr.Dataset)  # a concat of Datasets
    out["input_noise"].attrs["units"] = "pixel sd (raw grey levels)"
    return out
