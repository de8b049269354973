"""Data: the canonical dataset, loaders and savers, stimuli and the digital twin.

Every loader returns one ``xarray.Dataset``: ``images`` (trial, channel, y, x) raw pixel
values, ``responses`` (trial, neuron), trial coords ``image_id`` and ``tier``, neuron coords
``neuron_id`` (+ ``area``, ``cortex_x/y/z``) and train-tier statistics. Raw pixels follow one
convention (:data:`BACKGROUND` grey, :data:`SCALE` per unit of contrast).

MOVIES. Every movie loader and simulator (:func:`make_video_dataset`, :func:`load_videos`,
:func:`load_video_arrays`, :func:`open_video_store`, :func:`simulate_movies`) returns one
video dataset::

    videos        (trial, channel, time, y, x) float32 raw pixels (the same convention)
    responses     (trial, time, neuron)        float32 one response per frame
    behavior      (trial, time, behavior_var)  optional (Sensorium 2023: pupil, running)
    pupil_center  (trial, time, xy)            optional
    coords        video_id, tier, n_frames (trial); time_s (time, seconds);
                  neuron_id, area, cortex_x/y/z (neuron)
    statistics    video_mean/video_std (channel, y, x) per pixel, response_mean/std
                  (neuron), behavior_/pupil_center_ mean/std: train tier, real frames only
    attrs         frame_rate_hz (default :data:`FRAME_RATE_HZ` = 30), name, source, streamed

Trials are padded to the longest; frames ``t >= n_frames`` hold fill values (videos
``BACKGROUND``, everything else 0), never NaN, and :func:`frame_mask` gives the real frames:
every loss and metric must use it. Training reads random clips with :func:`subsequences`,
whose ``mask`` also drops each clip's first ``burn_in`` frames (:data:`BURN_IN` = 10 at
30 Hz). Data sets larger than ``memory_budget_gb`` (:data:`MEMORY_BUDGET_GB`) stay in a
zarr store and are read clip by clip in a background thread.
"""

from jaxsel.data._allen_nwb import count_spikes, load_allen_nwb
from jaxsel.data._allen_units import qc_rules
from jaxsel.data._arrays import load_arrays, load_table, save_arrays, split_tiers
from jaxsel.data._batches import Batch, batches, iterate, n_batches, tier_arrays
from jaxsel.data._behavior_sim import BehaviorConfig, simulate_behavior
from jaxsel.data._dataset import (
    TIERS,
    fingerprint,
    global_image_stats,
    make_dataset,
    repeats,
    subset,
    unique_images,
    validate,
    with_statistics,
)
from jaxsel.data._image_folder import load_image_folder, load_images
from jaxsel.data._labelled_stimuli import oriented_patch_set, patch_alignment
from jaxsel.data._movie_experiment import simulate_movie_behavior, simulate_movies
from jaxsel.data._movie_stimuli import (
    block_walks,
    drifting_gratings,
    moving_bars,
    moving_digits,
    natural_movies,
)
from jaxsel.data._movie_twin import (
    MOVIE_KINDS,
    MovieTwin,
    load_movie_twin,
    movie_rates,
    optimal_movies,
    save_movie_twin,
    space_time_filters,
)
from jaxsel.data._movie_twin_simulate import MovieTwinConfig, direction_tuning, tuning_indices
from jaxsel.data._pixels import (
    BACKGROUND,
    SCALE,
    as_images,
    from_contrast,
    norm_budget,
    to_contrast,
)
from jaxsel.data._sessions import load_sessions, save_sessions, session_paths, validate_sessions
from jaxsel.data._static_folder import load_static
from jaxsel.data._static_save import save_static
from jaxsel.data._stimuli import (
    add_gaussian_noise,
    dead_leaves,
    gabor,
    grating,
    grating_stimuli,
    hw_tuple,
    labels_from_file,
    labels_from_function,
    natural_like,
    orientation_energy,
    orientation_labels,
    pink_noise,
)
from jaxsel.data._transforms import Standardizer, standardize, standardizer
from jaxsel.data._twin import (
    Twin,
    contrast,
    load_twin,
    optimal_stimuli,
    save_twin,
    to_raw,
    twin_rates,
)
from jaxsel.data._twin_io import write_twin
from jaxsel.data._twin_modulation import session_modulation, session_rates, shift_images
from jaxsel.data._twin_presets import PRESETS as TWIN_PRESETS
from jaxsel.data._twin_sessions import SessionTruth, simulate_sessions
from jaxsel.data._twin_sessions_io import (
    load_session_truth,
    load_twin_sessions,
    save_session_truth,
    write_twin_sessions,
)
from jaxsel.data._twin_simulate import TwinConfig, simulate, twin_config
from jaxsel.data._video_arrays import load_video_arrays, save_video_arrays
from jaxsel.data._video_clips import BURN_IN, Clips, read_clips, subsequences
from jaxsel.data._video_dataset import (
    FRAME_RATE_HZ,
    frame_mask,
    make_video_dataset,
    with_video_statistics,
)
from jaxsel.data._video_folder import SENSORIUM_TIERS, load_videos
from jaxsel.data._video_folder_save import save_videos
from jaxsel.data._video_store import MEMORY_BUDGET_GB, open_video_store, save_video_store
from jaxsel.data._zarr_store import load_zarr, save_zarr

__all__ = [
    "BACKGROUND",
    "BURN_IN",
    "FRAME_RATE_HZ",
    "MEMORY_BUDGET_GB",
    "MOVIE_KINDS",
    "SCALE",
    "SENSORIUM_TIERS",
    "TIERS",
    "TWIN_PRESETS",
    "Batch",
    "BehaviorConfig",
    "Clips",
    "MovieTwin",
    "MovieTwinConfig",
    "SessionTruth",
    "Standardizer",
    "Twin",
    "TwinConfig",
    "add_gaussian_noise",
    "as_images",
    "batches",
    "block_walks",
    "contrast",
    "count_spikes",
    "dead_leaves",
    "direction_tuning",
    "drifting_gratings",
    "fingerprint",
    "frame_mask",
    "from_contrast",
    "gabor",
    "global_image_stats",
    "grating",
    "grating_stimuli",
    "hw_tuple",
    "iterate",
    "labels_from_file",
    "labels_from_function",
    "load_allen_nwb",
    "load_arrays",
    "load_image_folder",
    "load_images",
    "load_movie_twin",
    "load_session_truth",
    "load_sessions",
    "load_static",
    "load_table",
    "load_twin",
    "load_twin_sessions",
    "load_video_arrays",
    "load_videos",
    "load_zarr",
    "make_dataset",
    "make_video_dataset",
    "movie_rates",
    "moving_bars",
    "moving_digits",
    "n_batches",
    "natural_like",
    "natural_movies",
    "norm_budget",
    "open_video_store",
    "optimal_movies",
    "optimal_stimuli",
    "orientation_energy",
    "orientation_labels",
    "oriented_patch_set",
    "patch_alignment",
    "pink_noise",
    "qc_rules",
    "read_clips",
    "repeats",
    "save_arrays",
    "save_movie_twin",
    "save_session_truth",
    "save_sessions",
    "save_static",
    "save_twin",
    "save_video_arrays",
    "save_video_store",
    "save_videos",
    "save_zarr",
    "session_modulation",
    "session_paths",
    "session_rates",
    "shift_images",
    "simulate",
    "simulate_behavior",
    "simulate_movie_behavior",
    "simulate_movies",
    "simulate_sessions",
    "space_time_filters",
    "split_tiers",
    "standardize",
    "standardizer",
    "subsequences",
    "subset",
    "tier_arrays",
    "to_contrast",
    "to_raw",
    "tuning_indices",
    "twin_config",
    "twin_rates",
    "unique_images",
    "validate",
    "validate_sessions",
    "with_statistics",
    "with_video_statistics",
    "write_twin",
    "write_twin_sessions",
]
