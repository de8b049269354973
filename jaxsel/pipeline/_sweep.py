"""The ``[sweep]`` of a run config: one named config trained at every value x seed of one
hyperparameter with :func:`jaxsel.fit_many` (``jaxsel sweep``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from jaxsel.pipeline._config_schema import Config
from jaxsel.pipeline._context import Context
from jaxsel.pipeline._rundir import RunDir
from jaxsel.pipeline._stages import run_pipeline
from jaxsel.train import fit_many, named_config


def run_config_sweep(cfg: Config, *, force: bool = False) -> Path:
    """Run the data and select stages of ``cfg``, then its ``[sweep]``.

    Every value of ``sweep.parameter`` x ``sweep.seeds`` seeds is one model of one
    ``fit_many`` program, checkpointed under ``RUN/sweep`` (resumed unless ``force``).

    Returns:
      The path of ``RUN/sweep/summary.csv`` (value, seed, best validation correlation,
      best epoch, stop reason).
    """
    run_pipeline(cfg, force=force, stages=["data", "select"])
    rd = RunDir(cfg.out_dir)
    try:
        ctx = Context(cfg, rd)
        sw = cfg.sweep
        values = np.repeat(np.asarray(sw.values, float), sw.seeds)
        seeds = np.tile(np.arange(sw.seeds) + cfg.run.seed, len(sw.values))
        rd.log.info(
            f"[sweep] {sw.model}: {sw.parameter} in {list(sw.values)} x {sw.seeds} "
            f"seeds = {len(values)} models"
        )
        res = fit_many(
            named_config(sw.model),
            ctx.train_dataset(),
            seeds=seeds,
            hparams={sw.parameter: values},
            out_dir=rd / "sweep",
            resume=not force,
            overwrite=force,
            progress=cfg.run.progress,
            max_epochs=sw.max_epochs or None,
        )
        table = pd.DataFrame(
            {
                sw.parameter: values,
                "seed": seeds,
                "best_val_corr": np.asarray(res.best_score),
                "best_epoch": np.asarray(res.best_epoch),
                "stopped": np.asarray(res.stopped),
            }
        )
        path = rd / "sweep" / "summary.csv"
        table.to_csv(path, index=False)
        rd.log.info(table.to_string(index=False))
        rd.log.info(f"summary: {path}")
    finally:
        rd.close()
    return path


__all__ = ["run_config_sweep"]
