"""Whole runs: the run folder (:mod:`.rundir`), one function per stage (:mod:`.stages`) and
the HTML report (:mod:`.report`). ``run_pipeline(config)`` runs every stage in order,
skipping those already finished with the same config."""

from jaxsel.pipeline.stages import run_pipeline

__all__ = ["run_pipeline"]
