"""``jaxsel sweep``: fit many models (a hyperparameter sweep) in one vectorised program."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    from jaxsel.cli.run_cmd import add_common

    p = sub.add_parser(
        "sweep", help="hyperparameter sweep: many models trained at once (vmap)",
        description="Run the data and select stages of CONFIG, then train one model per "
                    "value x seed of the [sweep] section with jaxsel.train.many.fit_many "
                    "(all points in one compiled step, each early-stopping on its own) and "
                    "write RUN/sweep/summary.csv (value, seed, best validation correlation, "
                    "best epoch, stop reason).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_common(p)
    p.set_defaults(run=run)


def run(args) -> int:
    import numpy as np

    from jaxsel.cli.run_cmd import load
    from jaxsel.pipeline import run_pipeline

    from jaxsel.train.many import fit_many
    from jaxsel.pipeline.rundir import RunDir
    from jaxsel.pipeline.context import Context
    from jaxsel.train.config import named_config

    cfg = load(args)
    run_pipeline(cfg, force=args.force, stages=["data", "select"])
    rd = RunDir(cfg.out_dir)
    try:
        ctx = Context(cfg, rd)
        sw = cfg.sweep
        values = np.repeat(np.asarray(sw.values, float), sw.seeds)
        seeds = np.tile(np.arange(sw.seeds) + cfg.run.seed, len(sw.values))
        rd.log.info(f"[sweep] {sw.model}: {sw.parameter} in {list(sw.values)} x {sw.seeds} "
                    f"seeds = {len(values)} models")
        res = fit_many(named_config(sw.model), ctx.train_dataset(), seeds=seeds,
                       hparams={sw.parameter: values}, out_dir=rd / "sweep",
                       resume=not args.force, overwrite=args.force,
                       progress=cfg.run.progress, max_epochs=sw.max_epochs or None)
        import pandas as pd
        table = pd.DataFrame({sw.parameter: values, "seed": seeds,
                              "best_val_corr": np.asarray(res.best_score),
                              "best_epoch": np.asarray(res.best_epoch),
                              "stopped": np.asarray(res.stopped)})
        table.to_csv(rd / "sweep" / "summary.csv", index=False)
        rd.log.info(table.to_string(index=False))
        rd.log.info(f"summary: {rd / 'sweep' / 'summary.csv'}")
    finally:
        rd.close()
    return 0
