"""In silico experiments: MEIs, gradient receptive fields, sensitivity maps, Gabors, metrics.

A model is a pair ``(fn, params)`` with ``fn(params, raw images (batch, C, H, W)) -> rates
(batch, neuron)`` (a :class:`jaxsel.models.ResponseModel` unpacks as one); the digital twin's
truth is one too (:func:`twin_model`). MEI recipes (``norm``, ``mean_std``,
``fft_preconditioned``) live in :mod:`jaxsel.insilico.recipes`.
"""

from jaxsel.insilico import recipes
from jaxsel.insilico._cross_activation import cross_activation, diagonal_selectivity
from jaxsel.insilico._custom_stimuli import ensemble_responses
from jaxsel.insilico._ensemble import mei_confidence, member_pair, member_predictions
from jaxsel.insilico._gabor_search import (
    GABOR_PARAMS,
    gabor_bank,
    gabor_contrast,
    gabor_images,
    screen_gabors,
    top_recorded_gabors,
)
from jaxsel.insilico._gradients import gradient_rf, sensitivity_maps
from jaxsel.insilico._image_metrics import (
    axial_average,
    best_natural_images,
    circular_mask,
    dominant_orientation_sf,
    image_metrics,
    masked_contrast,
    masked_luminance,
    metrics_table,
    power_spectrum,
    spectrum_frequencies,
    stimulus_comparison,
    symmetry_index,
)
from jaxsel.insilico._mei import best_seed, optimize_meis
from jaxsel.insilico._mei_config import MEIConfig
from jaxsel.insilico._mei_variants import discriminative_meis, diverse_meis, most_inhibitory_inputs
from jaxsel.insilico._optimal_gabor import optimal_gabors
from jaxsel.insilico._recovery import (
    gabor_recovery,
    mei_recovery,
    orientation_error_deg,
    summarize,
    twin_model,
)
from jaxsel.insilico._video_mev import optimize_mevs
from jaxsel.insilico._video_stimuli import drifting_gratings, moving_bars
from jaxsel.insilico._video_tuning import (
    bar_responses,
    direction_indices,
    direction_tuning,
    spatiotemporal_rf,
    video_rates,
)

__all__ = [
    "GABOR_PARAMS",
    "MEIConfig",
    "axial_average",
    "bar_responses",
    "best_natural_images",
    "best_seed",
    "circular_mask",
    "cross_activation",
    "diagonal_selectivity",
    "direction_indices",
    "direction_tuning",
    "discriminative_meis",
    "diverse_meis",
    "dominant_orientation_sf",
    "drifting_gratings",
    "ensemble_responses",
    "gabor_bank",
    "gabor_contrast",
    "gabor_images",
    "gabor_recovery",
    "gradient_rf",
    "image_metrics",
    "masked_contrast",
    "masked_luminance",
    "mei_confidence",
    "mei_recovery",
    "member_pair",
    "member_predictions",
    "metrics_table",
    "most_inhibitory_inputs",
    "moving_bars",
    "optimal_gabors",
    "optimize_meis",
    "optimize_mevs",
    "orientation_error_deg",
    "power_spectrum",
    "recipes",
    "screen_gabors",
    "sensitivity_maps",
    "spatiotemporal_rf",
    "spectrum_frequencies",
    "stimulus_comparison",
    "summarize",
    "symmetry_index",
    "top_recorded_gabors",
    "twin_model",
    "video_rates",
]
