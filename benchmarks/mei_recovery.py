"""MEI and optimal-Gabor recovery on the digital twin: on the true neurons and through a
model trained on the twin's data. Prints (and optionally writes) one JSON report.

    .venv/bin/python benchmarks/mei_recovery.py [--out results.json] [--quick]

Steps:
  1. simulate the 300-neuron twin (seed 0, 4000 train / 500 validation / 100 x 10 test);
  2. MEIs of the TRUE neurons (``recipes.norm`` at ``twin.meta['norm_budget']``) and their
     recovery scores (Pearson r with the true optimum for simple cells, phase-invariant match
     for complex cells, fraction of the true maximum at the same budget, ratio to the best
     natural test image); optimal Gabors of the true neurons (orientation / SF errors);
  3. ``jaxsel.fit('small', ds)``, then the same MEIs and Gabors through the model,
     scored against the truth (the MEI is shown to the TRUE neuron at the same budget).

Acceptance (issue): truth r >= 0.95 simple, match >= 0.9 complex, Gabor orientation error
<= 10 deg, SF within 15 %; model r >= 0.8 simple, >= 0.7 complex, MEI drives the true neuron
to >= 0.8 of its maximum and >= 1.5 x its best natural test image (medians).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def _median(a):
    a = np.asarray(a, float)
    a = a[np.isfinite(a)]
    return float(np.median(a)) if a.size else None


def mei_block(meis, twin, idx, nat, seconds) -> dict:
    from jaxsel.insilico._recovery import mei_recovery, summarize

    rec = mei_recovery(meis, twin, idx, natural_images=nat)
    kind = rec["kind"].values
    sc = {
        "seconds": round(seconds, 1),
        "r_simple_median": _median(rec["pearson_r"].values[kind == "simple"]),
        "phase_match_complex_median": _median(rec["phase_match"].values[kind == "complex"]),
        "r_suppressed_median": _median(rec["pearson_r"].values[kind == "suppressed"]),
    }
    for name, kinds in [
        ("simple_complex", ("simple", "complex")),
        ("responsive", ("simple", "complex", "suppressed")),
    ]:
        sel = np.isin(kind, kinds)
        sc[f"frac_true_max_median_{name}"] = _median(rec["frac_true_max"].values[sel])
        sc[f"natural_ratio_median_{name}"] = _median(rec["natural_ratio"].values[sel])
    sc["by_kind"] = summarize(rec)
    return sc


def gabor_block(og, twin, idx, seconds) -> dict:
    from jaxsel.insilico._recovery import gabor_recovery

    rec = gabor_recovery(og, twin, idx)
    kind = rec["kind"].values
    out = {"seconds": round(seconds, 1)}
    for k in ("simple", "complex", "suppressed"):
        out[f"theta_error_deg_median_{k}"] = _median(rec["theta_error_deg"].values[kind == k])
        out[f"sf_rel_error_median_{k}"] = _median(rec["sf_rel_error"].values[kind == k])
    sel = np.isin(kind, ("simple", "complex"))
    out["theta_error_deg_median_simple_complex"] = _median(rec["theta_error_deg"].values[sel])
    out["sf_rel_error_median_simple_complex"] = _median(rec["sf_rel_error"].values[sel])
    return out


def run(args) -> dict:
    import jax

    from jaxsel.data import unique_images
    from jaxsel.data._twin_simulate import simulate
    from jaxsel.insilico import recipes
    from jaxsel.insilico._cross_activation import cross_activation, diagonal_selectivity
    from jaxsel.insilico._mei import optimize_meis
    from jaxsel.insilico._optimal_gabor import optimal_gabors
    from jaxsel.insilico._recovery import twin_model

    report = {"device": str(jax.devices()[0]), "args": vars(args)}
    t0 = time.time()
    n = 60 if args.quick else 300
    kw = dict(n_train=1000, n_validation=200, n_test=50) if args.quick else {}
    ds, twin = simulate(seed=0, n_neurons=n, **kw)
    report["simulate_seconds"] = round(time.time() - t0, 1)
    shape = (int(ds.sizes["y"]), int(ds.sizes["x"]))
    norm = float(twin.meta["norm_budget"])
    nat = unique_images(ds, "test").values
    idx = np.arange(n)
    cfg = recipes.norm(norm, steps=args.steps)
    report["norm_budget"] = norm
    report["kinds"] = {k: int((twin.kinds == k).sum()) for k in np.unique(twin.kinds)}

    # ---- the truth function itself
    fn, p = twin_model(twin)
    t = time.time()
    meis = optimize_meis(fn, p, idx, config=cfg, image_shape=shape, seeds=args.seeds)
    report["truth_mei"] = mei_block(meis, twin, idx, nat, time.time() - t)
    t = time.time()
    og = optimal_gabors(fn, p, shape, norm=norm, neurons=idx, steps=args.gabor_steps)
    report["truth_gabor"] = gabor_block(og, twin, idx, time.time() - t)
    print(json.dumps({k: report[k] for k in ("truth_mei", "truth_gabor")}, indent=1), flush=True)

    # ---- through a model trained on the twin
    try:
        from jaxsel.train._fit import fit
    except ImportError as err:  # pragma: no cover
        report["model"] = f"unavailable: {err}"
        return report
    t = time.time()
    done = args.model_dir / "fit_done.json" if args.model_dir else None
    if done is not None and done.is_file():  # reuse a finished fit
        from jaxsel.train._fit import load_fit

        res = load_fit(args.model_dir)
        report["fit"] = json.loads(done.read_text())
    else:
        res = fit(
            args.config,
            ds,
            seed=0,
            max_epochs=args.max_epochs,
            progress=args.progress,
            out_dir=args.model_dir,
            overwrite=True,
        )
        report["fit"] = {
            "config": args.config,
            "seconds": round(time.time() - t, 1),
            "best_val_correlation": float(res.best_score),
            "best_epoch": int(res.best_epoch),
            "stopped": res.stopped,
        }
        if done is not None:
            done.write_text(json.dumps(report["fit"]))
    print(json.dumps(report["fit"]), flush=True)
    mfn, mp = res.response_fn()
    variants = {
        "norm": cfg,
        "precond": cfg.replace(precondition_alpha=1.0, name="norm+precondition"),
        "blur": cfg.replace(blur=(2.0, 0.0), name="norm+blur"),
    }
    for key in args.model_recipes.split(","):
        name, mcfg = f"model_mei_{key}", variants[key]
        t = time.time()
        mm = optimize_meis(
            mfn, mp, idx, config=mcfg, image_shape=(1,) + shape, seeds=args.model_seeds
        )
        report[name] = mei_block(mm, twin, idx, nat, time.time() - t)
        ca = cross_activation(mfn, mp, mm)
        resp = twin.kinds != "unresponsive"
        report[name]["cross_activation_diagonal_fraction_responsive"] = diagonal_selectivity(
            ca[resp][:, resp]
        )
        print(json.dumps({name: report[name]}, indent=1), flush=True)
    t = time.time()
    mg = optimal_gabors(mfn, mp, shape, norm=norm, neurons=idx, steps=args.gabor_steps)
    report["model_gabor"] = gabor_block(mg, twin, idx, time.time() - t)
    report["total_seconds"] = round(time.time() - t0, 1)
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--out", type=Path, help="write the JSON report here")
    ap.add_argument("--quick", action="store_true", help="60 neurons, small data (smoke run)")
    ap.add_argument("--config", default="small", help="named training config")
    ap.add_argument("--max-epochs", type=int, default=None, help="cap training epochs")
    ap.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="checkpoint folder: a finished fit there is reused, else one is saved",
    )
    ap.add_argument("--progress", action="store_true", help="show the training progress bar")
    ap.add_argument("--steps", type=int, default=300, help="MEI ascent steps")
    ap.add_argument("--seeds", type=int, default=2, help="MEI starts per neuron")
    ap.add_argument("--model-seeds", type=int, default=1, help="MEI starts per neuron (model)")
    ap.add_argument(
        "--model-recipes",
        default="norm,precond",
        help="comma list of model MEI variants: norm, precond (FFT 1/|k|), blur",
    )
    ap.add_argument("--gabor-steps", type=int, default=200, help="Gabor ascent steps")
    args = ap.parse_args(argv)
    report = run(args)
    text = json.dumps(report, indent=1, default=str)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
