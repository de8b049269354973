"""The run's figures: each one drawn from files in the run folder, saved as PNG (+ PDF).

This module holds the table of figures (:data:`FIGURES`: name, section, title, caption and
the function of ``_figure_makers`` that draws it); :func:`draw_all` writes
``figures/<name>.png`` and the manifest ``figures/index.json`` the report reads.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from matplotlib.figure import Figure

from jaxsel.pipeline._figure_makers import (
    EXAMPLES_FILE,
    example_neurons,
    fig_comparison,
    fig_cross,
    fig_data_examples,
    fig_gabor_vs_mei,
    fig_grad_rf,
    fig_information,
    fig_mei,
    fig_mei_vs_truth,
    fig_models,
    fig_oracle_truth,
    fig_recovery,
    fig_selection,
    fig_selectivity,
    fig_spectra,
)
from jaxsel.pipeline._information_stage import fig_information_truth
from jaxsel.viz import save_figure


def save(fig: Figure, folder: Path, name: str, *, pdf: bool) -> str:
    """Save ``fig`` as ``folder/name.png`` (+ PDF); return the PNG's file name."""
    save_figure(fig, folder / f"{name}.png", tight=False)
    if pdf:
        save_figure(fig, folder / f"{name}.pdf", tight=False)
    return f"{name}.png"


def write_index(folder: Path, entries: list[dict]) -> Path:
    """Write the figure manifest the report reads."""
    path = folder / "index.json"
    path.write_text(json.dumps(entries, indent=2))
    return path


# =========================================================================== the run's figures


# name, section, title, caption, producer
FIGURES = (
    (
        "data_examples",
        "data",
        "Dataset",
        "Example training images and the distribution of single-trial responses.",
        fig_data_examples,
    ),
    (
        "selection",
        "selection",
        "Neuron selection",
        "Oracle correlation vs response variance of every neuron, coloured by what the selection "
        "rule decided; the lines are the thresholds it applied (legend), and outliers are marked "
        "only when the rule excluded them.",
        fig_selection,
    ),
    (
        "oracle_vs_truth",
        "selection",
        "Oracle correlation vs truth",
        "The estimated oracle correlation of each neuron against the twin's true value.",
        fig_oracle_truth,
    ),
    (
        "model_quality",
        "models",
        "Model quality",
        "Left: single-trial test correlation of "
        "the LN model vs the CNN per neuron. Middle: distributions, with the oracle "
        "correlation (upper bound). Right (twin): correlation of each model with the true "
        "noise-free response on the test images.",
        fig_models,
    ),
    (
        "mei_model",
        "mei",
        "MEIs of the CNN",
        "Most exciting inputs of the trained CNN at the contrast budget (raw pixel values, "
        "one grey scale centred on the background for all panels), with the model rate "
        "during the ascent. The example neurons are the same in every figure "
        "(figures/examples.json).",
        lambda c: fig_mei(c, "model"),
    ),
    (
        "mei_truth",
        "mei",
        "MEIs of the true neurons",
        "The same optimisation on the twin's noise-free neurons (same scale convention).",
        lambda c: fig_mei(c, "truth"),
    ),
    (
        "mei_vs_truth",
        "recovery",
        "Model MEIs vs true optimal stimuli",
        "Contrast images (pixel - 127.5) / 127.5 on one shared scale; complex cells' optima are "
        "one phase of the quadrature pair.",
        fig_mei_vs_truth,
    ),
    (
        "grad_rf_model",
        "rf",
        "Gradient RFs of the CNN",
        "d rate / d pixel at the mean image, each panel divided by its own max |grad| (in its "
        "title, rate per pixel-value unit) and shown on one symmetric scale from -1 to 1.",
        lambda c: fig_grad_rf(c, "model"),
    ),
    (
        "grad_rf_truth",
        "rf",
        "Gradient RFs of the true neurons",
        "d rate / d pixel at the mean image, each panel divided by its own max |grad| (in its "
        "title, rate per pixel-value unit) and shown on one symmetric scale from -1 to 1.",
        lambda c: fig_grad_rf(c, "truth"),
    ),
    (
        "cross_activation",
        "cross",
        "Cross-activation",
        "Each neuron's rate (columns) to every MEI (rows), divided by its largest rate over "
        "all MEIs; labels are neuron ids.",
        fig_cross,
    ),
    (
        "gabor_vs_mei_model",
        "gabor",
        "MEI vs optimal Gabor (CNN)",
        "Both at the same contrast budget, raw pixel values on one grey scale; the titles give "
        "the model's rate.",
        lambda c: fig_gabor_vs_mei(c, "model"),
    ),
    (
        "gabor_vs_mei_truth",
        "gabor",
        "MEI vs optimal Gabor (truth)",
        "Both at the same contrast budget, raw pixel values on one grey scale; the titles give "
        "the true rate.",
        lambda c: fig_gabor_vs_mei(c, "truth"),
    ),
    (
        "comparison_model",
        "gabor",
        "Image metrics",
        "Model activation, masked contrast, 2-fold "
        "symmetry index and dominant spatial frequency of MEIs, Gabors and the best natural "
        "images.",
        lambda c: fig_comparison(c, "model"),
    ),
    (
        "power_spectra",
        "gabor",
        "Power spectra",
        "Log power spectrum and axial average (with "
        "symmetry indices) of the MEI of the most driven example neuron and of its optimal Gabor; "
        "one colour scale.",
        fig_spectra,
    ),
    (
        "information",
        "information",
        "Ranked information",
        "Single-neuron information "
        "(Poisson, from noise-free rates) about whether the neuron's preferred orientation is "
        "present in a test image; dotted: the 2/3-bit 'informative' threshold. The figure states "
        "how many neurons reach it and, below it, how much the rate changes with the label.",
        fig_information,
    ),
    (
        "selectivity",
        "information",
        "Selectivity",
        "Selectivity index of each neuron for its preferred orientation, model vs truth.",
        fig_selectivity,
    ),
    (
        "information_truth",
        "information",
        "Information against the truth",
        "Exact single-neuron information (bits, under the twin's Poisson / gamma-Poisson "
        "noise) about a patch's orientation (the oriented-patch set: theta vs theta + 90 deg in "
        "an aperture at the image centre). Left: the trained and the untrained CNN against the "
        "twin's true information per selected neuron; dotted: the informative threshold. "
        "Right: informative neurons as Gaussian pixel noise is added to the images.",
        fig_information_truth,
    ),
    (
        "recovery",
        "recovery",
        "Ground-truth recovery",
        "Pearson r of model MEIs with the true "
        "optimal stimulus, phase-invariant match, and the true drive the MEI reaches relative "
        "to the true optimum.",
        fig_recovery,
    ),
)


def named_neurons(fig: Figure) -> list[int]:
    """The neuron ids a figure names (``"id <n>"`` in its titles and axis labels)."""
    texts = [t.get_text() for t in fig.texts] + [fig.get_suptitle()]
    for ax in fig.axes:
        texts += [ax.get_title(), ax.get_ylabel(), ax.get_xlabel()]
    return sorted({int(m) for t in texts for m in re.findall(r"\bid (\d+)", t)})


def draw_all(ctx) -> list[dict]:
    """Draw every figure whose inputs exist; write ``figures/index.json`` and
    ``figures/examples.json`` (the example neurons every figure shows).

    Returns:
      The manifest entries (file, title, section, caption, neuron_id: the example neurons
      the figure names).
    """
    folder = ctx.rd / "figures"
    folder.mkdir(exist_ok=True)
    if (ctx.rd / "selection.nc").is_file():
        ex = example_neurons(ctx)
        (folder / EXAMPLES_FILE).write_text(json.dumps(ex, indent=2))
        ctx.log.info(f"  example neurons: {', '.join(ex['label'])}")
    entries = []
    for name, section, title, caption, make in FIGURES + tuple(extra_figures(ctx)):
        try:
            fig = make(ctx)
        except FileNotFoundError as err:
            ctx.log.info(f"  figure {name}: skipped ({err})")
            continue
        file = save(fig, folder, name, pdf=ctx.cfg.report.pdf)
        entries.append(
            {
                "file": file,
                "title": title,
                "section": section,
                "caption": caption,
                "neuron_id": named_neurons(fig),
            }
        )
    write_index(folder, entries)
    ctx.log.info(f"  {len(entries)} figures in {folder}")
    return entries


def extra_figures(ctx) -> list:
    """Figures of the library's viz modules that need results of later issues."""
    return []
