"""Data: the canonical dataset, loaders and savers, stimuli and the digital twin.

Every loader returns one ``xarray.Dataset``: ``images`` (trial, channel, y, x) raw pixel
values, ``responses`` (trial, neuron), trial coords ``image_id`` and ``tier``, neuron coords
``neuron_id`` (+ ``area``, ``cortex_x/y/z``) and train-tier statistics. Raw pixels follow one
convention (:data:`BACKGROUND` grey, :data:`SCALE` per unit of contrast).
"""

from jaxsel.data._allen_nwb import count_spikes, load_allen_nwb, qc_rules
from jaxsel.data._arrays import load_arrays, load_table, save_arrays, split_tiers
from jaxsel.data._batches import Batch, batches, iterate, n_batches, tier_arrays
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
from jaxsel.data._pixels import (
    BACKGROUND,
    SCALE,
    as_images,
    from_contrast,
    norm_budget,
    to_contrast,
)
from jaxsel.data._static_folder import load_static, save_static
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
from jaxsel.data._twin_simulate import TwinConfig, simulate
from jaxsel.data._zarr_store import load_zarr, save_zarr

__all__ = [
    "BACKGROUND",
    "SCALE",
    "TIERS",
    "Batch",
    "Standardizer",
    "Twin",
    "TwinConfig",
    "add_gaussian_noise",
    "as_images",
    "batches",
    "contrast",
    "count_spikes",
    "dead_leaves",
    "fingerprint",
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
    "load_static",
    "load_table",
    "load_twin",
    "load_zarr",
    "make_dataset",
    "n_batches",
    "natural_like",
    "norm_budget",
    "optimal_stimuli",
    "orientation_energy",
    "orientation_labels",
    "oriented_patch_set",
    "patch_alignment",
    "pink_noise",
    "qc_rules",
    "repeats",
    "save_arrays",
    "save_static",
    "save_twin",
    "save_zarr",
    "simulate",
    "split_tiers",
    "standardize",
    "standardizer",
    "subset",
    "tier_arrays",
    "to_contrast",
    "to_raw",
    "twin_rates",
    "unique_images",
    "validate",
    "with_statistics",
    "write_twin",
]
