"""The JAX side of the benchmark: one workload per process (peak RSS is per workload).

``python benchmarks/jax_side.py --workload lurz_train --exchange DIR --out FILE [--quick]``
writes ``DIR/<workload>.npz`` (weights, inputs and JAX results for the equivalence checks)
and the timings to ``FILE``. Models come from ``jaxsel`` itself (``build_model``,
``make_train_step``, ``optimize_meis``); only the per-neuron CNN is defined here.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
import jax
import jax.numpy as jnp
import numpy as np
import workloads as W
from equivalence import flatten

from jaxsel.models._config import ModelConfig
from jaxsel.models._model import build_model
from jaxsel.train._config import Config, TrainConfig, named_config
from jaxsel.train._step import (
    make_hparams,
    make_optimizer,
    make_predict,
    make_train_step,
    set_learning_rate,
)


def sync(r):
    return jax.block_until_ready(r)


def device_info() -> dict:
    d = jax.devices()[0]
    return {
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device": str(d),
        "device_kind": getattr(d, "device_kind", ""),
        "n_devices": jax.device_count(),
    }


def peak_device_mib():
    try:
        s = jax.devices()[0].memory_stats()
        return s["peak_bytes_in_use"] / 2**20 if s and "peak_bytes_in_use" in s else None
    except Exception:
        return None


def get_config(name: str) -> Config:
    if name == "lurz":
        return Config("lurz", ModelConfig(**W.LURZ_MODEL), TrainConfig(batch_size=64))
    return named_config(name)


def cfg_dict(cfg: Config) -> dict:
    m = cfg.model
    return {
        "layers": m.layers,
        "hidden_channels": m.hidden_channels,
        "input_kern": m.input_kern,
        "hidden_kern": m.hidden_kern,
        "batch_norm": m.batch_norm,
        "stack": None if m.stack is None else list(m.stack),
        "final_nonlinearity": m.final_nonlinearity,
        "elu_offset": m.elu_offset,
        "laplace_normalized": m.laplace_normalized,
        "gauss_type": m.gauss_type,
        "depth_separable": m.depth_separable,
        "skip": m.skip,
        "pooling": m.pooling,
        "hidden_pooling": m.hidden_pooling,
        "readout": m.readout,
        "lr": cfg.train.lr,
        "eps": cfg.train.eps,
        "loss": cfg.train.loss,
    }


def data(key, b, h, w, n):
    kx, kr = jax.random.split(key)
    x = jax.random.normal(kx, (b, 1, h, w), jnp.float32)
    r = jax.random.poisson(kr, 1.0, (b, n)).astype(jnp.float32)
    return x, r


def setup_model(cfgname, n, h, w, seed=0):
    cfg = get_config(cfgname)
    model = build_model(cfg.model, image_shape=(1, h, w), n_neurons=n)
    params, state = model.init(jax.random.PRNGKey(seed), mean_response=np.ones(n, np.float32))
    return cfg, model, params, state


# ------------------------------------------------------------------ train step (1, 2)
def equivalence_train(cfg, model, params, state, x, r, hp, path):
    """Forward / loss / parameter and input gradients in eval mode (random BN running stats)
    and in train mode (BN batch statistics; readout sigma = 0 so positions are mu)."""
    key = jax.random.PRNGKey(7)
    st = jax.tree.map(lambda a: a, state)
    if "batch_stats" in st:
        leaves, tdef = jax.tree.flatten(st["batch_stats"])
        ks = jax.random.split(key, len(leaves))
        new = [
            (
                0.2 * jax.random.normal(k, a.shape)
                if i % 2 == 0
                else 0.5 + jax.random.uniform(k, a.shape)
            )
            for i, (k, a) in enumerate(zip(ks, leaves, strict=True))
        ]
        # flatten order is (mean, var) per BN layer: dict keys sorted
        st = {**st, "batch_stats": jax.tree.unflatten(tdef, new)}
    p_train = jax.tree.map(lambda a: a, params)
    p_train["readout"] = {
        **p_train["readout"],
        "sigma": jnp.zeros_like(p_train["readout"]["sigma"]),
    }
    # perturb readout positions/features so the check is not at a symmetric init point
    kk = jax.random.split(key, 3)
    for p in (params, p_train):
        p["readout"] = {
            **p["readout"],
            "features": p["readout"]["features"]
            * (1 + 0.5 * jax.random.normal(kk[0], p["readout"]["features"].shape)),
        }
    out = {}
    for mode, p, s in (("eval", params, st), ("train", p_train, state)):

        def objective(p, s, x, r, hp, train=mode == "train"):
            rates, _ = model.apply(p, s, x, train=train, rng=jax.random.PRNGKey(1))
            data = jnp.sum(rates - r * jnp.log(rates + cfg.train.eps))
            return hp["loss_scale"] * data + model.regularizer(p, hp), rates

        (loss, rates), (gp, gx) = jax.jit(
            jax.value_and_grad(objective, argnums=(0, 2), has_aux=True)
        )(p, s, x, r, hp)
        out.update({f"{mode}/rates": rates, f"{mode}/loss": loss, f"{mode}/grad_x": gx})
        out.update({f"{mode}/grad/{k}": v for k, v in flatten(gp).items()})
        out.update({f"{mode}/params/{k}": v for k, v in flatten(p).items()})
        out.update({f"{mode}/state/{k}": v for k, v in flatten(s).items()})
    out.update({"x": x, "r": r, **{f"hp/{k}": v for k, v in hp.items()}})
    np.savez(
        path, **{k: np.asarray(v) for k, v in out.items()}, cfg=np.array(json.dumps(cfg_dict(cfg)))
    )


def train_step_runner(model, cfg, params, state, x, r, n_train=4000, conv="xla"):
    """A compiled train step (``conv``: how the core's convolutions are computed, see
    :func:`jaxsel.models.conv_implementation`) and its compile time."""
    tx = make_optimizer(cfg.train.lr)
    step = make_train_step(model, cfg.train, tx, conv=conv)
    opt = tx.init(params)
    hp = make_hparams(cfg, n_train)
    mask = jnp.ones(x.shape[0], bool)
    rng = jax.random.PRNGKey(3)
    t = time.perf_counter()
    compiled = (
        jax.jit(step, donate_argnums=(0, 1, 2))
        .lower(params, state, opt, x, r, mask, rng, hp)
        .compile()
    )
    compile_s = time.perf_counter() - t
    carry = [jax.tree.map(jnp.copy, params), jax.tree.map(jnp.copy, state), opt]

    def call():
        p, s, o, m = compiled(carry[0], carry[1], carry[2], x, r, mask, rng, hp)
        carry[:] = [p, s, o]
        return m["loss"]

    return call, compile_s, hp


# JAX train-step variants: "jit" = XLA's convolutions; "jit_auto" = conv="auto" (on CPU
# the kernel gradients of wide large-kernel layers by FFT, jaxsel.models.cpu_conv_form;
# on other backends identical to "jit", so skipped there).
TRAIN_JAX = {"jit": "xla", "jit_auto": "auto"}


def check_conv_auto(model, cfg, params, state, x, r, hp) -> list:
    """conv="auto" gives XLA's loss and gradients (to float32 rounding)."""
    from equivalence import compare, require

    from jaxsel.models import conv_implementation

    def objective(p, conv):
        with conv_implementation(conv):
            rates, _ = model.apply(p, state, x, train=True, rng=jax.random.PRNGKey(1))
        data = jnp.sum(rates - r * jnp.log(rates + cfg.train.eps))
        return hp["loss_scale"] * data + model.regularizer(p, hp)

    out = {
        c: jax.jit(jax.value_and_grad(lambda p, c=c: objective(p, c)))(params)
        for c in ("xla", "auto")
    }
    recs = [compare("conv_auto/loss", out["auto"][0], out["xla"][0])]
    ga, gx = flatten(out["auto"][1]), flatten(out["xla"][1])
    recs += [compare(f"conv_auto/grad/{k}", ga[k], gx[k]) for k in gx]
    require(recs)
    return recs


def run_train(w, ex):
    h, wd = w["image"]
    cfg, model, params, state = setup_model(w["config"], w["n_neurons"], h, wd)
    x, r = data(jax.random.PRNGKey(1), w["batch"], h, wd, w["n_neurons"])
    variants = {k: v for k, v in TRAIN_JAX.items() if v == "xla" or jax.default_backend() == "cpu"}
    res, checks = {}, []
    gfl = 3 * W.conv_flops(_flops_cfg(cfg), w["batch"], w["image"]) / 1e9
    for name, conv in variants.items():
        call, compile_s, hp = train_step_runner(model, cfg, params, state, x, r, conv=conv)
        if name == "jit" and ex is not None:
            equivalence_train(cfg, model, params, state, x, r, hp, ex)
        if conv != "xla" and ex is not None:
            checks += check_conv_auto(model, cfg, params, state, x, r, hp)
        t = common.time_calls(call, w["repeats"], sync=sync)
        res[name] = {
            "compile_s": compile_s,
            **t,
            "items_per_s": w["batch"] / t["median_s"],
            "unit": "images/s",
            "gflops": gfl,
            "conv": conv,
        }
    return res, checks


def _flops_cfg(cfg):
    m = cfg.model
    return {
        "layers": m.layers,
        "hidden_channels": m.hidden_channels,
        "input_kern": m.input_kern,
        "hidden_kern": m.hidden_kern,
    }


# ------------------------------------------------------------------ inference (6)
def run_inference(w, ex):
    h, wd = w["image"]
    cfg, model, params, state = setup_model(w["config"], w["n_neurons"], h, wd)
    x, _ = data(jax.random.PRNGKey(1), w["batch"], h, wd, 1)
    pred = make_predict(model)
    t0 = time.perf_counter()
    compiled = jax.jit(pred).lower(params, state, x).compile()
    compile_s = time.perf_counter() - t0
    if ex is not None:
        np.savez(
            ex,
            x=np.asarray(x),
            rates=np.asarray(compiled(params, state, x)),
            **{f"params/{k}": v for k, v in flatten(params).items()},
            **{f"state/{k}": v for k, v in flatten(state).items()},
            cfg=np.array(json.dumps(cfg_dict(cfg))),
        )
    t = common.time_calls(lambda: compiled(params, state, x), w["repeats"], sync=sync)
    return {
        "jit": {
            "compile_s": compile_s,
            **t,
            "items_per_s": w["batch"] / t["median_s"],
            "unit": "images/s",
            "gflops": W.conv_flops(_flops_cfg(cfg), w["batch"], w["image"]) / 1e9,
        }
    }


# ------------------------------------------------------------------ per-neuron CNNs (3)
def per_neuron_config(w) -> Config:
    """The tiny per-neuron CNN: a jaxsel model (BN core + full Gaussian readout) with 1 neuron."""
    return Config(
        "per_neuron",
        ModelConfig(
            layers=2, hidden_channels=w["channels"], input_kern=w["k1"], hidden_kern=w["k2"]
        ),
        TrainConfig(batch_size=w["batch"], lr=w["lr"]),
    )


def per_neuron_setup(w, m):
    h, wd = w["image"]
    cfg = per_neuron_config(w)
    model = build_model(cfg.model, image_shape=(1, h, wd), n_neurons=1)
    keys = jax.random.split(jax.random.PRNGKey(0), m)
    Ps, Ss = jax.vmap(lambda k: model.init(k, mean_response=np.ones(1, np.float32)))(keys)
    tx = make_optimizer(cfg.train.lr)
    Os = jax.vmap(tx.init)(Ps)
    hp1 = make_hparams(cfg, 4000)
    HP = {k: jnp.broadcast_to(v, (m,)) for k, v in hp1.items()}
    x = jax.random.normal(jax.random.PRNGKey(1), (w["batch"], 1, h, wd))
    R = jax.random.poisson(jax.random.PRNGKey(2), 1.0, (m, w["batch"], 1)).astype(jnp.float32)
    mask = jnp.ones(w["batch"], bool)
    rngs = jax.random.split(jax.random.PRNGKey(3), m)
    return dict(cfg=cfg, model=model, tx=tx, args=(Ps, Ss, Os, x, R, mask, rngs, HP), hp1=hp1)


def per_neuron_variants(w, m, S, which=None):
    """Compiled per-neuron formulations: ``{name: (call, compile_s)}`` (or ``(None, error)``).

    ``vmap`` / ``loop``: the one-model step vmapped / called per model; ``*_fft``: the same
    with ``conv="auto"`` (FFT convolutions where they are faster on CPU, as ``fit_many``);
    ``fused_*``: :func:`jaxsel.train.make_per_neuron_step` with ``conv=*``.
    """
    from concurrent.futures import ThreadPoolExecutor

    from jaxsel.models._conv_impl import compiler_options
    from jaxsel.train._many_steps import loop_threads
    from jaxsel.train._per_neuron import make_per_neuron_step

    model, cfg, tx = S["model"], S["cfg"], S["tx"]
    args = S["args"]
    which = which or w.get("jax_variants", W.PER_NEURON_JAX)
    fused = {f"fused_{c}": c for c in ("xla", "shifted", "fft")}
    out = {}
    for name in which:
        if name.startswith("loop"):
            continue
        conv = "auto" if name == "vmap_fft" else fused.get(name, "xla")
        t = time.perf_counter()
        try:
            if name in fused:
                fn = make_per_neuron_step(model, cfg.train, tx, conv=fused[name])
            else:
                fn = jax.vmap(
                    make_train_step(model, cfg.train, tx, conv=conv),
                    in_axes=(0, 0, 0, None, 0, None, 0, 0),
                )
            c = (
                jax.jit(fn, donate_argnums=(0, 1, 2), compiler_options=compiler_options(conv))
                .lower(*args)
                .compile()
            )
        except Exception as e:
            out[name] = (None, f"{type(e).__name__}: {e}"[:300])
            continue
        cs = time.perf_counter() - t
        carry = [jax.tree.map(jnp.copy, a) for a in args[:3]]

        def call(c=c, carry=carry):
            p, s, o, met = c(*carry, *args[3:])
            carry[:] = [p, s, o]
            return met["loss"]

        out[name] = (call, cs)
    for name in [n for n in which if n.startswith("loop")]:
        Ps, Ss, Os, x, R, mask, rngs, HP = args
        sl = [jax.tree.map(lambda a: a[i], (Ps, Ss, Os, R, rngs, HP)) for i in range(m)]
        single = make_train_step(model, cfg.train, tx, conv="auto" if name == "loop_fft" else "xla")
        t = time.perf_counter()
        opts = compiler_options("auto" if name == "loop_fft" else "xla")
        c1 = (
            jax.jit(single, compiler_options=opts)
            .lower(sl[0][0], sl[0][1], sl[0][2], x, sl[0][3], mask, sl[0][4], sl[0][5])
            .compile()
        )
        cs = time.perf_counter() - t

        # loop_fft runs as fit_many does on CPU: models dealt to loop_threads() threads
        nthreads = min(loop_threads(), m) if name == "loop_fft" else 1

        def loop(c1=c1, sl=sl, nthreads=nthreads):
            def run(ids):
                met = None
                for i in ids:
                    p, s, o, r, g, hp = sl[i]
                    p, s, o, met = c1(p, s, o, x, r, mask, g, hp)
                    sl[i] = (p, s, o, r, g, hp)
                return jax.block_until_ready(met["loss"])

            if nthreads == 1:
                return run(range(m))
            with ThreadPoolExecutor(nthreads) as pool:
                return list(pool.map(run, [range(j, m, nthreads) for j in range(nthreads)]))[-1]

        out[name] = (loop, cs)
    return out


def run_per_neuron(w, ex):
    m = w["n_models"]
    S = per_neuron_setup(w, m)
    Ps, Ss, _Os, x, R, mask, _rngs, _HP = S["args"]
    if ex is not None:
        from equivalence import compare, require

        from jaxsel.train._per_neuron import make_per_neuron_step

        # JAX-internal: the fused step with FFT convolutions (and the one-model step with
        # conv="auto", as fit_many on CPU) equal the vmapped single-model step
        a4 = tuple(
            a if i in (3, 5) else jax.tree.map(lambda t: t[:4], a) for i, a in enumerate(S["args"])
        )  # 4 models: a cheap check
        # jax 0.11 on CPU: this FFT program never returned (threads all waiting), so the
        # fused step is checked in its XLA form there (same numbers, grouped convolutions)
        fused_conv = (
            "fft" if jax.__version_info__ >= (0, 12) or jax.default_backend() != "cpu" else "xla"
        )
        f = jax.jit(make_per_neuron_step(S["model"], S["cfg"].train, S["tx"], conv=fused_conv))(*a4)
        v = jax.jit(
            jax.vmap(
                make_train_step(S["model"], S["cfg"].train, S["tx"]),
                in_axes=(0, 0, 0, None, 0, None, 0, 0),
            )
        )(*a4)
        recs = [compare("fused_vs_vmap/loss", f[3]["loss"], v[3]["loss"])]
        recs += [
            compare(f"fused_vs_vmap/params/{k}", a, flatten(v[0])[k], rtol=1e-3, atol=1e-5)
            for k, a in flatten(f[0]).items()
        ]
        one = jax.tree.map(lambda t: t[0], tuple(a4[i] for i in (0, 1, 2, 4, 6, 7)))
        fa = jax.jit(make_train_step(S["model"], S["cfg"].train, S["tx"], conv="auto"))(
            *one[:3], x, one[3], mask, *one[4:]
        )
        recs += [
            compare(
                f"loop_fft_vs_loop/params/{k}",
                a,
                jax.tree.map(lambda t: t[0], flatten(v[0]))[k],
                rtol=1e-3,
                atol=1e-5,
            )
            for k, a in flatten(fa[0]).items()
        ]
        require(recs)
        # torch mirror check on model 0 (same weights, same objective)
        p0, s0 = jax.tree.map(lambda a: a[0], (Ps, Ss))
        equivalence_train(S["cfg"], S["model"], p0, s0, x, R[0], S["hp1"], ex)
        with np.load(ex) as z:
            extra = {k: z[k] for k in z.files}
        np.savez(
            ex,
            **extra,
            **{f"stack/params/{k}": v for k, v in flatten(Ps).items()},
            **{f"stack/state/{k}": v for k, v in flatten(Ss).items()},
            R=np.asarray(R),
            fused_vs_vmap=np.array(json.dumps(recs, default=float)),
        )
    res = {}
    gfl = 3 * W.per_neuron_flops(w, w["batch"] * m, w["image"]) / 1e9
    for name, (call, cs) in per_neuron_variants(w, m, S).items():
        if call is None:
            res[name] = {"error": cs}
            continue
        t = common.time_calls(call, w["repeats"], sync=sync)
        res[name] = {
            "compile_s": cs,
            **t,
            "items_per_s": m / t["median_s"],
            "unit": "model-steps/s",
            "gflops": gfl,
        }
    return res


def sweep_vmap_check(step, args, m) -> list:
    """The vmapped sweep step gives every model the parameters of its own single-model
    step (first 3 models; the loss exactly as computed, parameters to rounding)."""
    from equivalence import compare, require

    Ps, Ss, Os, x, r, mask, rngs, HP = args
    vm = jax.jit(jax.vmap(step, in_axes=(0, 0, 0, None, None, None, 0, 0)))(*args)
    one = jax.jit(step)
    recs = []
    for i in range(min(m, 3)):
        p, s, o, hp = jax.tree.map(lambda a, i=i: a[i], (Ps, Ss, Os, HP))
        got = one(p, s, o, x, r, mask, rngs[i], hp)
        recs.append(compare(f"sweep_vmap/m{i}/loss", vm[3]["loss"][i], got[3]["loss"]))
        fv, fo = flatten(jax.tree.map(lambda a, i=i: a[i], vm[0])), flatten(got[0])
        recs += [compare(f"sweep_vmap/m{i}/params/{k}", fv[k], fo[k]) for k in fo]
    require(recs)
    return recs


# ------------------------------------------------------------------ MEIs (4)
def mei_fn(p, raw):
    from jaxsel.models._model import Encoder

    return Encoder(p["cfg"], p["n"]).apply(
        {"params": p["params"], **p["state"]}, (raw - 127.5) / 127.5, train=False
    )


def run_mei(w, ex):
    from jaxsel.insilico._mei import MEIConfig, optimize_meis

    h, wd = w["image"]
    cfg, model, params, state = setup_model(w["config"], w["model_neurons"], h, wd)
    module = model.module

    def fn(p, raw):
        return module.apply(
            {"params": p["params"], **p["state"]}, (raw - 127.5) / 127.5, train=False
        )

    P = {"params": params, "state": state}
    mcfg = MEIConfig(
        steps=w["steps"], optimizer="adam", lr=w["lr"], start="noise", norm=w["norm"], patience=0
    )
    if ex is not None:
        n = min(8, w["model_neurons"])
        u = 0.1 * jax.random.normal(jax.random.PRNGKey(5), (n, 1, h, wd))
        tg = jnp.arange(n) * (w["model_neurons"] // n)

        def obj(u1, t):
            from jaxsel.insilico._mei_parts import fix_norm

            img = fix_norm(u1[None], w["norm"], True)
            return fn(P, 127.5 + 127.5 * img)[0, t]

        vals, gu = jax.vmap(jax.value_and_grad(obj))(u, tg)
        np.savez(
            ex,
            u=np.asarray(u),
            targets=np.asarray(tg),
            act=np.asarray(vals),
            grad_u=np.asarray(gu),
            norm=w["norm"],
            **{f"params/{k}": v for k, v in flatten(params).items()},
            **{f"state/{k}": v for k, v in flatten(state).items()},
            cfg=np.array(json.dumps(cfg_dict(cfg))),
        )
    res = {}
    flops_img = 3 * W.conv_flops(_flops_cfg(cfg), 1, w["image"]) / 1e9
    for n in w["neurons"]:
        chunk = min(w["chunk"], n)
        t0 = time.perf_counter()
        optimize_meis(
            fn, P, np.arange(chunk), config=mcfg, image_shape=(1, h, wd), chunk_size=chunk
        )
        first = time.perf_counter() - t0

        def call():
            return optimize_meis(
                fn, P, np.arange(n), config=mcfg, image_shape=(1, h, wd), chunk_size=chunk
            )["activation"].values

        t = common.time_calls(call, w["repeats"], warmup=0)
        res[f"vmap_n{n}"] = {
            "first_call_s": first,
            **t,
            "items_per_s": n * w["steps"] / t["median_s"],
            "unit": "neuron-steps/s",
            "neurons": n,
            "chunk": chunk,
            "gflops": flops_img * n * w["steps"],
        }
    return res


# ------------------------------------------------------------------ sweep (5)
def sweep_setup(w):
    h, wd = w["image"]
    m = w["n_models"]
    cfg, model, _params, _state = setup_model(w["config"], w["n_neurons"], h, wd)
    grid = W.sweep_grid(m)
    keys = jax.random.split(jax.random.PRNGKey(0), m)
    mr = np.ones(w["n_neurons"], np.float32)
    Ps, Ss = jax.vmap(lambda k: model.init(k, mean_response=mr))(keys)
    tx = make_optimizer(cfg.train.lr)
    Os = jax.vmap(tx.init)(Ps)
    Os = set_learning_rate(Os, jnp.asarray([g[0] for g in grid], jnp.float32))
    hp1 = make_hparams(cfg, 4000)
    HP = {k: jnp.broadcast_to(v, (m,)) for k, v in hp1.items()}
    HP["gamma_readout"] = jnp.asarray([g[1] for g in grid], jnp.float32)
    x, r = data(jax.random.PRNGKey(1), w["batch"], h, wd, w["n_neurons"])
    mask = jnp.ones(w["batch"], bool)
    rngs = jax.random.split(jax.random.PRNGKey(3), m)
    return cfg, model, tx, grid, (Ps, Ss, Os, x, r, mask, rngs, HP)


def sweep_exchange(cfg, model, step, grid, args, path):
    """Per grid point: weights (readout sigma 0, so positions are the means), its
    hyperparameters, the JAX loss and gradients, and the parameters after one step of the
    sweep's own step function (its learning rate, its readout penalty)."""
    Ps, Ss, Os, x, r, mask, rngs, HP = args
    out = {"x": x, "r": r, "grid": np.asarray(grid)}

    def objective(p, s, hp):
        rates, _ = model.apply(p, s, x, train=True, rng=jax.random.PRNGKey(1))
        data = jnp.sum(rates - r * jnp.log(rates + cfg.train.eps))
        return hp["loss_scale"] * data + model.regularizer(p, hp)

    vg = jax.jit(jax.value_and_grad(objective))
    one = jax.jit(step)
    for i in range(len(grid)):
        p, s, o, hp = jax.tree.map(lambda a, i=i: a[i], (Ps, Ss, Os, HP))
        out[f"m{i}/sigma"] = p["readout"]["sigma"]
        p = {**p, "readout": {**p["readout"], "sigma": jnp.zeros_like(p["readout"]["sigma"])}}
        loss, g = vg(p, s, hp)
        new = one(p, s, o, x, r, mask, rngs[i], hp)[0]
        out[f"m{i}/loss"] = loss
        out.update({f"m{i}/params/{k}": v for k, v in flatten(p).items()})
        out.update({f"m{i}/state/{k}": v for k, v in flatten(s).items()})
        out.update({f"m{i}/grad/{k}": v for k, v in flatten(g).items()})
        out.update({f"m{i}/new/{k}": v for k, v in flatten(new).items()})
        out.update({f"m{i}/hp/{k}": v for k, v in hp.items()})
    np.savez(
        path, **{k: np.asarray(v) for k, v in out.items()}, cfg=np.array(json.dumps(cfg_dict(cfg)))
    )


def run_sweep(w, ex):
    """The sweep's grid of models, one train step each: a loop over one compiled step (also
    dealt to two dispatch threads, as fit_many does on CPU) and ``jax.vmap`` of the step
    (grouped convolutions; the GPU form). ``w["jax_variants"]`` picks which run."""
    from concurrent.futures import ThreadPoolExecutor

    cfg, model, tx, grid, args = sweep_setup(w)
    Ps, Ss, Os, x, r, mask, rngs, HP = args
    m = len(grid)
    step = make_train_step(model, cfg.train, tx)
    if ex is not None:
        sweep_exchange(cfg, model, step, grid, args, ex)
    res = {}
    variants = w.get("jax_variants", ("loop", "loop_threads"))
    checks = sweep_vmap_check(step, args, m) if "vmap" in variants else []
    gfl = 3 * W.conv_flops(_flops_cfg(cfg), w["batch"] * m, w["image"]) / 1e9
    for name in variants:
        t0 = time.perf_counter()
        if name == "vmap":
            c = (
                jax.jit(
                    jax.vmap(step, in_axes=(0, 0, 0, None, None, None, 0, 0)),
                    donate_argnums=(0, 1, 2),
                )
                .lower(*args)
                .compile()
            )
            carry = [jax.tree.map(jnp.copy, a) for a in args[:3]]

            def call(c=c, carry=carry):
                p, s, o, met = c(*carry, *args[3:])
                carry[:] = [p, s, o]
                return met["loss"]

        else:
            sl = [jax.tree.map(lambda a, i=i: a[i], (Ps, Ss, Os, HP)) for i in range(m)]
            c1 = jax.jit(step).lower(*sl[0][:3], x, r, mask, rngs[0], sl[0][3]).compile()
            nthreads = 2 if name == "loop_threads" else 1

            def call(c1=c1, sl=sl, nthreads=nthreads):
                def run(ids):
                    met = None
                    for i in ids:
                        p, s, o, hp = sl[i]
                        p, s, o, met = c1(p, s, o, x, r, mask, rngs[i], hp)
                        sl[i] = (p, s, o, hp)
                    return jax.block_until_ready(met["loss"])

                if nthreads == 1:
                    return run(range(m))
                with ThreadPoolExecutor(nthreads) as pool:
                    parts = [range(j, m, nthreads) for j in range(nthreads)]
                    return list(pool.map(run, parts))[-1]

        cs = time.perf_counter() - t0
        t = common.time_calls(call, w["repeats"], sync=sync)
        res[name] = {
            "compile_s": cs,
            **t,
            "items_per_s": m / t["median_s"],
            "unit": "model-steps/s",
            "gflops": gfl,
        }
    return res, checks


# ------------------------------------------------------------------ scaling curves
def run_scale(w, ex):
    res = {}
    for pt in w["points"]:
        if w["of"] in ("train", "image", "batch"):
            n = pt if w["of"] == "train" else w["n_neurons"]
            h, wd = pt if w["of"] == "image" else w["image"]
            b = pt if w["of"] == "batch" else w["batch"]
            cfg, model, params, state = setup_model(w["config"], n, h, wd)
            x, r = data(jax.random.PRNGKey(1), b, h, wd, n)
            call, cs, _ = train_step_runner(model, cfg, params, state, x, r)
            t = common.time_calls(call, w["repeats"], sync=sync)
            key = f"{pt[0]}x{pt[1]}" if w["of"] == "image" else f"{w['of'][0]}{pt}"
            res[key] = {
                "x": pt[0] * pt[1] if w["of"] == "image" else pt,
                "compile_s": cs,
                **t,
                "items_per_s": b / t["median_s"],
                "unit": "images/s",
                "gflops": 3 * W.conv_flops(_flops_cfg(cfg), b, (h, wd)) / 1e9,
            }
        else:
            S = per_neuron_setup(w, pt)
            call, cs = per_neuron_variants(w, pt, S, which=(W.SCALE_MODELS_JAX,))[
                W.SCALE_MODELS_JAX
            ]
            t = common.time_calls(call, w["repeats"], sync=sync)
            res[f"m{pt}"] = {
                "x": pt,
                "compile_s": cs,
                **t,
                "items_per_s": pt / t["median_s"],
                "unit": "model-steps/s",
                "gflops": 3 * W.per_neuron_flops(w, w["batch"] * pt, w["image"]) / 1e9,
            }
    return res


def matmul_peak(n=2048, repeats=10):
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n))
    f = jax.jit(lambda a, b: a @ b)
    t = common.time_calls(lambda: f(a, a), repeats, warmup=2, sync=sync)
    return 2 * n**3 / t["min_s"] / 1e9  # best case: the peak


RUNNERS = {
    "train": run_train,
    "per_neuron": run_per_neuron,
    "mei": run_mei,
    "sweep": run_sweep,
    "inference": run_inference,
    "scale": run_scale,
}


def run_workload(name: str, quick: bool, sizes: str, exchange) -> dict:
    """The JAX side of one workload (``"matmul"``: the matmul peak) as a JSON-able dict;
    ``exchange``: the folder of the ``.npz`` files for the torch side's checks."""
    w = {"name": "matmul"} if name == "matmul" else common.load_workload(name, quick, sizes)
    ex = (
        Path(exchange) / f"{name}.npz"
        if name in W.WORKLOADS and not name.startswith("scale")
        else None
    )
    t0 = time.perf_counter()
    out = {"side": "jax", "workload": w, "versions": device_info(), "machine": common.machine()}
    if name == "matmul":
        out["matmul_gflops"] = matmul_peak(n=256 if quick else 2048)
    else:
        got = RUNNERS[w["kind"]](w, ex)
        out["results"], out["checks"] = got if isinstance(got, tuple) else (got, [])
    out["peak_rss_mib"] = common.peak_rss_mib()
    out["peak_device_mib"] = peak_device_mib()
    out["wall_s"] = time.perf_counter() - t0
    return out


def main():
    a = common.parse_args()
    common.write_json(a.out, run_workload(a.workload, a.quick, a.sizes, a.exchange))


if __name__ == "__main__":
    main()
