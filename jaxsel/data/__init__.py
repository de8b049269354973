"""Datasets, loaders, stimuli and the digital twin."""

from jaxsel.data.batches import Batch, batches, iterate, tier_arrays
from jaxsel.data.dataset import (TIERS, fingerprint, global_image_stats, make_dataset, repeats,
                                 subset, unique_images, validate, with_statistics)
from jaxsel.data.transforms import Standardizer, standardize, standardizer

__all__ = [
    "TIERS", "Batch", "Standardizer", "batches", "fingerprint", "global_image_stats",
    "iterate", "make_dataset", "repeats", "standardize", "standardizer", "subset",
    "tier_arrays", "unique_images", "validate", "with_statistics",
]
