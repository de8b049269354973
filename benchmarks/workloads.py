"""Workload definitions shared by the JAX and PyTorch sides of the benchmark.

Every workload is a plain dict (JSON-able, so both processes read the same numbers). ``quick``
shrinks sizes and repeats for smoke tests; the shapes of the full run follow the issue:

1. ``lurz_train``   Lurz-style model train step (4 layers x 64 ch, kernels 9/7, 1,000 neurons,
                    batch 64, 36x64 images, full Gaussian readout, Poisson loss, Adam).
2. ``small_train``  the demo's ``small`` named config, train step (300 neurons, batch 64).
3. ``per_neuron``   100 tiny per-neuron CNNs, one Adam step each (own responses, shared images).
4. ``mei``          MEI ascent (L2-norm constrained Adam ascent) for 100 and 1,000 neurons of a
                    ``small`` model with 1,000 neurons.
5. ``sweep``        24 ``small`` models (a grid of learning rates x readout penalties), one
                    train step each on the same batch.
6. ``inference``    Lurz model, eval-mode forward, batch 256.
Scaling curves: ``scale_neurons`` (small train step, 100..10,000 neurons), ``scale_models``
(per-neuron CNNs, 8..512 models), ``scale_image`` (small train step, 36x64..72x128),
``scale_batch`` (small train step, batch 16..256); ``report.py`` fits a log-log slope per side.

Sizes: ``get(name, sizes="cpu" | "quick" | "gpu")``; ``gpu`` = the sizes of
``benchmarks/gpu.sh`` (Lurz train batch 256, MEIs for 10,000 neurons, 1,000 per-neuron models
vmapped, the sweep vmapped). ``jax_variants`` / ``torch_variants`` (where given) pick which
formulations a side times; without them each side times all of its own.
"""

from __future__ import annotations

import copy

# The tiny per-neuron CNN (one jaxsel model per neuron): 2 layers (conv k9 1->C, BN, ELU;
# conv k7 C->C, BN, ELU), full Gaussian readout of 1 neuron, ELU+1, Poisson loss, Adam.
PER_NEURON_ARCH = {"channels": 4, "k1": 9, "k2": 7, "lr": 1e-3}
# JAX formulations timed (jaxsel.train.make_per_neuron_step's fused step with shifted-matmul hidden
# layers, vmap of the one-model step, a Python loop over it). The fused step with
# conv="xla" (grouped convs) was 20-30x slower than the loop on this CPU in --quick runs
# and is left out of full runs (add "fused_xla" here to time it).
# "fused_shifted" keeps 49 shifted copies of every activation for the backward pass: with
# 100 models x batch 64 that is > 10 GiB and was killed (out of memory) in the full run.
# "loop_fft" / "vmap_fft": the same with conv="auto" (FFT convolutions where faster on CPU),
# which is what fit_many runs on CPU.
PER_NEURON_JAX = ("vmap", "loop", "vmap_fft", "loop_fft")
SCALE_MODELS_JAX = "loop_fft"  # the JAX formulation used for the models curve

LURZ_MODEL = {"layers": 4, "hidden_channels": 64, "input_kern": 9, "hidden_kern": 7}

WORKLOADS = {
    "lurz_train": {
        "kind": "train",
        "config": "lurz",
        "n_neurons": 1000,
        "batch": 64,
        "image": [36, 64],
        "repeats": 4,
    },
    "small_train": {
        "kind": "train",
        "config": "small",
        "n_neurons": 300,
        "batch": 64,
        "image": [36, 64],
        "repeats": 10,
    },
    "per_neuron": {
        "kind": "per_neuron",
        "n_models": 100,
        "batch": 64,
        "image": [36, 64],
        "repeats": 3,
        **PER_NEURON_ARCH,
    },
    "mei": {
        "kind": "mei",
        "config": "small",
        "model_neurons": 1000,
        "image": [36, 64],
        "neurons": [100, 1000],
        "steps": 10,
        "chunk": 250,
        "lr": 0.05,
        "norm": 20.0,
        "repeats": 1,
    },
    "sweep": {
        "kind": "sweep",
        "config": "small",
        "n_models": 24,
        "n_neurons": 300,
        "batch": 64,
        "image": [36, 64],
        "repeats": 3,
    },
    "inference": {
        "kind": "inference",
        "config": "lurz",
        "n_neurons": 1000,
        "batch": 256,
        "image": [36, 64],
        "repeats": 5,
    },
    "scale_neurons": {
        "kind": "scale",
        "of": "train",
        "config": "small",
        "batch": 64,
        "image": [36, 64],
        "points": [100, 1000, 10000],
        "repeats": 2,
    },
    "scale_models": {
        "kind": "scale",
        "of": "per_neuron",
        "batch": 64,
        "image": [36, 64],
        "points": [8, 64, 512],
        "repeats": 1,
        **PER_NEURON_ARCH,
    },
    "scale_image": {
        "kind": "scale",
        "of": "image",
        "config": "small",
        "n_neurons": 300,
        "batch": 64,
        "points": [[36, 64], [54, 96], [72, 128]],
        "repeats": 2,
    },
    "scale_batch": {
        "kind": "scale",
        "of": "batch",
        "config": "small",
        "n_neurons": 300,
        "image": [36, 64],
        "points": [16, 64, 256],
        "repeats": 2,
    },
}

QUICK = {
    "lurz_train": {"n_neurons": 50, "batch": 8, "image": [18, 32], "repeats": 2},
    "small_train": {"n_neurons": 30, "batch": 8, "image": [18, 32], "repeats": 2},
    "per_neuron": {"n_models": 6, "batch": 8, "image": [18, 32], "repeats": 2},
    "mei": {"model_neurons": 40, "image": [18, 32], "neurons": [4, 40], "steps": 3, "chunk": 16},
    "sweep": {"n_models": 3, "n_neurons": 30, "batch": 8, "image": [18, 32], "repeats": 2},
    "inference": {"n_neurons": 50, "batch": 16, "image": [18, 32], "repeats": 2},
    "scale_neurons": {"batch": 8, "image": [18, 32], "points": [10, 100], "repeats": 1},
    "scale_models": {"batch": 8, "image": [18, 32], "points": [1, 4], "repeats": 1},
    "scale_image": {"n_neurons": 30, "batch": 8, "points": [[18, 32], [24, 48]], "repeats": 1},
    "scale_batch": {"n_neurons": 30, "image": [18, 32], "points": [4, 8], "repeats": 1},
}

# benchmarks/gpu.sh: GPU sizes (one H200 in mind; <= 8 minutes for everything). Torch
# variants are fewer than on CPU: every torch.compile costs about a minute here.
GPU = {
    "lurz_train": {
        "batch": 256,
        "repeats": 10,
        "torch_variants": ["eager", "channels_last", "compile"],
    },
    "small_train": {"batch": 256, "repeats": 10, "torch_variants": ["eager", "channels_last"]},
    "per_neuron": {
        "n_models": 1000,
        "repeats": 3,
        "jax_variants": ["vmap", "loop"],
        "torch_variants": ["grouped", "grouped_channels_last", "func_vmap", "loop"],
    },
    "mei": {
        "model_neurons": 10000,
        "neurons": [1000, 10000],
        "chunk": 2500,
        "torch_variants": ["batched_sum", "batched_sum_channels_last"],
    },
    "sweep": {
        "repeats": 5,
        "jax_variants": ["vmap", "loop"],
        "torch_variants": ["loop", "loop_channels_last"],
    },
    "inference": {
        "batch": 1024,
        "repeats": 10,
        "torch_variants": ["no_grad", "channels_last", "compile"],
    },
}
GPU_ORDER = ["lurz_train", "small_train", "per_neuron", "mei", "sweep", "inference"]

ORDER = [
    "lurz_train",
    "small_train",
    "per_neuron",
    "mei",
    "sweep",
    "inference",
    "scale_neurons",
    "scale_models",
    "scale_image",
    "scale_batch",
]

# The sweep grid: 24 points = 4 learning rates x 6 readout L1 strengths.
SWEEP_LRS = [1e-3, 3e-3, 5e-3, 1e-2]
SWEEP_GAMMAS = [0.0, 0.01, 0.1, 0.5, 1.0, 2.0]


def get(name: str, quick: bool = False, sizes: str = "cpu") -> dict:
    """The parameters of workload ``name`` at ``sizes`` ("cpu", "gpu"); ``quick`` shrinks
    them to a smoke test (keeping the variant choices of ``sizes``)."""
    if name not in WORKLOADS:
        raise KeyError(f"unknown workload {name!r}; choose from {ORDER}")
    if sizes not in ("cpu", "gpu"):
        raise KeyError(f"unknown sizes {sizes!r}; choose cpu or gpu")
    w = copy.deepcopy(WORKLOADS[name])
    if sizes == "gpu":
        w.update(copy.deepcopy(GPU.get(name, {})))
    if quick:
        w.update(copy.deepcopy(QUICK[name]))
    w["name"] = name
    w["sizes"] = sizes
    return w


def sweep_grid(n: int) -> list[tuple[float, float]]:
    """The first ``n`` (lr, gamma_readout) points of the sweep grid."""
    pts = [(lr, g) for lr in SWEEP_LRS for g in SWEEP_GAMMAS]
    return pts[:n]


def conv_flops(cfg: dict, n_images: int, image) -> float:
    """Forward FLOPs (2 x MACs) of a stacked core's convolutions for ``n_images`` images.

    ``cfg`` holds layers, hidden_channels, input_kern, hidden_kern (SAME padding, no
    pooling, non-separable, input 1 channel, no skip connections).
    """
    h, w = image
    c, k1, k2 = cfg["hidden_channels"], cfg["input_kern"], cfg["hidden_kern"]
    per = h * w * (k1 * k1 * 1 * c + (cfg["layers"] - 1) * k2 * k2 * c * c)
    return 2.0 * per * n_images


def per_neuron_flops(arch: dict, n_images: int, image) -> float:
    """Forward conv FLOPs of one tiny per-neuron CNN for ``n_images`` images."""
    h, w = image
    c = arch["channels"]
    return 2.0 * h * w * (arch["k1"] ** 2 * c + arch["k2"] ** 2 * c * c) * n_images
