"""The public API: every exported name, listed (as optax's API test does).

A name added to or removed from a namespace's ``__all__`` must be added to or removed from
this list on purpose. Also: every listed name exists, implementation modules are private,
and no module imports another module's private names.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import jaxsel

EXPORTS = {
    "jaxsel": [
        "ConfigError",
        "DataError",
        "FitResult",
        "JaxselError",
        "ManyResult",
        "MissingInput",
        "ModelConfig",
        "ResponseModel",
        "TrainingError",
        "__version__",
        "as_response_model",
        "clear_caches",
        "data",
        "evaluate",
        "fit",
        "fit_many",
        "gradient_rf",
        "insilico",
        "load_allen_nwb",
        "load_arrays",
        "load_config",
        "load_model",
        "load_static",
        "load_table",
        "make_dataset",
        "measures",
        "models",
        "named_config",
        "optimal_gabors",
        "optimize_meis",
        "oracle_correlation",
        "pipeline",
        "predict",
        "run_pipeline",
        "save_model",
        "save_static",
        "selection_table",
        "simulate",
        "train",
        "viz",
    ],
    "jaxsel.data": [
        "BACKGROUND",
        "Batch",
        "SCALE",
        "Standardizer",
        "TIERS",
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
    ],
    "jaxsel.models": [
        "CONV_IMPLS",
        "Encoder",
        "GridMeanPredictorConfig",
        "Model",
        "ModelConfig",
        "ResponseModel",
        "bilinear_sample",
        "build_model",
        "compiler_options",
        "conv_implementation",
        "conv_padding",
        "default_hparams",
        "elu1",
        "elu1_inverse",
        "energy_positions",
        "fft_conv",
        "group_sparsity",
        "l1",
        "laplace",
        "laplace_l2",
        "laplace_l2_norm",
        "laplacian_pyramid",
        "normalize_source_grid",
        "pooled_kernel",
        "predict",
        "sample_grid",
    ],
    "jaxsel.train": [
        "CONFIG_ALIASES",
        "Config",
        "FORMAT_VERSION",
        "FitResult",
        "LOSSES",
        "ManyResult",
        "NAMED_CONFIGS",
        "PER_MODEL_FIELDS",
        "PlateauEvent",
        "PlateauState",
        "SweepSpec",
        "TrainConfig",
        "as_response_model",
        "fit",
        "fit_many",
        "gamma_loss",
        "get_learning_rate",
        "initialize_distributed",
        "load_fit",
        "load_model",
        "make_hparams",
        "make_optimizer",
        "make_per_neuron_step",
        "make_predict",
        "make_train_step",
        "masked_correlation",
        "model_mesh",
        "model_sharding",
        "mse_loss",
        "named_config",
        "plateau_init",
        "plateau_update",
        "poisson_loglik",
        "poisson_loss",
        "predict_responses",
        "read_model_meta",
        "response_function",
        "run_sweep",
        "save_model",
        "select_tree",
        "set_learning_rate",
        "shard_models",
        "sweep_spec",
    ],
    "jaxsel.measures": [
        "INFO_THRESHOLD",
        "SelectionRule",
        "apply_rule",
        "cluster_members",
        "compare_models",
        "correlation_partners",
        "evaluate",
        "explainable_variance",
        "fev",
        "feve",
        "image_means",
        "informative_count",
        "kmeans",
        "neuron_statistics",
        "oracle_correlation",
        "oracle_correlation_random",
        "outlier_flags",
        "pca",
        "pearson",
        "poisson_information",
        "ranked_curves",
        "ranked_information",
        "rate_distributions",
        "reliability",
        "repeat_information",
        "response_entropy",
        "response_variance",
        "save_sweep_csv",
        "save_table_csv",
        "selected_ids",
        "selection_table",
        "selectivity",
        "signal_correlations",
        "similarity_order",
        "sorted_raster",
        "sweep_summary",
        "sweep_table",
        "topographic_map",
    ],
    "jaxsel.insilico": [
        "GABOR_PARAMS",
        "MEIConfig",
        "axial_average",
        "best_natural_images",
        "best_seed",
        "circular_mask",
        "cross_activation",
        "diagonal_selectivity",
        "discriminative_meis",
        "diverse_meis",
        "dominant_orientation_sf",
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
        "optimal_gabors",
        "optimize_meis",
        "orientation_error_deg",
        "power_spectrum",
        "recipes",
        "screen_gabors",
        "sensitivity_maps",
        "spectrum_frequencies",
        "stimulus_comparison",
        "summarize",
        "symmetry_index",
        "top_recorded_gabors",
        "twin_model",
    ],
    "jaxsel.insilico.recipes": [
        "RECIPES",
        "RECIPE_ALIASES",
        "RECIPE_NAMES",
        "fft_preconditioned",
        "get",
        "mean_image_std",
        "mean_std",
        "norm",
        "resolve",
    ],
    "jaxsel.viz": [
        "STYLE",
        "comparison_figure",
        "correlation_histogram",
        "cross_activation_figure",
        "dataset_examples_figure",
        "gabor_vs_mei",
        "gradient_rf_grid",
        "image_grid",
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
    ],
    "jaxsel.pipeline": [
        "Config",
        "HEADLINE_METRICS",
        "STAGES",
        "check_data_paths",
        "config_from_dict",
        "defaults_toml",
        "demo_config",
        "demo_toml",
        "load_config",
        "load_mei",
        "open_nc",
        "parse_override",
        "run_config_sweep",
        "run_pipeline",
        "save_nc",
        "section_hash",
        "to_toml",
    ],
    "jaxsel.cli": ["build_parser", "main"],
}

PACKAGE = Path(jaxsel.__file__).parent
PUBLIC_MODULES = set(EXPORTS) | {"jaxsel.cli"}


@pytest.mark.parametrize("module", sorted(EXPORTS))
def test_exports_are_exactly_the_listed_names(module):
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == EXPORTS[module]
    missing = [n for n in mod.__all__ if not hasattr(mod, n)]
    assert not missing, f"{module}.__all__ names missing attributes: {missing}"


def test_issue_acceptance_names():
    import jaxsel as js

    for f in (
        js.fit,
        js.fit_many,
        js.load_model,
        js.save_model,
        js.predict,
        js.simulate,
        js.load_static,
        js.measures.oracle_correlation,
        js.insilico.optimize_meis,
        js.insilico.gradient_rf,
        js.insilico.optimal_gabors,
    ):
        assert callable(f)


def test_flat_names_are_the_namespaces_objects():
    import jaxsel as js

    assert js.fit is js.train.fit and js.predict is js.models.predict
    assert js.simulate is js.data.simulate and js.evaluate is js.measures.evaluate
    assert js.optimize_meis is js.insilico.optimize_meis


def test_implementation_modules_are_private():
    public = []
    for info in pkgutil.walk_packages([str(PACKAGE)], "jaxsel."):
        leaf = info.name.rsplit(".", 1)[1]
        if not leaf.startswith("_") and info.name not in PUBLIC_MODULES:
            public.append(info.name)
    assert not public, f"modules that should be private or listed as public: {public}"


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("jaxsel"):
            yield node


def test_no_module_imports_another_modules_private_names():
    bad = []
    for path in PACKAGE.rglob("*.py"):
        for node in _imports(path):
            for alias in node.names:
                name = alias.name
                if not name.startswith("_") or name.startswith("__"):
                    continue
                target = PACKAGE.parent / (node.module.replace(".", "/") + f"/{name}.py")
                if not target.exists():  # a private name, not a private submodule
                    bad.append(f"{path.relative_to(PACKAGE.parent)}: {node.module}.{name}")
    assert not bad, bad


def test_other_stages_are_reached_through_their_public_namespace():
    bad = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        here = rel.parts[0] if len(rel.parts) > 1 else None
        for node in _imports(path):
            parts = node.module.split(".")
            if len(parts) >= 3 and parts[2].startswith("_") and parts[1] != here:
                bad.append(f"{rel}: from {node.module} import ...")
    assert not bad, bad
