"""The canonical dataset: an ``xarray.Dataset`` with fixed names, validated on creation.

Layout (every loader returns exactly this):

* ``images``    (trial, channel, y, x) float32 — grayscale data has ``channel`` of size 1;
* ``responses`` (trial, neuron) float32;
* trial coords ``image_id`` (repeats of an image share it) and ``tier``
  (``"train"``, ``"validation"`` or ``"test"``);
* neuron coords ``neuron_id`` and optionally ``area``, ``cortex_x``, ``cortex_y``, ``cortex_z``;
* optional per-trial variables (Sensorium static folders carry them): ``behavior``
  (trial, behavior_var) with ``behavior_var`` = pupil dilation, its derivative and running
  speed (``["pupil", "dpupil", "running"]``), ``pupil_center`` (trial, xy) and
  ``trial_idx`` (trial,), the trial's index in the recording session;
* train-tier statistics ``image_mean``/``image_std`` (channel, y, x) and
  ``response_mean``/``response_std`` (neuron). They travel with every subset, so a test-only
  subset still knows the training statistics.

Everything here is a plain function of a dataset; nothing is mutated in place.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import xarray as xr

from jaxsel._errors import DataError

TIERS = ("train", "validation", "test")
STAT_VARS = ("image_mean", "image_std", "response_mean", "response_std")
#: Optional per-trial variables and their dims.
TRIAL_VARS = {
    "behavior": ("trial", "behavior_var"),
    "pupil_center": ("trial", "xy"),
    "trial_idx": ("trial",),
}
#: Names of the Sensorium behaviour columns.
BEHAVIOR_VARS = ("pupil", "dpupil", "running")


def make_dataset(
    images,
    responses,
    *,
    image_id,
    tier,
    neuron_id=None,
    area=None,
    cortex_xyz=None,
    name: str = "dataset",
    source: str | None = None,
    counts: bool = False,
    require_tiers: Sequence[str] = TIERS,
    require_repeats: bool = True,
) -> xr.Dataset:
    """Build and validate a dataset from plain arrays.

    Args:
      images: (trial, y, x) or (trial, channel, y, x) array.
      responses: (trial, neuron) array.
      image_id: (trial,) integer ids; repeats of one image share an id.
      tier: (trial,) strings in ``TIERS``.
      neuron_id: (neuron,) ids (default ``0..N-1``).
      area: optional (neuron,) brain-area labels.
      cortex_xyz: optional (neuron, 2 or 3) cortical positions.
      name: a short name stored in ``attrs``.
      source: where the data came from (a path), used in error messages.
      counts: responses are spike counts, so they must be non-negative.
      require_tiers: tiers that must have at least one trial.
      require_repeats: the test tier must contain repeated images.

    Returns:
      The validated ``xarray.Dataset`` with train-tier statistics. Negative responses are
      kept (calcium traces and deconvolved activity can be negative; ``counts=True``
      rejects them); ``attrs["n_negative_neurons"]`` records how many neurons have one,
      and :func:`jaxsel.fit` refuses them under the Poisson and Gamma losses.

    Raises:
      DataError: naming the source, field, what was found and what was expected.
    """
    where = source or name
    images = _numeric(images, "images", where, "pixel values")
    responses = _numeric(responses, "responses", where, "responses")
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4:
        raise DataError(
            f"images have shape {images.shape}",
            file=where,
            field="images",
            expected="(trial, y, x) or (trial, channel, y, x)",
        )
    if responses.ndim != 2:
        raise DataError(
            f"responses have shape {responses.shape}",
            file=where,
            field="responses",
            expected="(trial, neuron)",
        )
    n_trial, n_neuron = responses.shape
    if images.shape[0] != n_trial:
        raise DataError(
            f"{images.shape[0]} image trials but {n_trial} response trials",
            file=where,
            field="images/responses",
            expected="the same number of trials",
        )
    image_id = _trial_vector(image_id, n_trial, "image_id", where)
    tier = _trial_vector(tier, n_trial, "tier", where).astype(str)
    if not np.issubdtype(image_id.dtype, np.integer):
        try:
            as_float = image_id.astype(np.float64)
            exact = bool((np.isfinite(as_float) & (as_float == np.round(as_float))).all())
            as_int = as_float.astype(np.int64) if exact else image_id
        except (TypeError, ValueError, OverflowError):
            exact, as_int = False, image_id
        if not exact:
            raise DataError(
                f"image ids of dtype {image_id.dtype} are not all integers "
                f"(e.g. {image_id.ravel()[:3].tolist()})",
                file=where,
                field="image_id",
                expected="integer ids, one per distinct image (repeats share one)",
            ) from None
        image_id = as_int
    neuron_id = np.arange(n_neuron) if neuron_id is None else np.asarray(neuron_id)
    if neuron_id.shape != (n_neuron,):
        raise DataError(
            f"{neuron_id.shape[0] if neuron_id.ndim else 0} neuron ids for {n_neuron} neurons",
            file=where,
            field="neuron_id",
            expected=f"shape ({n_neuron},)",
        )
    if len(np.unique(neuron_id)) != n_neuron:
        raise DataError("neuron ids are not unique", file=where, field="neuron_id")

    coords = {
        "image_id": ("trial", image_id),
        "tier": ("trial", tier),
        "neuron_id": ("neuron", neuron_id),
    }
    if area is not None:
        area = np.asarray(area).astype(str)
        if area.shape != (n_neuron,):
            raise DataError(
                f"area has shape {area.shape}", file=where, field="area", expected=f"({n_neuron},)"
            )
        coords["area"] = ("neuron", area)
    if cortex_xyz is not None:
        xyz = _numeric(cortex_xyz, "cortex_xyz", where, "cortical positions").astype(np.float32)
        if xyz.ndim != 2 or xyz.shape[0] != n_neuron or xyz.shape[1] not in (2, 3):
            raise DataError(
                f"cortical positions have shape {xyz.shape}",
                file=where,
                field="cortex_xyz",
                expected=f"({n_neuron}, 2 or 3)",
            )
        for k, axis in enumerate("xyz"[: xyz.shape[1]]):
            coords[f"cortex_{axis}"] = ("neuron", xyz[:, k])

    ds = xr.Dataset(
        {
            "images": (("trial", "channel", "y", "x"), images.astype(np.float32, copy=False)),
            "responses": (("trial", "neuron"), responses.astype(np.float32, copy=False)),
        },
        coords=coords,
        attrs={"name": name, "source": str(source or "")},
    )
    validate(
        ds,
        source=where,
        counts=counts,
        require_tiers=require_tiers,
        require_repeats=require_repeats,
    )
    ds.attrs["n_negative_neurons"] = int((responses < 0).any(axis=0).sum())
    return with_statistics(ds)


def _numeric(values, field: str, where, what: str) -> np.ndarray:
    """``values`` as a NumPy array of (real) numbers, else a DataError naming ``field``."""
    try:
        a = np.asarray(values)
    except (TypeError, ValueError) as err:
        raise DataError(
            f"not an array ({type(values).__name__}: {err})",
            file=where,
            field=field,
            expected=f"an array of {what}",
        ) from None
    if a.dtype.kind not in "biuf":
        raise DataError(
            f"has dtype {a.dtype}",
            file=where,
            field=field,
            expected=f"an array of {what} (numbers)",
        )
    return a


def _trial_vector(values, n_trial: int, field: str, where: str) -> np.ndarray:
    values = np.asarray(values)
    if values.shape != (n_trial,):
        raise DataError(
            f"has shape {values.shape}",
            file=where,
            field=field,
            expected=f"one value per trial, shape ({n_trial},)",
        )
    return values


def validate(
    ds: xr.Dataset,
    *,
    source: str | None = None,
    counts: bool = False,
    require_tiers: Sequence[str] = TIERS,
    require_repeats: bool = True,
) -> None:
    """Check a dataset's content; raise ``DataError`` naming the first problem found."""
    where = source or ds.attrs.get("source") or ds.attrs.get("name", "dataset")
    tiers = ds["tier"].values
    unknown = sorted(set(tiers) - set(TIERS))
    if unknown:
        raise DataError(
            f"unknown tier values {unknown}",
            file=where,
            field="tier",
            expected=f"values in {list(TIERS)}",
        )
    for t in require_tiers:
        if not np.any(tiers == t):
            raise DataError(
                f"no trials in tier '{t}'",
                file=where,
                field="tier",
                expected=f"at least one trial in each of {list(require_tiers)}",
            )
    r = ds["responses"].values
    bad = ~np.isfinite(r)
    if bad.any():
        t, n = np.argwhere(bad)[0]
        raise DataError(
            f"{int(bad.sum())} non-finite response values, first at trial {t} "
            f"(image_id {ds['image_id'].values[t]}), neuron {n} "
            f"(neuron_id {ds['neuron_id'].values[n]}): {r[t, n]}",
            file=where,
            field="responses",
            expected="finite numbers",
        )
    if counts and (r < 0).any():
        t, n = np.argwhere(r < 0)[0]
        raise DataError(
            f"negative spike count {r[t, n]} at trial {t}, neuron {n} "
            f"(neuron_id {ds['neuron_id'].values[n]})",
            file=where,
            field="responses",
            expected="non-negative counts",
        )
    _validate_trial_vars(ds, where)
    im = ds["images"].values
    if not np.isfinite(im).all():
        t = int(np.argwhere(~np.isfinite(im))[0][0])
        raise DataError(
            f"non-finite pixel values in trial {t}",
            file=where,
            field="images",
            expected="finite numbers",
        )
    if require_repeats and "test" in require_tiers:
        ids = ds["image_id"].values[tiers == "test"]
        _, n_rep = np.unique(ids, return_counts=True)
        if n_rep.max(initial=0) < 2:
            raise DataError(
                "no test image is shown more than once",
                file=where,
                field="image_id (tier 'test')",
                expected="repeated test images (needed for oracle correlation "
                "and FEVE); to skip this check set data.require_repeats = false "
                "(API: require_repeats=False)",
            )


def _validate_trial_vars(ds: xr.Dataset, where) -> None:
    """The optional per-trial variables (:data:`TRIAL_VARS`): dims, length, finite numbers."""
    for name, dims in TRIAL_VARS.items():
        if name not in ds.variables:
            continue
        v = ds[name]
        if v.dims != dims:
            raise DataError(f"has dims {v.dims}", file=where, field=name, expected=f"dims {dims}")
        a = v.values
        if a.dtype.kind not in "biuf":
            raise DataError(f"has dtype {a.dtype}", file=where, field=name, expected="numbers")
        if name == "trial_idx":
            if a.dtype.kind not in "iu":
                raise DataError(f"has dtype {a.dtype}", file=where, field=name, expected="integers")
        elif not np.isfinite(a).all():
            t = int(np.argwhere(~np.isfinite(a))[0][0])
            raise DataError(
                f"non-finite value in trial {t}",
                file=where,
                field=name,
                expected="finite numbers",
            )


def with_statistics(ds: xr.Dataset, tier: str = "train") -> xr.Dataset:
    """Return ``ds`` with image and response statistics computed on one tier."""
    sel = ds.isel(trial=np.flatnonzero(ds["tier"].values == tier))
    if sel.sizes["trial"] == 0:
        sel = ds
    im = sel["images"].values.astype(np.float64)
    r = sel["responses"].values.astype(np.float64)
    return ds.assign(
        image_mean=(("channel", "y", "x"), im.mean(0).astype(np.float32)),
        image_std=(("channel", "y", "x"), im.std(0).astype(np.float32)),
        response_mean=(("neuron",), r.mean(0).astype(np.float32)),
        response_std=(("neuron",), r.std(0).astype(np.float32)),
    )


def global_image_stats(ds: xr.Dataset) -> tuple[float, float]:
    """Mean and std over all train-tier pixels, from the per-pixel statistics."""
    m = ds["image_mean"].values.astype(np.float64)
    v = ds["image_std"].values.astype(np.float64) ** 2
    mean = m.mean()
    return float(mean), float(np.sqrt(v.mean() + ((m - mean) ** 2).mean()))


def subset(ds: xr.Dataset, *, neurons=None, tiers: str | Sequence[str] | None = None) -> xr.Dataset:
    """Select neurons (ids, or a boolean mask over neurons) and/or tiers."""
    if neurons is not None:
        neurons = np.asarray(neurons)
        if neurons.dtype == bool:
            if neurons.shape != (ds.sizes["neuron"],):
                raise DataError(
                    f"neuron mask has shape {neurons.shape}",
                    field="neurons",
                    expected=f"({ds.sizes['neuron']},)",
                )
            idx = np.flatnonzero(neurons)
        else:
            ids = ds["neuron_id"].values
            pos = {v: i for i, v in enumerate(ids.tolist())}
            missing = [v for v in neurons.tolist() if v not in pos]
            if missing:
                raise DataError(f"unknown neuron ids {missing[:5]}", field="neuron_id")
            idx = np.array([pos[v] for v in neurons.tolist()], dtype=int)
        ds = ds.isel(neuron=idx)
    if tiers is not None:
        tiers = [tiers] if isinstance(tiers, str) else list(tiers)
        ds = ds.isel(trial=np.flatnonzero(np.isin(ds["tier"].values, tiers)))
    return ds


def repeats(ds: xr.Dataset, tier: str = "test") -> xr.DataArray:
    """Responses grouped by image: (image, repeat, neuron), NaN where an image has fewer repeats.

    Coordinates: ``image_id`` (sorted), ``n_repeats`` per image, and the neuron coords.
    """
    sel = subset(ds, tiers=tier)
    ids = sel["image_id"].values
    uniq, inverse, n_rep = np.unique(ids, return_inverse=True, return_counts=True)
    if len(uniq) == 0:
        raise DataError(f"no trials in tier '{tier}'", field="tier")
    order = np.argsort(inverse, kind="stable")
    rank = np.empty(len(ids), dtype=int)
    starts = np.concatenate([[0], np.cumsum(n_rep)[:-1]])
    rank[order] = np.arange(len(ids)) - np.repeat(starts, n_rep)
    out = np.full((len(uniq), n_rep.max(), sel.sizes["neuron"]), np.nan, dtype=np.float32)
    out[inverse, rank] = sel["responses"].values
    neuron_coords = {
        k: ("neuron", v.values) for k, v in sel.coords.items() if v.dims == ("neuron",)
    }
    return xr.DataArray(
        out,
        dims=("image", "repeat", "neuron"),
        coords={"image_id": ("image", uniq), "n_repeats": ("image", n_rep), **neuron_coords},
        name="responses",
    )


def unique_images(ds: xr.Dataset, tier: str = "test") -> xr.DataArray:
    """One image per ``image_id`` in a tier: (image, channel, y, x), ids sorted."""
    sel = subset(ds, tiers=tier)
    ids = sel["image_id"].values
    uniq, first = np.unique(ids, return_index=True)
    return (
        sel["images"]
        .isel(trial=first)
        .rename(trial="image")
        .assign_coords(image_id=("image", uniq))
        .drop_vars("tier", errors="ignore")
    )


def fingerprint(ds: xr.Dataset) -> str:
    """A short content hash of images, responses, ids and tiers (for checkpoints and caches)."""
    h = hashlib.sha256()
    for name in ("images", "responses", "image_id", "neuron_id", "tier"):
        a = np.ascontiguousarray(ds[name].values)
        h.update(name.encode())
        h.update(str(a.shape).encode())
        h.update(a.astype(str).tobytes() if a.dtype.kind in "OU" else a.tobytes())
    return h.hexdigest()[:16]
