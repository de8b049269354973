"""Units of an Allen Brain Observatory NWB file: QC filters, brain areas, HDF5 reading.

Read with h5py only. The QC rules (:func:`qc_rules`, :data:`ALLEN_QC`) filter on columns of
the ``units`` table; a unit's brain area comes from ``units/ecephys_structure_acronym`` or
from the electrodes table (see :mod:`jaxsel.data._allen_nwb`).
"""

from __future__ import annotations

import contextlib
import operator
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxsel._errors import DataError

#: AllenSDK's default unit filters (inclusive bounds, as in ``EcephysSession``).
ALLEN_QC: dict[str, tuple[str, float | str]] = {
    "isi_violations": ("<=", 0.5),
    "amplitude_cutoff": ("<=", 0.1),
    "presence_ratio": (">=", 0.9),
}
_OPS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
ELECTRODES = "general/extracellular_ephys/electrodes"
#: The direction of a unit filter given as a bare threshold (``{"snr": 1.0}``): columns
#: where larger is better keep units ``>=`` the threshold, the others ``<=``.
QC_DIRECTIONS: dict[str, str] = {
    "isi_violations": "<=",
    "amplitude_cutoff": "<=",
    "presence_ratio": ">=",
    "snr": ">=",
    "firing_rate": ">=",
    "isolation_distance": ">=",
    "d_prime": ">=",
    "nn_hit_rate": ">=",
    "silhouette_score": ">=",
    "l_ratio": "<=",
    "nn_miss_rate": "<=",
    "max_drift": "<=",
    "cumulative_drift": "<=",
}
_QC_FIX = "data.qc (API: qc=)"


def qc_rules(qc: Mapping | None) -> dict[str, tuple[str, float | str]]:
    """Unit filters in the form :func:`load_allen_nwb` applies: ``{column: (op, threshold)}``.

    Each value may be ``(op, threshold)`` (a 2-list in TOML), a string ``"op threshold"``
    (``">= 0.9"``) or a bare threshold for a column of :data:`QC_DIRECTIONS` (``{"snr":
    1.0}`` means ``snr >= 1``). None gives :data:`ALLEN_QC`; ``{}`` no filter.

    Raises:
      DataError: an unknown operator, a bare threshold on a column of unknown direction or a
        value of another form (the message names ``data.qc`` and ``qc=``).
    """
    if qc is None:
        return dict(ALLEN_QC)
    if not isinstance(qc, Mapping):
        raise DataError(
            f"qc={qc!r}",
            field="qc",
            expected=f"a table column -> threshold in {_QC_FIX}, e.g. {{isi_violations = 0.5}}",
        )
    out: dict[str, tuple[str, float | str]] = {}
    for column, rule in qc.items():
        op: object
        if isinstance(rule, str):
            m = re.fullmatch(r"\s*(<=|>=|==|!=|<|>)\s*(\S.*?)\s*", rule)
            op, threshold = (m.group(1), m.group(2)) if m else (None, rule)
            if m and re.fullmatch(r"[-+0-9.eE]+", threshold):
                with contextlib.suppress(ValueError):
                    threshold = float(threshold)
        elif isinstance(rule, (int, float)) and not isinstance(rule, bool):
            if column not in QC_DIRECTIONS:
                raise DataError(
                    f"bare threshold {rule!r} for '{column}', whose direction is unknown",
                    field=f"qc.{column}",
                    expected=f"[operator, threshold] in {_QC_FIX}, e.g. "
                    f"{column} = ['>=', {rule!r}] (bare thresholds: {sorted(QC_DIRECTIONS)})",
                )
            op, threshold = QC_DIRECTIONS[column], float(rule)
        elif isinstance(rule, (list, tuple)) and len(rule) == 2:
            op, threshold = rule
        else:
            op, threshold = None, rule
        if (
            op not in _OPS
            or isinstance(threshold, bool)
            or not isinstance(threshold, (int, float, str))
        ):
            raise DataError(
                f"QC rule {rule!r} for '{column}'",
                field=f"qc.{column}",
                expected=f'a threshold, "op threshold" or [op, threshold] in {_QC_FIX}, '
                f"op in {list(_OPS)}",
            )
        out[str(column)] = (str(op), threshold)
    return out


def h5_get(f, name: str, where, expected: str | None = None) -> Any:
    """The HDF5 object (dataset or group) at ``name``, or a DataError naming it."""
    if name not in f:
        raise DataError("missing", file=where, field=name, expected=expected)
    return f[name]


def h5_read(dset) -> np.ndarray:
    import h5py

    if h5py.check_string_dtype(dset.dtype) is not None:
        return np.asarray(dset.asstr()[()], dtype=str)
    a = dset[()]
    return (
        a.astype(str)
        if getattr(a, "dtype", None) is not None and a.dtype.kind in "SO"
        else np.asarray(a)
    )


def _area_from_electrodes(f, n_units: int, where) -> np.ndarray | None:
    if ELECTRODES not in f:
        return None
    el = f[ELECTRODES]
    col = next((c for c in ("location", "ecephys_structure_acronym") if c in el), None)
    if col is None:
        return None
    locations = h5_read(el[col])
    if "units/electrodes" in f:
        rows = np.asarray(f["units/electrodes"][()], dtype=np.int64)
        if "units/electrodes_index" in f:
            ends = np.asarray(f["units/electrodes_index"][()], dtype=np.int64)
            if ends.shape != (n_units,) or (np.diff(ends) < 1).any() or ends[0] < 1:
                raise DataError(
                    "every unit needs at least one electrode",
                    file=where,
                    field="units/electrodes_index",
                )
            rows = rows[np.concatenate([[0], ends[:-1]])]
    elif "units/peak_channel_id" in f and "id" in el:
        channel = np.asarray(f["units/peak_channel_id"][()], dtype=np.int64)
        ids = np.asarray(el["id"][()], dtype=np.int64)
        pos = {v: i for i, v in enumerate(ids.tolist())}
        unknown = [c for c in channel.tolist() if c not in pos]
        if unknown:
            raise DataError(
                f"peak channels {unknown[:5]} not in the electrodes table",
                file=where,
                field="units/peak_channel_id",
            )
        rows = np.array([pos[c] for c in channel.tolist()], dtype=np.int64)
    else:
        return None
    if rows.shape != (n_units,) or rows.min(initial=0) < 0 or rows.max(initial=0) >= len(locations):
        raise DataError(
            f"electrode rows of shape {rows.shape} out of range for {len(locations)} electrodes",
            file=where,
            field="units/electrodes",
        )
    return locations[rows]


def unit_areas(f, n_units: int, where) -> np.ndarray | None:
    if "units/ecephys_structure_acronym" in f:
        area = h5_read(f["units/ecephys_structure_acronym"])
        if area.shape != (n_units,):
            raise DataError(
                f"has shape {area.shape}",
                file=where,
                field="units/ecephys_structure_acronym",
                expected=f"({n_units},)",
            )
        return area
    return _area_from_electrodes(f, n_units, where)


def qc_mask(f, qc: Mapping, n_units: int, where) -> np.ndarray:
    keep = np.ones(n_units, dtype=bool)
    for column, (op, threshold) in qc_rules(qc).items():
        fn = _OPS[op]
        values = h5_read(
            h5_get(
                f,
                f"units/{column}",
                where,
                expected=f"a QC column for the rule {column} {op} {threshold} "
                f"(or drop it from {_QC_FIX})",
            )
        )
        if values.shape != (n_units,):
            raise DataError(
                f"has shape {values.shape}",
                file=where,
                field=f"units/{column}",
                expected=f"({n_units},)",
            )
        try:
            if values.dtype.kind in "fiub":
                threshold = float(threshold)
            with np.errstate(invalid="ignore"):
                keep &= np.asarray(fn(values, threshold), dtype=bool)
        except (TypeError, ValueError):
            raise DataError(
                f"cannot compare values of dtype {values.dtype} with {threshold!r}",
                file=where,
                field=f"units/{column}",
                expected=f"a threshold of the column's type in {_QC_FIX}",
            ) from None
    return keep
