"""jaxsel: neural system identification and in-silico selectivity analysis in JAX.

Stages, in the order data flows through them: :mod:`jaxsel.data` (datasets, loaders, stimuli,
the digital twin), :mod:`jaxsel.models`, :mod:`jaxsel.train`, :mod:`jaxsel.measures`,
:mod:`jaxsel.insilico`, :mod:`jaxsel.viz` and the command line :mod:`jaxsel.cli`.
Importing jaxsel changes no JAX configuration and selects no device.
"""

__version__ = "0.1.0"
