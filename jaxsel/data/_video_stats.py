"""Train-tier statistics of a video dataset, accumulated one trial at a time (so they can be
computed while streaming)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import xarray as xr

_TRACE_DIMS = {"behavior": "behavior_var", "pupil_center": "xy"}


def is_lazy(da: xr.DataArray) -> bool:
    return not isinstance(da.variable._data, np.ndarray)


class StatsAccumulator:
    """Running sums (float64) of real frames, one trial at a time, for the train statistics."""

    def __init__(self):
        self.sums: dict[str, list] = {}

    def add(self, name: str, x: np.ndarray, axis: tuple[int, ...]):
        """Add the real frames ``x`` of one trial, reducing over ``axis``."""
        x = x.astype(np.float64)
        s = [x.sum(axis), (x**2).sum(axis), float(np.prod([x.shape[a] for a in axis]))]
        if name in self.sums:
            s = [a + b for a, b in zip(self.sums[name], s, strict=True)]
        self.sums[name] = s

    def result(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) as float32."""
        s1, s2, n = self.sums[name]
        n = max(n, 1.0)
        mean = s1 / n
        std = np.sqrt(np.maximum(s2 / n - mean**2, 0.0))
        return mean.astype(np.float32), std.astype(np.float32)


def accumulate_trial(acc: StatsAccumulator, n: int, video, response, behavior=None, pupil=None):
    """Add one trial's first ``n`` frames (video (C, T, y, x), traces (T, k))."""
    acc.add("video", video[:, :n], (1,))
    acc.add("response", response[:n], (0,))
    if behavior is not None:
        acc.add("behavior", behavior[:n], (0,))
    if pupil is not None:
        acc.add("pupil_center", pupil[:n], (0,))


def statistics_vars(acc: StatsAccumulator, has: Iterable[str]) -> dict:
    """The statistics variables (dims as in the layout) from an accumulator."""
    vm, vs = acc.result("video")
    rm, rs = acc.result("response")
    out = {
        "video_mean": (("channel", "y", "x"), vm),
        "video_std": (("channel", "y", "x"), vs),
        "response_mean": (("neuron",), rm),
        "response_std": (("neuron",), rs),
    }
    for name in has:
        m, s = acc.result(name)
        out[f"{name}_mean"] = ((_TRACE_DIMS[name],), m)
        out[f"{name}_std"] = ((_TRACE_DIMS[name],), s)
    return out


def with_video_statistics(ds: xr.Dataset, tier: str = "train") -> xr.Dataset:
    """``ds`` with per-pixel video and per-neuron response statistics over one tier's real
    frames (all trials when the tier is empty). Reads one trial at a time (streams)."""
    idx = np.flatnonzero(ds["tier"].values == tier)
    idx = idx if len(idx) else np.arange(ds.sizes["trial"])
    acc = StatsAccumulator()
    has = [k for k in _TRACE_DIMS if k in ds.data_vars]
    n_frames = ds["n_frames"].values
    for i in idx.tolist():
        n = int(n_frames[i])
        traces = {k: np.asarray(ds[k].variable[i].values) for k in has}
        accumulate_trial(
            acc,
            n,
            np.asarray(ds["videos"].variable[i].values),
            np.asarray(ds["responses"].variable[i].values),
            traces.get("behavior"),
            traces.get("pupil_center"),
        )
    return ds.assign(statistics_vars(acc, has))
