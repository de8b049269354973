"""Training: losses, optax optimisation, early stopping, checkpoints."""
