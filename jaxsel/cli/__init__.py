"""The ``jaxsel`` command line."""
