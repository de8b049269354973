#!/usr/bin/env bash
# One command for a GPU machine (jax with CUDA, flax, optax, xarray, orbax, tensorstore and,
# optionally, torch preinstalled; nothing is installed): every workload at GPU sizes
# (benchmarks/workloads.py GPU: Lurz train batch 256, MEIs for 10,000 neurons, 1,000
# per-neuron models vmapped, the sweep vmapped), equivalence-checked (JAX vs PyTorch on the
# same weights; without torch, JAX vs the NumPy reference model and JAX-internal checks),
# results JSON + figure to $OUT (default benchmarks/results). Budget: 8 minutes; workloads
# not started by then are listed under "skipped".
#
#   bash benchmarks/gpu.sh            # from the checkout, on the GPU machine
#   bash benchmarks/gpu.sh --quick    # tiny sizes (a smoke test; also runs on CPU)
#
# Extra arguments go to benchmarks/run.py (e.g. --only lurz_train,mei).
# JAXSEL_BENCH_TORCH_PYTHON=none forces JAX-only numbers; PYTHON picks the interpreter.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
py="${PYTHON:-python}"
command -v "$py" >/dev/null 2>&1 || py=python3
out="${OUT:-$root/benchmarks/results}"
mkdir -p "$out"
cd "$root"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
exec "$py" "$here/run.py" --sizes gpu --no-install --no-readme --budget-s "${BENCH_BUDGET_S:-420}" \
  --results "$out" "$@"
