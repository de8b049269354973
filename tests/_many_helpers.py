"""Shared tiny setup for the fit_many / sharding / per-neuron / custom-stimuli tests."""

from jaxsel.models._config import ModelConfig
from jaxsel.train._config import Config, TrainConfig


def tiny_twin(n_neurons=10, seed=0):
    from jaxsel.data._twin_simulate import simulate

    return simulate(
        seed=seed,
        n_neurons=n_neurons,
        n_train=96,
        n_validation=40,
        n_test=8,
        test_repeats=2,
        shape=(12, 16),
    )


def tiny_config(**train):
    t = dict(batch_size=32, max_epochs=5, patience=1, lr_decay_steps=2, progress=False)
    t.update(train)
    return Config(
        "tiny",
        ModelConfig(
            layers=2,
            hidden_channels=4,
            input_kern=5,
            hidden_kern=3,
            gamma_input=0.1,
            gamma_readout=0.05,
            stack=None,
            init_mu_range=0.5,
            init_sigma=0.2,
        ),
        TrainConfig(**t),
    )
