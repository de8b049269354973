"""Figures (matplotlib; each figure gets its own Agg canvas, nothing is chosen at import).

Every function returns a ``matplotlib.figure.Figure``; :func:`save_figure` writes one
atomically (PNG/PDF by suffix). One style (:data:`STYLE`) is applied to every figure.
"""

from jaxsel.viz._image_grids import (
    gradient_rf_grid,
    image_grid,
    mei_grid,
    paired_grid,
    sensitivity_overlays,
)
from jaxsel.viz._information_figures import information_truth_figure
from jaxsel.viz._insilico_figures import (
    comparison_figure,
    cross_activation_figure,
    gabor_vs_mei,
    power_spectra_figure,
    recovery_figure,
)
from jaxsel.viz._measure_figures import (
    dataset_examples_figure,
    informative_counts_figure,
    oracle_truth_figure,
    oracle_variance_scatter,
    ranked_information_figure,
    raster_figure,
    rate_distributions_figure,
    selectivity_comparison_figure,
    selectivity_figure,
    topographic_map_figure,
)
from jaxsel.viz._model_figures import (
    correlation_histogram,
    ln_vs_cnn_scatter,
    model_quality_figure,
    training_curves,
)
from jaxsel.viz._style import STYLE, new_figure, save_figure
from jaxsel.viz._sweep_figures import ranked_curves_figure, score_figure

__all__ = [
    "STYLE",
    "comparison_figure",
    "correlation_histogram",
    "cross_activation_figure",
    "dataset_examples_figure",
    "gabor_vs_mei",
    "gradient_rf_grid",
    "image_grid",
    "information_truth_figure",
    "informative_counts_figure",
    "ln_vs_cnn_scatter",
    "mei_grid",
    "model_quality_figure",
    "new_figure",
    "oracle_truth_figure",
    "oracle_variance_scatter",
    "paired_grid",
    "power_spectra_figure",
    "ranked_curves_figure",
    "ranked_information_figure",
    "raster_figure",
    "rate_distributions_figure",
    "recovery_figure",
    "save_figure",
    "score_figure",
    "selectivity_comparison_figure",
    "selectivity_figure",
    "sensitivity_overlays",
    "topographic_map_figure",
    "training_curves",
]
