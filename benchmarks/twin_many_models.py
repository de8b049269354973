"""On the digital twin: (1) 100 per-neuron CNNs trained in ONE program; (2) an 8-value
learning-rate x 3-seed sweep in ONE program, with the seed-001 summary (CSV) and figures.

Per-neuron metric of the sweep: single-neuron Poisson information (bits) about a binary
stimulus label (grating orientation 0 vs 90 deg) from each model's rates to a grating set,
via jaxsel.measures.poisson_information. Writes to --out, prints a JSON summary.

    .venv/bin/python benchmarks/twin_many_models.py --out runs/many [--quick]
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from jaxsel.data._stimuli import grating
from jaxsel.data._twin_simulate import simulate
from jaxsel.measures._information import poisson_information, save_sweep_csv
from jaxsel.measures._sweep_summary import ranked_curves, sweep_summary
from jaxsel.train._many import fit_many
from jaxsel.train._per_neuron import bench_config
from jaxsel.train._sweep import member_metric, run_sweep
from jaxsel.viz._sweep_figures import (
    informative_counts_figure,
    ranked_curves_figure,
    save,
    score_figure,
)


def grating_set(shape, n_phase=8):
    imgs, labels = [], []
    for lab, theta in enumerate((0.0, np.pi / 2)):
        for sf in (0.04, 0.08):
            for ph in np.linspace(0, 2 * np.pi, n_phase, endpoint=False):
                g = np.asarray(grating(shape, theta, sf, ph, 1.0))
                imgs.append(127.5 + 127.5 * g)
                labels.append(lab)
    return np.asarray(imgs, np.float32)[:, None], np.asarray(labels)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/many_models")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    ap.add_argument("--max-epochs", type=int, default=None)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    q = a.quick
    n_neurons = 20 if q else 100
    ds, _twin = simulate(
        seed=0,
        n_neurons=n_neurons,
        n_train=200 if q else 2000,
        n_validation=50 if q else 300,
        n_test=10,
        test_repeats=2,
        shape=(18, 32) if q else (36, 64),
    )
    summary = {"n_neurons": n_neurons}
    max_ep = a.max_epochs or (2 if q else 30)

    # (1) one CNN per neuron, one program
    cfg = bench_config()
    t0 = time.perf_counter()
    per = fit_many(cfg, ds, seeds=0, targets="per_neuron", max_epochs=max_ep)
    summary["per_neuron"] = {
        "models": per.n_models,
        "seconds": time.perf_counter() - t0,
        "epochs_mean": float(per.summary()["epochs"].mean()),
        "val_corr_mean": float(np.mean(per.best_score)),
        "stopped": {s: int((per.stopped == s).sum()) for s in set(per.stopped.tolist())},
    }
    per.summary().to_dataframe().to_csv(out / "per_neuron_models.csv")

    # (2) 8 learning rates x 3 seeds, one program (all neurons per model)
    lrs = [float(v) for v in np.geomspace(3e-4, 3e-2, 8)]
    spec = {
        "base": cfg.replace(stack=None).to_dict(),
        "grid": {"lr": lrs},
        "seeds": [0, 1, 2],
        "name": "lr_sweep",
    }
    t0 = time.perf_counter()
    run = run_sweep(spec, ds, max_epochs=max_ep)
    summary["sweep"] = {
        "programs": len(run.fits),
        "models": int(run.results.best_score.size),
        "seconds": time.perf_counter() - t0,
    }
    imgs, labels = grating_set(tuple(ds.sizes[d] for d in ("y", "x")))

    def info(res, m):
        rates = res.member(m).predict(imgs)
        return poisson_information(np.maximum(rates, 0), labels).values

    metric = member_metric(run, info)
    table = sweep_summary(metric)
    save_sweep_csv(table, out / "lr_sweep_summary.csv")
    run.results.to_dataframe().to_csv(out / "lr_sweep_models.csv")
    curves = ranked_curves(metric)
    save(
        ranked_curves_figure(curves, hparam="lr", ylabel="I(s; R) [bit]"),
        out / "ranked_information.png",
    )
    save(informative_counts_figure(table, n_neurons=n_neurons), out / "informative_counts.png")
    save(score_figure(run.results, hparam="lr"), out / "val_score_vs_lr.png")
    summary["sweep"]["best_lr"] = float(
        run.results["lr"].values[int(np.nanargmax(run.results["best_score"].mean("seed").values))]
    )
    summary["sweep"]["val_corr_by_lr"] = run.results["best_score"].mean("seed").values.tolist()
    summary["files"] = sorted(p.name for p in out.iterdir())
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
