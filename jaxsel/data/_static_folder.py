"""The Sensorium / Lurz 2020 "static" folder layout, read from a folder or a ``.zip``.

Layout (``n`` trials numbered ``0..n-1``)::

    data/images/<i>.npy          (1, y, x) per trial (any y, x; (y, x) and (c, y, x) also read)
    data/responses/<i>.npy       (neuron,) per trial
    meta/trials/tiers.npy        (n,) 'train' / 'validation' / 'test' (/ 'final_test')
    meta/trials/frame_image_id.npy  (n,) image ids; repeats share one
    meta/neurons/unit_ids.npy    (neuron,)
    meta/neurons/area.npy        optional (neuron,)
    meta/neurons/cell_motor_coordinates.npy  optional (neuron, 3)
    data/behavior/<i>.npy        optional (3,) per trial: pupil dilation, its derivative,
                                 running speed -> dataset variable ``behavior``
                                 (trial, behavior_var)
    data/pupil_center/<i>.npy    optional (2,) per trial -> ``pupil_center`` (trial, xy)
    meta/trials/trial_idx.npy    optional (n,) -> ``trial_idx`` (trial)
    meta/statistics/...          optional; ignored on load (statistics are recomputed from
                                 the train tier), written on save for other tools

An optional folder, when present, must hold one file per trial. Sensorium's ``final_test``
tier is merged into ``test`` by default (``final_test="merge"``: both hold repeated
held-out images); ``"drop"`` removes those trials and ``"error"`` rejects them (the run
config's ``data.final_test``). Competition releases withhold those responses (stored as
zeros): a ``final_test`` tier whose responses are all zero is rejected with a hint to drop
it. The dataset's ``attrs["final_test"]`` records the choice.

A ``.zip`` is read in place (``zipfile`` + ``np.load``), the layout at its root or in one
folder inside it. Loading never writes anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from jaxsel._errors import DataError
from jaxsel.data._dataset import TIERS, make_dataset, validate
from jaxsel.data._static_read import (
    ANCHOR,
    as_strings,
    count_numbered,
    load_array,
    meta_vector,
    open_source,
    read_neuron_meta,
    read_trial_vars,
)

FINAL_TEST = ("merge", "drop", "error")
_FINAL_FIX = "data.final_test = '{0}' (API: final_test='{0}')"


def _read_trials(src, n: int, allow_pickle: bool) -> tuple[np.ndarray, np.ndarray]:
    images = responses = None
    for i in range(n):
        rel = f"data/images/{i}.npy"
        im = load_array(src, rel, "images", allow_pickle)
        if im.dtype.kind not in "biuf":
            raise DataError(
                f"image has dtype {im.dtype} (shape {im.shape})",
                file=src.label(rel),
                field="images",
                expected="a numeric (1, y, x) array of pixel values",
            )
        im = im[None] if im.ndim == 2 else im
        if im.ndim != 3:
            raise DataError(
                f"image has shape {im.shape}",
                file=src.label(rel),
                field="images",
                expected="(1, y, x)",
            )
        if not np.isfinite(im).all():
            raise DataError(
                f"{int((~np.isfinite(im)).sum())} non-finite pixel values",
                file=src.label(rel),
                field="images",
                expected="finite numbers",
            )
        if images is None:
            images = np.empty((n,) + im.shape, dtype=np.float32)
        elif im.shape != images.shape[1:]:
            raise DataError(
                f"image has shape {im.shape} but 0.npy has {images.shape[1:]}",
                file=src.label(rel),
                field="images",
                expected="all images of one shape",
            )
        images[i] = im
        rel = f"data/responses/{i}.npy"
        r = np.asarray(load_array(src, rel, "responses", allow_pickle))
        if responses is None:
            if r.ndim != 1:
                raise DataError(
                    f"responses have shape {r.shape}",
                    file=src.label(rel),
                    field="responses",
                    expected="(neuron,)",
                )
            responses = np.empty((n, r.shape[0]), dtype=np.float32)
        elif r.shape != responses.shape[1:]:
            raise DataError(
                f"responses have shape {r.shape} but 0.npy has {responses.shape[1:]}",
                file=src.label(rel),
                field="responses",
                expected="(neuron,) with the same neurons in every trial",
            )
        if r.dtype.kind not in "biuf" or not np.isfinite(r).all():
            bad = np.flatnonzero(~np.isfinite(r))[:5].tolist() if r.dtype.kind in "biuf" else "all"
            raise DataError(
                f"non-finite or non-numeric responses at neurons {bad}",
                file=src.label(rel),
                field="responses",
                expected="finite numbers",
            )
        responses[i] = r
    if images is None or responses is None:
        raise DataError(
            "no trials",
            file=src.label("data"),
            field="images",
            expected="at least one image and response file",
        )
    return images, responses


def _count_trials(src, allow_pickle: bool) -> tuple[np.ndarray, int]:
    """The tiers and the number of trials, checked against the image and response files."""
    tiers = as_strings(load_array(src, ANCHOR, "tiers", allow_pickle))
    n = count_numbered(src, "data/images", "images")
    n_resp = count_numbered(src, "data/responses", "responses")
    if n != n_resp:
        raise DataError(
            f"{n} image files but {n_resp} response files",
            file=src.label("data"),
            field="images/responses",
            expected="one image and one response file per trial",
        )
    if tiers.shape != (n,):
        raise DataError(
            f"has shape {tiers.shape} for {n} trials",
            file=src.label(ANCHOR),
            field="tiers",
            expected=f"({n},)",
        )
    return tiers, n


def load_static(
    path: str | Path,
    *,
    neurons=None,
    require_tiers: Sequence[str] = TIERS,
    require_repeats: bool = True,
    final_test: str = "merge",
    allow_pickle: bool = False,
    name: str | None = None,
) -> xr.Dataset:
    """Load a Sensorium / Lurz 2020 static folder (or its ``.zip``).

    Args:
      path: the folder, or a ``.zip`` holding it at its root or in one folder inside.
      neurons: keep only these neuron ids (``unit_ids`` values) or a boolean mask.
      require_tiers: tiers that must have at least one trial.
      require_repeats: the test tier must contain repeated images.
      final_test: what to do with Sensorium's ``final_test`` trials: ``"merge"`` (into the
        test tier; ``"test"`` is accepted as its old name), ``"drop"`` or ``"error"``.
      allow_pickle: allow pickled object arrays in the meta files (only for trusted data).
      name: dataset name (default: the folder or zip name).

    Returns:
      The validated dataset; ``area`` and ``cortex_x/y/z`` coords, ``behavior``,
      ``pupil_center`` and ``trial_idx`` variables when their files exist;
      ``attrs["final_test"]`` and ``attrs["n_final_test"]`` (trials of that tier found).

    Raises:
      DataError: naming the file and field (missing file or trial number, wrong shapes,
        non-finite responses, unknown tiers, missing tiers, test images without repeats).
    """
    final_test = "merge" if final_test == "test" else final_test
    if final_test not in FINAL_TEST:
        raise DataError(
            f"final_test={final_test!r}",
            field="final_test",
            expected="set data.final_test = 'merge', 'drop' or 'error' "
            "(API: final_test='merge' / 'drop' / 'error')",
        )
    path = Path(path)
    if not path.exists():
        raise DataError(
            "not found", file=path, field="path", expected="a static folder or its .zip"
        )
    with open_source(path) as src:
        tiers, n = _count_trials(src, allow_pickle)
        image_id = meta_vector(
            src, "meta/trials/frame_image_id.npy", "frame_image_id", n, "trial", allow_pickle
        )
        images, responses = _read_trials(src, n, allow_pickle)
        unit_ids, area, xyz = read_neuron_meta(src, responses.shape[1], allow_pickle)
        trial_vars = read_trial_vars(src, n, allow_pickle)
        tier_file = src.label(ANCHOR)
    keep = _tier_mask(tiers, responses, final_test, tier_file)
    n_final = int((tiers == "final_test").sum())
    tiers = np.where(tiers == "final_test", "test", tiers)
    idx = _neuron_index(neurons, unit_ids, src.label("meta/neurons/unit_ids.npy"))
    ds = make_dataset(
        images[keep],
        responses[keep][:, idx],
        image_id=image_id[keep],
        tier=tiers[keep],
        neuron_id=unit_ids[idx],
        area=None if area is None else area[idx],
        cortex_xyz=None if xyz is None else xyz[idx],
        name=name or path.stem,
        source=str(path),
        require_tiers=require_tiers,
        require_repeats=require_repeats,
    )
    if trial_vars:
        ds = ds.assign({k: v.isel(trial=np.flatnonzero(keep)) for k, v in trial_vars.items()})
        validate(ds, source=str(path), require_tiers=(), require_repeats=False)
    ds.attrs.update(final_test=final_test, n_final_test=n_final)
    return ds


def _tier_mask(tiers, responses, final_test, where) -> np.ndarray:
    unknown = sorted(set(tiers.tolist()) - set(TIERS) - {"final_test"})
    if unknown:
        raise DataError(
            f"unknown tier values {unknown}",
            file=where,
            field="tiers",
            expected=f"values in {list(TIERS)} (or 'final_test')",
        )
    is_final = tiers == "final_test"
    if not is_final.any():
        return np.ones(len(tiers), dtype=bool)
    if final_test == "error":
        raise DataError(
            f"{int(is_final.sum())} trials in tier 'final_test'",
            file=where,
            field="tiers",
            expected=f"set {_FINAL_FIX.format('merge')} to test on them or "
            f"{_FINAL_FIX.format('drop')} to leave them out",
        )
    if final_test == "drop":
        return ~is_final
    if not responses[is_final].any():
        raise DataError(
            "all responses of the 'final_test' trials are zero (withheld in competition releases)",
            file=where,
            field="tiers",
            expected=f"{_FINAL_FIX.format('drop')} for such data",
        )
    return np.ones(len(tiers), dtype=bool)


def _neuron_index(neurons, unit_ids, where) -> np.ndarray:
    if neurons is None:
        return np.arange(len(unit_ids))
    neurons = np.asarray(neurons)
    if neurons.dtype == bool:
        if neurons.shape != unit_ids.shape:
            raise DataError(
                f"neuron mask has shape {neurons.shape}",
                file=where,
                field="neurons",
                expected=f"{unit_ids.shape}",
            )
        return np.flatnonzero(neurons)
    pos = {v: i for i, v in enumerate(unit_ids.tolist())}
    missing = [v for v in neurons.tolist() if v not in pos]
    if missing:
        raise DataError(
            f"unknown neuron ids {missing[:5]}",
            file=where,
            field="unit_ids",
            expected=f"ids among the {len(unit_ids)} unit_ids (API: load_static(neurons=...))",
        )
    return np.array([pos[v] for v in neurons.tolist()], dtype=int)
