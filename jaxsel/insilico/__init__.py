"""In silico experiments: MEIs, gradient receptive fields, sensitivity maps, Gabors, metrics."""
