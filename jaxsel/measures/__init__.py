"""Measures: reliability, neuron selection, model evaluation, information and selectivity."""
