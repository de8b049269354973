"""The run configuration's schema: one frozen dataclass per TOML section.

Every key has a default, documented in the ``doc`` metadata of its field (printed by
``jaxsel run --defaults``), so an empty file is a valid config (the digital-twin demo).
Sections: ``[run]``, ``[data]`` (with ``[data.twin]`` = :class:`jaxsel.data.TwinConfig` plus
``n_sessions``; multi-session runs: ``data.source = "sessions"`` or ``n_sessions`` > 1),
``[select]`` (= :class:`jaxsel.measures.SelectionRule`), ``[train]``, ``[evaluate]``,
``[information]``, ``[mei]``, ``[gabor]``, ``[sweep]``, ``[report]``.
Reading and validating: :func:`jaxsel.pipeline.load_config`,
:func:`jaxsel.pipeline.config_from_dict`; writing TOML: :func:`jaxsel.pipeline.to_toml`,
:func:`jaxsel.pipeline.defaults_toml`.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jaxsel._errors import ConfigError, DataError
from jaxsel.data import TWIN_PRESETS, qc_rules
from jaxsel.measures import SelectionRule
from jaxsel.pipeline._session_config import TwinSection


def _f[T](default: T, doc: str, **kw: Any) -> T:
    """A dataclass field with a default and its documentation (typed as its default, as
    :func:`dataclasses.field` is)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"doc": doc}, **kw)
    return field(default=default, metadata={"doc": doc}, **kw)


DATA_SOURCES = ("twin", "static", "arrays", "table", "allen", "sessions")
CROPS = ("center", "none")
FINAL_TEST = ("merge", "drop", "error")
MEI_SAMPLES = ("reliable", "random")
STAGES = (
    "data",
    "select",
    "train",
    "evaluate",
    "information",
    "mei",
    "gabor",
    "figures",
    "report",
)


@dataclass(frozen=True)
class RunSection:
    """``[run]``: where the run goes and what it runs."""

    name: str = _f("demo", "run name; the run folder is runs/<name> unless 'out' is set")
    out: str = _f("", "run folder (default runs/<name>, relative to the working directory)")
    seed: int = _f(
        0,
        "seed of model init, batch order and MEI starts, and of the twin's simulation (the tier "
        "split of allen/table data comes from data.split_seed)",
    )
    stages: tuple[str, ...] = _f(STAGES, f"stages to run, a subset of {list(STAGES)}")
    progress: bool = _f(True, "show progress bars")


@dataclass(frozen=True)
class DataSection:
    """``[data]``: the recordings (or the digital twin)."""

    source: str = _f(
        "twin",
        f"one of {list(DATA_SOURCES)}: 'twin' simulates the digital "
        "twin; 'static' a Sensorium/Lurz static folder or .zip; 'arrays' "
        "an .npz/.npy folder; 'table' a CSV of responses + image folder; "
        "'allen' an Allen Neuropixels NWB + scene image folder; 'sessions' several "
        "static folders (data.path: their parent folder, or data.sessions)",
    )
    path: str = _f("", "the data file or folder (static folder/zip, .npz, CSV, NWB)")
    sessions: tuple[str, ...] = _f(
        (), "'sessions': the static session folders/zips (instead of their parent data.path)"
    )
    images: str = _f("", "image folder or array ('allen': the 118 scenes; 'table': images)")
    area: str = _f("VISam", "'allen': keep units of this brain area ('' = all)")
    window: tuple[float, float] = _f(
        (0.05, 0.25), "'allen': spike-count window (s) after each onset"
    )
    image_size: tuple[int, int] = _f((36, 64), "'allen'/'table': resize images to (y, x)")
    crop: str = _f(
        "center",
        "'allen'/'table': 'center' crops each image to the aspect of image_size before "
        "resizing (Allen's 918x1174 scenes lose rows top and bottom); 'none' stretches it",
    )
    tiers: tuple[float, float, float] = _f(
        (0.7, 0.1, 0.2), "'allen'/'table': train, validation, test fractions of the image ids"
    )
    split_seed: int = _f(
        0,
        "'allen'/'table': seed of the tier split (which images are test); independent of "
        "run.seed, so changing the training seed keeps the test images",
    )
    qc: dict = _f(
        {"isi_violations": 0.5, "amplitude_cutoff": 0.1, "presence_ratio": 0.9},
        "'allen': unit filters, column = threshold (direction known for isi_violations, "
        "amplitude_cutoff, presence_ratio, snr, firing_rate, ...), or column = "
        "['>=', value] / '>= value'; {} keeps every unit",
    )
    stimulus: str = _f(
        "natural_scenes", "'allen': the stimulus table intervals/<stimulus>_presentations"
    )
    final_test: str = _f(
        "merge",
        "'static': Sensorium 'final_test' trials: 'merge' into the test tier, 'drop' them "
        "or 'error'",
    )
    require_repeats: bool = _f(
        True,
        "'static'/'arrays'/'allen': the test tier must hold repeated images (needed by "
        "the oracle correlation and FEVE of the select and evaluate stages)",
    )
    allow_pickle: bool = _f(
        False,
        "'static': load meta files that hold pickled Python objects (older releases store "
        "strings that way); a pickle can run code, so only for data you trust",
    )
    hint: str = _f("", "where to get the data (printed when the path is missing)")
    twin: TwinSection = _f(
        TwinSection(),
        "'twin': the simulated population and experiment (jaxsel.data.TwinConfig fields "
        f"and n_sessions); preset = one of {list(TWIN_PRESETS)} sets its fields (the other "
        "keys of [data.twin] change them; docs/twin-presets.md)",
    )

    def __post_init__(self):
        for key, value, choices in (
            ("crop", self.crop, CROPS),
            ("final_test", self.final_test, FINAL_TEST),
        ):
            if value not in choices:
                raise ConfigError(f"key 'data.{key}' must be one of {list(choices)}, got {value!r}")
        if not self.stimulus or "/" in self.stimulus:
            raise ConfigError(
                f"key 'data.stimulus' must name a stimulus table such as 'natural_scenes', "
                f"got {self.stimulus!r}"
            )
        try:
            qc_rules(self.qc)
        except DataError as err:
            text = str(err).split(": ", 1)[-1]  # without the "field '...'" prefix
            raise ConfigError(f"key 'data.{err.field}': {text}") from None


def expand_twin_preset(data: dict) -> dict:
    """A parsed run config with ``[data.twin] preset = NAME`` expanded: the preset's fields
    (:data:`jaxsel.data.TWIN_PRESETS`) first, the table's own keys on top.

    Raises:
      ConfigError: an unknown preset (naming the closest and the valid ones).
    """
    section = data.get("data") if isinstance(data, dict) else None
    if not isinstance(section, dict):
        return data
    twin = section.get("twin")
    if not isinstance(twin, dict) or "preset" not in twin:
        return data
    name = twin["preset"]
    if not isinstance(name, str) or name not in TWIN_PRESETS:
        close = difflib.get_close_matches(str(name), list(TWIN_PRESETS), n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(
            f"key 'data.twin.preset': unknown twin preset {name!r} ({hint}valid presets: "
            f"{', '.join(TWIN_PRESETS)})"
        )
    twin = {**TWIN_PRESETS[name], **twin}
    return {**data, "data": {**section, "twin": twin}}


@dataclass(frozen=True)
class TrainSection:
    """``[train]``: the models fitted (named configs of :data:`jaxsel.train.NAMED_CONFIGS`)."""

    models: tuple[str, ...] = _f(
        ("ln", "small"),
        "named configs to fit (jaxsel.train.NAMED_CONFIGS); the first is the LN "
        "baseline, the last the CNN used in silico",
    )
    overrides: dict = _f(
        {}, "fields of TrainConfig / ModelConfig changed for every model, e.g. {max_epochs = 20}"
    )
    per_model: dict = _f({}, "per-model overrides, e.g. {small = {hidden_channels = 8}}")
    ensemble: int = _f(
        0,
        "0 = off; K >= 2: also train K members of the last model (the CNN) with "
        "jaxsel.fit_many, seeds run.seed .. run.seed + K - 1 (member 0 has the single model's "
        "seed), and compute MEIs and Gabors on their ensemble-mean response as well; "
        "metrics.json reports ensemble_* next to the single model's numbers",
    )

    def __post_init__(self):
        k = self.ensemble
        if isinstance(k, bool) or not isinstance(k, int) or k < 0 or k == 1:
            raise ConfigError(
                f"key 'train.ensemble' must be 0 (off) or a number of members >= 2, got {k!r}"
            )


@dataclass(frozen=True)
class EvaluateSection:
    """``[evaluate]``: model evaluation on the test tier."""

    fev_threshold: float = _f(0.15, "report FEVE for neurons with FEV at least this")


@dataclass(frozen=True)
class InformationSection:
    """``[information]``: single-neuron information of the CNN vs the twin's truth.

    The labelled set is :func:`jaxsel.data.oriented_patch_set` (patch orientation theta vs
    theta + 90 deg); the stage is not applicable to recorded data (no truth)."""

    n_per_class: int = _f(150, "images per label of the oriented-patch set")
    theta_deg: float = _f(
        0.0, "label-1 patch orientation in degrees (wave-vector direction; label 0: +90)"
    )
    aperture_fraction: float = _f(
        0.15, "patch aperture sd as a fraction of the image height (the patch sits at the centre)"
    )
    sf: tuple[float, float] = _f((0.12, 0.25), "patch spatial-frequency range, cycles/pixel")
    contrast: tuple[float, float] = _f((0.4, 0.9), "patch peak-contrast range (1 = white)")
    threshold: float = _f(2.0 / 3.0, "a neuron is informative if I >= this many bits (<= 1)")
    input_noise: tuple[float, ...] = _f(
        (0.0, 30.0, 60.0),
        "Gaussian pixel-noise sd (raw grey levels) of the robustness analysis; [] skips it",
    )
    untrained: bool = _f(
        True, "also measure the CNN's config initialised but not trained (before vs after)"
    )

    def __post_init__(self):
        def bad(key: str, what: str, value) -> ConfigError:
            return ConfigError(f"key 'information.{key}' must be {what}, got {value!r}")

        if isinstance(self.n_per_class, bool) or self.n_per_class < 2:
            raise bad("n_per_class", "an integer >= 2", self.n_per_class)
        if not math.isfinite(self.theta_deg):
            raise bad("theta_deg", "a finite angle in degrees", self.theta_deg)
        if not (math.isfinite(self.aperture_fraction) and 0 < self.aperture_fraction <= 1):
            raise bad("aperture_fraction", "in (0, 1]", self.aperture_fraction)
        for key, lo, hi in (("sf", 1e-3, 0.5), ("contrast", 0.0, 1.0)):
            v = tuple(getattr(self, key))
            if len(v) != 2 or not (lo <= v[0] <= v[1] <= hi):
                raise bad(key, f"[low, high] with {lo} <= low <= high <= {hi}", list(v))
        if not (math.isfinite(self.threshold) and 0 < self.threshold <= 1):
            raise bad("threshold", "in (0, 1] bit (a binary label carries <= 1)", self.threshold)
        if any(not math.isfinite(s) or s < 0 for s in self.input_noise):
            raise bad("input_noise", "a list of finite pixel sds >= 0", list(self.input_noise))


@dataclass(frozen=True)
class MeiSection:
    """``[mei]``: most exciting inputs (model and, on the twin, truth), gradient RFs."""

    recipe: str = _f(
        "norm",
        "MEI recipe of jaxsel.insilico.recipes: 'norm' (fixed L2 "
        "budget of the contrast image), 'fens' (fixed mean/std) or "
        "'seed002'",
    )
    norm_fraction: float = _f(
        1.0,
        "'norm': budget as a fraction of the twin's norm budget "
        "(recorded data: of 0.15 x the median contrast norm)",
    )
    n_neurons: int = _f(
        0,
        "MEIs (and Gabors, and their truth metrics) for at most this many selected neurons "
        "(0 = all); which ones: see 'sample'",
    )
    sample: str = _f(
        "reliable",
        f"one of {list(MEI_SAMPLES)}: when n_neurons < the selected count, take the "
        "n_neurons most reliable (highest oracle correlation; biased towards easy neurons) "
        "or a uniform random sample (seed run.seed; unbiased truth tails); the neurons used "
        "are recorded in mei_*.nc and metrics.json (mei_neuron_sample)",
    )
    seeds: int = _f(1, "random starts per neuron (the best is kept)")
    chunk_size: int = _f(256, "neurons x seeds optimised per compiled call")
    truth: bool = _f(True, "on the twin, also compute MEIs of the true neurons")
    overrides: dict = _f(
        {}, "fields of MEIConfig changed from the recipe, e.g. {steps = 200, lr = 0.05}"
    )

    def __post_init__(self):
        if self.sample not in MEI_SAMPLES:
            raise ConfigError(
                f"key 'mei.sample' must be one of {list(MEI_SAMPLES)}, got {self.sample!r}"
            )


@dataclass(frozen=True)
class GaborSection:
    """``[gabor]``: the optimal Gabor of each neuron."""

    steps: int = _f(200, "gradient-ascent steps on the Gabor parameters (Adam)")
    lr: float = _f(0.05, "Adam learning rate of the Gabor ascent")
    truth: bool = _f(True, "on the twin, also fit Gabors to the true neurons")
    bank: dict = _f(
        {},
        "arguments of jaxsel.insilico.gabor_bank for the "
        "screening bank, e.g. {n_theta = 8, n_phase = 4}",
    )


@dataclass(frozen=True)
class SweepSection:
    """``[sweep]``: a hyperparameter sweep (``jaxsel sweep``; needs jaxsel.train.fit_many)."""

    model: str = _f("small", "the named config swept")
    parameter: str = _f("lr", "the TrainConfig / ModelConfig field varied")
    values: tuple[float, ...] = _f(
        (0.001, 0.003, 0.01), "its values (one model each, trained together)"
    )
    seeds: int = _f(1, "seeds per value")
    max_epochs: int = _f(0, "cap on training epochs (0 = the model config's max_epochs)")


@dataclass(frozen=True)
class ReportSection:
    """``[report]``: figures and the HTML report."""

    title: str = _f("", "report title (default: the run name)")
    pdf: bool = _f(True, "also save every figure as PDF")
    n_examples: int = _f(12, "neurons shown in the MEI / RF / Gabor grids")
    embed_images: bool = _f(True, "embed figures in report.html (base64) so it is one file")


@dataclass(frozen=True)
class Config:
    """A whole run. Every section and key has a default."""

    run: RunSection = _f(RunSection(), "the run")
    data: DataSection = _f(DataSection(), "the data")
    select: SelectionRule = _f(SelectionRule(), "neuron selection (jaxsel.measures.SelectionRule)")
    train: TrainSection = _f(TrainSection(), "model fitting")
    evaluate: EvaluateSection = _f(EvaluateSection(), "evaluation")
    information: InformationSection = _f(
        InformationSection(), "single-neuron information against the twin's truth"
    )
    mei: MeiSection = _f(MeiSection(), "MEIs and gradient RFs")
    gabor: GaborSection = _f(GaborSection(), "optimal Gabors")
    sweep: SweepSection = _f(SweepSection(), "hyperparameter sweep")
    report: ReportSection = _f(ReportSection(), "figures and report")

    @property
    def out_dir(self) -> Path:
        """The run folder."""
        return Path(self.run.out) if self.run.out else Path("runs") / self.run.name


__all__ = [
    "DATA_SOURCES",
    "STAGES",
    "Config",
    "DataSection",
    "EvaluateSection",
    "GaborSection",
    "InformationSection",
    "MeiSection",
    "ReportSection",
    "RunSection",
    "SweepSection",
    "TrainSection",
    "expand_twin_preset",
]
