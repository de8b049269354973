"""Datasets, loaders, stimuli and the digital twin."""

from jaxsel.data._pixels import BACKGROUND, SCALE, from_contrast, norm_budget, to_contrast
from jaxsel.data.batches import Batch, batches, iterate, tier_arrays
from jaxsel.data.dataset import (TIERS, fingerprint, global_image_stats, make_dataset, repeats,
                                 subset, unique_images, validate, with_statistics)
from jaxsel.data.transforms import Standardizer, standardize, standardizer

# Loaders and savers live in their own modules (imported on use, they pull h5py/tensorstore):
#   jaxsel.data.static_folder.load_static / save_static     (Sensorium / Lurz layout, .zip)
#   jaxsel.data.arrays.load_arrays / save_arrays / load_table
#   jaxsel.data.allen_nwb.load_allen_nwb                    (Allen Neuropixels NWB)
#   jaxsel.data.image_folder.load_image_folder / load_images
#   jaxsel.data.zarr_store.save_zarr / load_zarr            (tensorstore zarr3)
#   jaxsel.data.twin_simulate.simulate, jaxsel.data.twin    (the digital twin)

__all__ = [
    "BACKGROUND", "SCALE", "from_contrast", "norm_budget", "to_contrast",
    "TIERS", "Batch", "Standardizer", "batches", "fingerprint", "global_image_stats",
    "iterate", "make_dataset", "repeats", "standardize", "standardizer", "subset",
    "tier_arrays", "unique_images", "validate", "with_statistics",
]
