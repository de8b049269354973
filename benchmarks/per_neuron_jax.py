"""Benchmark: K per-neuron CNNs (jaxsel.train.make_per_neuron_step's config), training steps/s.

One "step" = every model does one Adam step on one batch (64 images 1x36x64, shared).
Compared: a Python loop over a jitted single-model step, with XLA's or FFT convolutions
(``conv="auto"``); vmap (grouped convs); the fused per-neuron step (first layer = one conv
with K x C outputs) with the other layers as XLA convs, FFTs or shifted matmuls. Prints
JSON. Usage:

    .venv/bin/python benchmarks/per_neuron_jax.py [--models 100] [--reps 3]
"""

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxsel.models._model import build_model
from jaxsel.train._per_neuron import bench_config, make_per_neuron_step
from jaxsel.train._step import make_hparams, make_optimizer, make_train_step


def setup(k, batch=64, shape=(36, 64)):
    cfg = bench_config()
    model = build_model(cfg.model, image_shape=(1,) + shape, n_neurons=1)
    keys = jax.random.split(jax.random.key(0), k)
    params, state = jax.vmap(lambda kk: model.init(kk))(keys)
    tx = make_optimizer(cfg.train.lr)
    opt = jax.vmap(tx.init)(params)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(batch, 1) + shape).astype(np.float32))
    r = jnp.asarray(rng.poisson(1.0, size=(k, batch, 1)).astype(np.float32))
    mask = jnp.ones(batch, bool)
    rngs = jax.random.split(jax.random.key(1), k)
    hp1 = make_hparams(cfg, 4000)
    hp = jax.tree.map(lambda a: jnp.full((k,), a), hp1)
    return cfg, model, tx, params, state, opt, x, r, mask, rngs, hp


def timeit(fn, reps):
    fn()  # compile + warm up
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return reps / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default="loop,loop_fft,vmap,fused_xla,fused_fft")
    a = ap.parse_args()
    k = a.models
    cfg, model, tx, params, state, opt, x, r, mask, rngs, hp = setup(k)
    out = {
        "models": k,
        "backend": jax.default_backend(),
        "devices": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "loadavg_before": os.getloadavg()[0],
    }
    take = lambda t, i: jax.tree.map(lambda v: v[i], t)  # noqa: E731
    ps = [take((params, state, opt, r, rngs, hp), i) for i in range(k)]

    def looper(conv):
        one = jax.jit(make_train_step(model, cfg.train, tx, conv=conv))

        def loop():
            res = [one(p, s, o, x, rr, mask, g, h) for p, s, o, rr, g, h in ps]
            jax.block_until_ready(res[-1])

        return loop

    fns = {"loop": looper("xla"), "loop_fft": looper("auto")}
    vm = jax.jit(
        jax.vmap(make_train_step(model, cfg.train, tx), in_axes=(0, 0, 0, None, 0, None, 0, 0))
    )
    fns["vmap"] = lambda: jax.block_until_ready(vm(params, state, opt, x, r, mask, rngs, hp))
    for conv in ("xla", "shifted", "fft"):
        f = jax.jit(make_per_neuron_step(model, cfg.train, tx, conv=conv))
        fns[f"fused_{conv}"] = lambda f=f: jax.block_until_ready(
            f(params, state, opt, x, r, mask, rngs, hp)
        )
    for name in a.only.split(","):
        t0 = time.perf_counter()
        out[f"{name}_steps_per_s"] = timeit(fns[name], a.reps)
        out[f"{name}_total_s"] = time.perf_counter() - t0
        print(name, out[f"{name}_steps_per_s"], "steps/s", flush=True)
    out["loadavg_after"] = os.getloadavg()[0]
    if "loop_steps_per_s" in out:
        for n in fns:
            if f"{n}_steps_per_s" in out:
                out[f"{n}_vs_loop"] = out[f"{n}_steps_per_s"] / out["loop_steps_per_s"]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
