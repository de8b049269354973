"""Allen Brain Observatory (Neuropixels, Visual Coding) natural scenes from an NWB file.

Read with h5py only (no pynwb). What is used from the file:

* ``units/id``, ragged ``units/spike_times`` + ``units/spike_times_index`` (end offsets);
* the unit's brain area: a ``units/ecephys_structure_acronym`` column, or the electrodes
  table ``general/extracellular_ephys/electrodes`` (column ``location`` or
  ``ecephys_structure_acronym``) reached through ``units/electrodes`` (row indices, ragged
  with ``units/electrodes_index``: the first electrode counts) or ``units/peak_channel_id``
  (matched to the electrodes' ``id``);
* QC columns on ``units`` (``isi_violations``, ``amplitude_cutoff``, ``presence_ratio``,
  ``snr``, ``quality``, ...);
* ``intervals/<stimulus>_presentations/{start_time, stop_time, frame}`` (``stimulus`` =
  ``natural_scenes`` by default); frame -1 is the blank and is dropped.

The 118 scenes are not in the NWB file: pass them as an array or folder (frame ``k`` is the
``k``-th image, folders in natural name order). Responses are spike counts in
``[start + t0, start + t1]`` (both ends included). Tier rule: the distinct frames (scene
ids) are permuted with ``seed`` and split by ``tiers`` fractions (default 70 % train, 10 %
validation, 20 % test); all presentations of one scene share its tier, so every tier has
~50 repeats per scene and the test tier is repeated as the reliability measures need.

The scenes (918 x 1174, aspect 0.78) are centre-cropped to the aspect of ``image_size``
before resizing by default (``crop="center"``; ``"none"`` stretches them); the choice is
kept in the dataset's ``attrs`` (``crop``, ``qc``, ``stimulus``, ``split_seed``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from jaxsel._errors import DataError
from jaxsel.data._allen_units import (
    ELECTRODES,
    h5_get,
    h5_read,
    qc_mask,
    qc_rules,
    unit_areas,
)
from jaxsel.data._arrays import split_tiers
from jaxsel.data._dataset import TIERS, make_dataset
from jaxsel.data._image_folder import check_crop, load_images


def count_spikes(spike_times: Sequence[np.ndarray], starts, stops) -> np.ndarray:
    """Spike counts per (window, unit) in closed windows ``[start, stop]``.

    Args:
      spike_times: one 1-D array of spike times per unit (sorted here if needed).
      starts, stops: (window,) window bounds.

    Returns:
      int64 array (window, unit).
    """
    starts = np.asarray(starts, dtype=np.float64)
    stops = np.asarray(stops, dtype=np.float64)
    out = np.empty((starts.shape[0], len(spike_times)), dtype=np.int64)
    for u, s in enumerate(spike_times):
        s = np.asarray(s, dtype=np.float64)
        if s.size > 1 and (np.diff(s) < 0).any():
            s = np.sort(s)
        out[:, u] = np.searchsorted(s, stops, "right") - np.searchsorted(s, starts, "left")
    return out


def _tables(f) -> list[str]:
    names = list(f["intervals"]) if "intervals" in f else []
    return [n[: -len("_presentations")] for n in names if n.endswith("_presentations")]


def _presentations(f, stimulus: str, where) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    group = f"intervals/{stimulus}_presentations"
    h5_get(
        f,
        group,
        where,
        expected=f"the '{stimulus}' stimulus table (is this a Brain Observatory session "
        "with that stimulus? set data.stimulus (API: stimulus=) to the table's name "
        f"without '_presentations': {_tables(f)})",
    )
    cols = {}
    for c in ("start_time", "stop_time", "frame"):
        cols[c] = h5_read(h5_get(f, f"{group}/{c}", where))
    try:
        frame = cols["frame"].astype(np.float64)
    except ValueError:
        raise DataError(
            "frame values are not numbers", file=where, field=f"{group}/frame"
        ) from None
    start = cols["start_time"].astype(np.float64)
    stop = cols["stop_time"].astype(np.float64)
    if not (start.shape == stop.shape == frame.shape) or start.ndim != 1:
        raise DataError(
            f"columns have shapes {start.shape}, {stop.shape}, {frame.shape}",
            file=where,
            field=group,
            expected="equal-length columns",
        )
    if not (np.isfinite(frame).all() and (frame == np.round(frame)).all()):
        raise DataError("frame values are not integers", file=where, field=f"{group}/frame")
    frame = frame.astype(np.int64)
    if (frame < -1).any():
        raise DataError(
            f"frame value {frame.min()}",
            file=where,
            field=f"{group}/frame",
            expected="scene indices >= 0, or -1 for the blank",
        )
    keep = frame >= 0
    if not keep.any():
        raise DataError("only blank presentations", file=where, field=f"{group}/frame")
    return start[keep], stop[keep], frame[keep]


def load_allen_nwb(
    nwb_path: str | Path,
    images,
    *,
    area: str | Sequence[str] | None = "VISam",
    window: tuple[float, float] | None = (0.05, 0.25),
    qc: Mapping[str, Any] | None = None,
    tiers: Sequence[float] = (0.7, 0.1, 0.2),
    seed: int = 0,
    image_size: Sequence[int] | None = (36, 64),
    crop: str = "center",
    stimulus: str = "natural_scenes",
    require_tiers: Sequence[str] | None = None,
    require_repeats: bool = True,
    name: str | None = None,
) -> xr.Dataset:
    """Spike counts of selected units to the natural scenes of an Allen Neuropixels session.

    Args:
      nwb_path: the session's NWB (HDF5) file.
      images: the scenes, (n_scenes, y, x) array or a folder/file for
        :func:`jaxsel.data.load_images`; frame ``k`` is image ``k``.
      area: keep units in this area (or any of these areas); None keeps all units.
      window: (t0, t1) seconds after each onset; None counts in [start_time, stop_time].
      qc: unit filters ``{column: (operator, threshold)}`` (or the short forms of
        :func:`qc_rules`); None = :data:`ALLEN_QC` (isi_violations <= 0.5,
        amplitude_cutoff <= 0.1, presence_ratio >= 0.9), ``{}`` = none. Units with NaN in
        a QC column fail it. A rule on a missing column is an error.
      tiers: (train, validation, test) fractions of the scene ids (see the module notes).
      seed: seed of the tier split.
      image_size: (height, width) images are resized to; None keeps their size.
      crop: ``"center"`` crops the scenes to the aspect of ``image_size`` before resizing;
        ``"none"`` stretches them.
      stimulus: presentation table ``intervals/<stimulus>_presentations``.
      require_tiers: tiers that must have trials (default: those with a positive fraction).
      require_repeats: the test tier must contain repeated scenes.
      name: dataset name (default: the file's stem).

    Returns:
      The validated dataset (``counts=True``): trial per non-blank presentation, neuron per
      selected unit (``neuron_id`` = unit id, ``area`` coord when known).

    Raises:
      DataError: naming the file and field (missing table or column, no units left, ...).
    """
    import h5py

    where = str(nwb_path)
    nwb_path = Path(nwb_path)
    if window is not None:
        t0, t1 = (float(w) for w in window)
        if not t1 > t0:
            raise DataError(
                f"window {window}",
                file=where,
                field="window",
                expected="(t0, t1) with t1 > t0 in data.window (API: window=); a reversed "
                "window would give negative counts",
            )
    if not nwb_path.is_file():
        raise DataError("file not found", file=where, field="nwb")
    qc = qc_rules(qc)
    check_crop(crop, where)
    if not stimulus or "/" in stimulus:
        raise DataError(
            f"stimulus={stimulus!r}",
            file=where,
            field="stimulus",
            expected="a stimulus table name such as 'natural_scenes' in data.stimulus "
            "(API: stimulus=)",
        )
    areas = None if area is None else ([area] if isinstance(area, str) else list(area))
    try:
        f = h5py.File(nwb_path, "r")
    except OSError as err:
        raise DataError(f"not a readable HDF5/NWB file ({err})", file=where, field="nwb") from None
    with f:
        unit_id = h5_read(h5_get(f, "units/id", where))
        n_units = unit_id.shape[0]
        if n_units == 0:  # before the QC columns, which an empty table may lack
            raise DataError(
                "the units table holds 0 units (no spike-sorted neurons in this session)",
                file=where,
                field="units/id",
                expected="an NWB file with sorted units: choose another session in "
                "data.path (API: the nwb_path argument)",
            )
        times = h5_get(f, "units/spike_times", where)
        ends = np.asarray(h5_get(f, "units/spike_times_index", where)[()], dtype=np.int64)
        if (
            ends.shape != (n_units,)
            or (np.diff(ends) < 0).any()
            or ends.max(initial=0) > times.shape[0]
        ):
            raise DataError(
                f"index of shape {ends.shape} (last {ends[-1:]}) for {n_units} "
                f"units and {times.shape[0]} spikes",
                file=where,
                field="units/spike_times_index",
                expected="non-decreasing end offsets, one per unit",
            )
        unit_area = unit_areas(f, n_units, where)
        keep = qc_mask(f, qc, n_units, where)
        n_qc = int(keep.sum())
        if areas is not None:
            if unit_area is None:
                raise DataError(
                    "no brain area for the units",
                    file=where,
                    field="units/ecephys_structure_acronym",
                    expected="an area column on units, or units/electrodes "
                    f"with {ELECTRODES}/location",
                )
            keep &= np.isin(unit_area, areas)
        sel = np.flatnonzero(keep)
        if sel.size == 0:
            raise DataError(
                f"no unit left: {n_qc} of {n_units} pass QC {qc}, of those none in area {areas}",
                file=where,
                field="units",
                expected="at least one unit: check data.area and data.qc (API: area=, qc=)",
            )
        starts = np.concatenate([[0], ends[:-1]])
        spikes = [np.asarray(times[starts[u] : ends[u]], dtype=np.float64) for u in sel]
        start, stop, frame = _presentations(f, stimulus, where)
    if window is None:
        lo, hi = start, stop
    else:
        lo, hi = start + t0, start + t1
    counts = count_spikes(spikes, lo, hi)
    scenes = load_images(images, size=image_size, crop=crop)
    if scenes.shape[0] <= frame.max():
        raise DataError(
            f"{scenes.shape[0]} images but frames up to {frame.max()}",
            file=images if isinstance(images, (str, Path)) else where,
            field="images",
            expected=f"at least {frame.max() + 1} scene images",
        )
    tier = split_tiers(frame, tiers, seed)  # validates the fractions first
    if require_tiers is None:
        require_tiers = tuple(t for t, fr in zip(TIERS, tiers, strict=True) if fr > 0)
    ds = make_dataset(
        scenes[frame],
        counts,
        image_id=frame,
        tier=tier,
        neuron_id=unit_id[sel],
        area=None if unit_area is None else unit_area[sel],
        name=name or nwb_path.stem,
        source=where,
        counts=True,
        require_tiers=require_tiers,
        require_repeats=require_repeats,
    )
    ds.attrs.update(
        crop=crop,
        qc=json.dumps({k: list(v) for k, v in qc.items()}),
        stimulus=stimulus,
        split_seed=int(seed),
    )
    return ds
