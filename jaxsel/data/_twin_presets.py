"""Named presets of the digital twin: field values of :class:`~jaxsel.data.TwinConfig`.

* ``clean``: the defaults (the demo's twin): spike counts with a heavy tail, far more
  reliable than recorded neurons;
* ``sensorium``: calcium-like responses (zero-inflated gamma) and the trial counts of one
  Sensorium 2022 mouse (~5,000 images shown once, 100 test images x 10 repeats), calibrated
  so that the true rates themselves reach a median single-trial test correlation of
  0.30-0.40 over responsive neurons (the SOTA CNN on the real data: 0.286);
* ``allen``: spike counts in a 250 ms window of an Allen Brain Observatory Neuropixels
  natural-scenes session: 118 images x 50 repeats, a few spikes per presentation and a
  bounded tail.

The calibration (statistics, targets, reached values per seed) is in docs/twin-presets.md.
"""

from __future__ import annotations

import difflib

from jaxsel._errors import ConfigError

PRESETS: dict[str, dict] = {
    "clean": {},
    "sensorium": {
        "n_train": 4500,
        "n_validation": 500,
        "n_test": 100,
        "test_repeats": 10,
        "observation": "zig",
        "baseline_fraction": 0.4,
        "saturation_range": (0.1, 0.5),
        "zig_gate": 2.5,
        "zig_shape": 1.0,
    },
    "allen": {
        # 118 scenes, each shown 50 times; split into tiers like the 'allen' data source with
        # its default data.tiers = (0.7, 0.1, 0.2) (largest-remainder rounding: 83/12/23)
        "n_train": 83,
        "n_validation": 12,
        "n_test": 23,
        "train_repeats": 50,
        "test_repeats": 50,
        "mean_rate": 1.0,
        "rate_spread": 0.6,
        "max_mean_rate": 3.0,
        "baseline_fraction": 0.6,
        "saturation_range": (0.02, 0.1),
        "overdispersed_fraction": 0.4,
        "dispersion": 8.0,
    },
}
"""Preset name -> the :class:`~jaxsel.data.TwinConfig` fields it sets (others keep their
defaults)."""


def check_preset(name, key: str = "preset") -> str:
    """``name`` if it is a preset, else a ConfigError naming the closest and the valid ones."""
    if isinstance(name, str) and name in PRESETS:
        return name
    close = difflib.get_close_matches(str(name), list(PRESETS), n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise ConfigError(
        f"{key} = {name!r} is not a twin preset ({hint}valid presets: {', '.join(PRESETS)})"
    )


__all__ = ["PRESETS", "check_preset"]
