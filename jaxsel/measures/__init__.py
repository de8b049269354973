"""Measures: reliability, neuron selection, model evaluation, tuning, information,
selectivity and clustering. Every result is labelled (xarray, named dims, units stated)."""

from jaxsel.measures._clustering import cluster_members, kmeans, pca
from jaxsel.measures._evaluation import evaluate, pearson
from jaxsel.measures._information import INFO_THRESHOLD, poisson_information, repeat_information
from jaxsel.measures._information_noise import (
    GammaPoissonNoise,
    ObservationModel,
    PoissonNoise,
    twin_noise,
)
from jaxsel.measures._information_rates import rate_information
from jaxsel.measures._information_summaries import (
    informative_count,
    ranked_information,
    save_sweep_csv,
    sweep_table,
)
from jaxsel.measures._information_truth import (
    information_table,
    information_vs_input_noise,
    rank_correlation,
)
from jaxsel.measures._reliability import (
    explainable_variance,
    fev,
    feve,
    oracle_correlation,
    oracle_correlation_random,
    reliability,
)
from jaxsel.measures._selection import (
    SelectionRule,
    apply_rule,
    neuron_statistics,
    save_table_csv,
    selected_ids,
    selection_table,
)
from jaxsel.measures._selectivity import (
    compare_models,
    rate_distributions,
    selectivity,
    topographic_map,
)
from jaxsel.measures._session_truth import (
    modulator_truth_r,
    rates_truth_r,
    session_predictions,
    session_truth_metrics,
    shifter_truth_r,
)
from jaxsel.measures._sweep_summary import ranked_curves, sweep_summary
from jaxsel.measures._truth import truth_correlation
from jaxsel.measures._tuning import (
    correlation_partners,
    image_means,
    outlier_flags,
    response_entropy,
    response_variance,
    signal_correlations,
    similarity_order,
    sorted_raster,
)
from jaxsel.measures._video_evaluation import (
    evaluate_video,
    video_average_correlation,
    video_correlation,
)

__all__ = [
    "INFO_THRESHOLD",
    "GammaPoissonNoise",
    "ObservationModel",
    "PoissonNoise",
    "SelectionRule",
    "apply_rule",
    "cluster_members",
    "compare_models",
    "correlation_partners",
    "evaluate",
    "evaluate_video",
    "explainable_variance",
    "fev",
    "feve",
    "image_means",
    "information_table",
    "information_vs_input_noise",
    "informative_count",
    "kmeans",
    "modulator_truth_r",
    "neuron_statistics",
    "oracle_correlation",
    "oracle_correlation_random",
    "outlier_flags",
    "pca",
    "pearson",
    "poisson_information",
    "rank_correlation",
    "ranked_curves",
    "ranked_information",
    "rate_distributions",
    "rate_information",
    "rates_truth_r",
    "reliability",
    "repeat_information",
    "response_entropy",
    "response_variance",
    "save_sweep_csv",
    "save_table_csv",
    "selected_ids",
    "selection_table",
    "selectivity",
    "session_predictions",
    "session_truth_metrics",
    "shifter_truth_r",
    "signal_correlations",
    "similarity_order",
    "sorted_raster",
    "sweep_summary",
    "sweep_table",
    "topographic_map",
    "truth_correlation",
    "twin_noise",
    "video_average_correlation",
    "video_correlation",
]
