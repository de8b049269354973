"""The PyTorch baseline: the same models as jaxsel, loading the JAX weights (``.npz``).

``python benchmarks/torch_side.py --workload NAME --exchange DIR --out FILE [--quick]`` runs
in the torch environment (no jax). It first recomputes the JAX results stored in
``DIR/NAME.npz`` with the same weights and inputs (forward, loss, parameter gradients, input
gradients); a mismatch raises ``EquivalenceError`` (exit status 3) before anything is timed.

Models mirror ``jaxsel.models``: stacked core (conv without bias -> BatchNorm -> ELU, 'same'
padding), full Gaussian readout (``grid = clip(mu + sigma z)``, ``grid_sample`` with
``align_corners=True``), ``ELU + 1``; objective ``loss_scale * sum(poisson) + gamma_input *
laplace + gamma_hidden * group_sparsity + gamma_readout * L1``; Adam (same betas/eps as optax);
``mu`` clipped to [-1, 1] after each update; a non-finite step is skipped. Parameters are a
dict of leaf tensors keyed like the JAX tree (conv kernels stored OIHW).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from equivalence import EquivalenceError, compare, require

DEV = torch.device("cuda" if torch.cuda.is_available() else "cpu")
LAP = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]]).view(1, 1, 3, 3)


def sync(r=None):
    if DEV.type == "cuda":
        torch.cuda.synchronize()
    return r


def T(a, grad=False):
    t = torch.as_tensor(np.asarray(a), dtype=torch.float32, device=DEV).clone()
    return t.requires_grad_(grad)


def to_torch_layout(key, a):
    a = np.asarray(a)
    if key.endswith("kernel") and a.ndim == 4:  # HWIO -> OIHW
        return a.transpose(3, 2, 0, 1)
    return a


def to_jax_layout(key, a):
    a = np.asarray(a)
    if key.endswith("kernel") and a.ndim == 4:  # OIHW -> HWIO
        return a.transpose(2, 3, 1, 0)
    return a


def load_tree(z, prefix, grad=False):
    return {
        k[len(prefix) + 1 :]: T(to_torch_layout(k, z[k]), grad)
        for k in z.files
        if k.startswith(prefix + "/")
    }


# ------------------------------------------------------------------ the Lurz-style model
def forward(P, S, cfg, x, train, z=None):
    """Rates (b, n) for standardized NCHW images. S: BN running stats (updated if train)."""
    if (
        cfg.get("skip", 0) > 1
        or cfg.get("depth_separable")
        or cfg.get("readout", "gaussian") != "gaussian"
    ):
        raise NotImplementedError(
            "the PyTorch mirror covers plain stacked cores (optional "
            "pooling) with a Gaussian readout; got " + json.dumps(cfg)
        )
    outs = []
    for layer in range(cfg["layers"]):
        k = P[f"core/layer{layer}_conv/kernel"]
        inp = x if layer == 0 else outs[-1]
        h = F.conv2d(inp, k, P.get(f"core/layer{layer}_conv/bias"), padding=k.shape[-1] // 2)
        pool = cfg.get("pooling", 1) if layer == 0 else cfg.get("hidden_pooling", 1)
        if pool > 1:  # floor, stride = size (as jaxsel)
            h = F.avg_pool2d(h, pool)
        if cfg["batch_norm"]:
            h = F.batch_norm(
                h,
                S and S[f"batch_stats/core/layer{layer}_bn/mean"],
                S and S[f"batch_stats/core/layer{layer}_bn/var"],
                P[f"core/layer{layer}_bn/scale"],
                P[f"core/layer{layer}_bn/bias"],
                training=train,
                momentum=0.1,
                eps=1e-5,
            )
        if layer < cfg["layers"] - 1 or cfg["final_nonlinearity"]:
            h = F.elu(h)
        outs.append(h)
    idx = (
        range(cfg["layers"]) if cfg["stack"] is None else [s % cfg["layers"] for s in cfg["stack"]]
    )
    f = torch.cat([outs[i] for i in idx], dim=1)
    mu = P["readout/mu"].clamp(-1.0, 1.0)
    b = x.shape[0]
    if train:
        grid = (mu[None] + torch.einsum("nij,bnj->bni", P["readout/sigma"], z)).clamp(-1, 1)
    else:
        grid = mu[None].expand(b, -1, -1)
    v = F.grid_sample(
        f, grid[:, :, None, :], mode="bilinear", padding_mode="zeros", align_corners=True
    )[..., 0]  # (b, c, n)
    y = torch.einsum("bcn,nc->bn", v, P["readout/features"]) + P["readout/bias"]
    return F.elu(y + cfg["elu_offset"]) + 1.0


def regularizer(P, cfg, hp):
    k = P["core/layer0_conv/kernel"]
    filt = k.reshape(-1, 1, k.shape[-2], k.shape[-1])
    lap = F.conv2d(filt, LAP.to(filt.device), padding=1)
    if cfg["laplace_normalized"]:
        lp = (lap**2).sum() / ((filt**2).sum() + 1e-12)
    else:
        lp = (lap**2).sum() / 2.0
    hidden = [P[f"core/layer{i}_conv/kernel"] for i in range(1, cfg["layers"])]
    gs = (
        (sum(torch.sqrt((h**2).sum(dim=(2, 3)) + 1e-12).mean() for h in hidden) / len(hidden))
        if hidden
        else 0.0
    )
    return (
        hp["gamma_input"] * lp
        + hp["gamma_hidden"] * gs
        + hp["gamma_readout"] * P["readout/features"].abs().sum()
    )


def objective(P, S, cfg, hp, x, r, train, z=None, mask=None):
    rates = forward(P, S, cfg, x, train, z)
    pl = rates - r * torch.log(rates + cfg["eps"])
    if mask is not None:
        pl = pl * mask[:, None]
    return hp["loss_scale"] * pl.sum() + regularizer(P, cfg, hp), rates


def random_images(b, h, w, n, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 1, h, w, generator=g)
    r = torch.poisson(torch.ones(b, n), generator=g)
    return x.to(DEV), r.to(DEV)


class TrainStep:
    """One model's Adam step (the baseline for the train-step workloads)."""

    def __init__(self, P, S, cfg, hp, lr):
        self.P, self.S, self.cfg, self.hp = P, S, cfg, hp
        self.params = list(P.values())
        self.opt = torch.optim.Adam(self.params, lr=lr, betas=(0.9, 0.999), eps=1e-8)

    def __call__(self, x, r, mask):
        self.opt.zero_grad(set_to_none=True)
        n = self.P["readout/mu"].shape[0]
        z = torch.randn(x.shape[0], n, 2, device=DEV)
        loss, _ = objective(self.P, self.S, self.cfg, self.hp, x, r, True, z, mask)
        loss.backward()
        finite = (
            torch.isfinite(loss)
            & torch.stack([torch.isfinite(p.grad).all() for p in self.params]).all()
        )
        if bool(finite):
            self.opt.step()
            with torch.no_grad():
                self.P["readout/mu"].clamp_(-1.0, 1.0)
        return loss


def fresh_model(cfg, n, h, w, seed=0):
    """Random weights of the same shapes/initialisation family (for the scaling curves)."""
    g = torch.Generator().manual_seed(seed)
    P, S = {}, {}
    c = cfg["hidden_channels"]
    for layer in range(cfg["layers"]):
        cin = 1 if layer == 0 else c
        k = cfg["input_kern"] if layer == 0 else cfg["hidden_kern"]
        std = (2.0 / (k * k * (cin + c))) ** 0.5
        P[f"core/layer{layer}_conv/kernel"] = torch.randn(c, cin, k, k, generator=g) * std
        P[f"core/layer{layer}_bn/scale"] = torch.ones(c)
        P[f"core/layer{layer}_bn/bias"] = torch.zeros(c)
        S[f"batch_stats/core/layer{layer}_bn/mean"] = torch.zeros(c)
        S[f"batch_stats/core/layer{layer}_bn/var"] = torch.ones(c)
    cout = c * (cfg["layers"] if cfg["stack"] is None else len(cfg["stack"]))
    P["readout/mu"] = torch.rand(n, 2, generator=g) * 0.6 - 0.3
    P["readout/sigma"] = torch.rand(n, 2, 2, generator=g) * 0.2 - 0.1
    P["readout/features"] = torch.full((n, cout), 1.0 / cout)
    P["readout/bias"] = torch.zeros(n)
    P = {k: v.to(DEV).requires_grad_(True) for k, v in P.items()}
    return P, {k: v.to(DEV) for k, v in S.items()}


# ------------------------------------------------------------------ workloads
def check_train(z):
    cfg = json.loads(str(z["cfg"]))
    x, r = T(z["x"], True), T(z["r"])
    hp = {k[3:]: float(z[k]) for k in z.files if k.startswith("hp/")}
    recs = []
    for mode in ("eval", "train"):
        P = load_tree(z, f"{mode}/params", grad=True)
        S = {
            k: T(z[f"{mode}/state/{k}"])
            for k in [f[len(mode) + 7 :] for f in z.files if f.startswith(f"{mode}/state/")]
        }
        x.grad = None
        b, n = z["r"].shape
        zz = torch.zeros(b, n, 2, device=DEV)
        loss, rates = objective(P, S, cfg, hp, x, r, mode == "train", zz)
        loss.backward()
        recs.append(compare(f"{mode}/rates", rates.detach().cpu(), z[f"{mode}/rates"]))
        recs.append(compare(f"{mode}/loss", loss.detach().cpu(), z[f"{mode}/loss"]))
        recs.append(compare(f"{mode}/grad_x", x.grad.cpu(), z[f"{mode}/grad_x"]))
        for k, p in P.items():
            if mode == "train" and k == "readout/sigma":
                continue  # its gradient depends on the (process-local) position noise
            g = np.zeros(p.shape) if p.grad is None else p.grad.cpu().numpy()
            recs.append(compare(f"{mode}/grad/{k}", to_jax_layout(k, g), z[f"{mode}/grad/{k}"]))
    require(recs)
    return cfg, hp, recs


def run_train(w, z):
    cfg, hp, recs = check_train(z)
    P = load_tree(z, "train/params", grad=True)
    P["readout/sigma"] = T(z["eval/params/readout/sigma"], True)
    S = {k[len("train/state/") :]: T(z[k]) for k in z.files if k.startswith("train/state/")}
    x, r = T(z["x"]), T(z["r"])
    mask = torch.ones(x.shape[0], device=DEV)
    step = TrainStep(P, S, cfg, hp, cfg["lr"])
    t = common.time_calls(lambda: step(x, r, mask), w["repeats"], sync=sync)
    return {"loop": {**t, "items_per_s": w["batch"] / t["median_s"], "unit": "images/s"}}, recs


def run_inference(w, z):
    cfg = json.loads(str(z["cfg"]))
    P = load_tree(z, "params")
    S = {k[len("state/") :]: T(z[k]) for k in z.files if k.startswith("state/")}
    x = T(z["x"])
    with torch.no_grad():
        recs = [compare("rates", forward(P, S, cfg, x, False).cpu(), z["rates"])]
    require(recs)

    def call():
        with torch.no_grad():
            return forward(P, S, cfg, x, False)

    t = common.time_calls(call, w["repeats"], sync=sync)
    return {"no_grad": {**t, "items_per_s": w["batch"] / t["median_s"], "unit": "images/s"}}, recs


# per-neuron CNNs ------------------------------------------------------------
def per_neuron_cfg(w):
    return {
        "layers": 2,
        "hidden_channels": w["channels"],
        "input_kern": w["k1"],
        "hidden_kern": w["k2"],
        "batch_norm": True,
        "stack": [-1],
        "final_nonlinearity": True,
        "elu_offset": 0.0,
        "laplace_normalized": False,
        "eps": 1e-8,
    }


def stacked_tree(z, prefix):
    out = {}
    for k in z.files:
        if k.startswith(prefix + "/"):
            a = z[k]
            if k.endswith("kernel") and a.ndim == 5:  # (M, kh, kw, i, o) -> (M, o, i, kh, kw)
                a = a.transpose(0, 4, 3, 1, 2)
            out[k[len(prefix) + 1 :]] = T(a)
    return out


def per_neuron_runners(w, cfg, hp, P, S, x, R, which=("loop", "func_vmap")):
    m = R.shape[0]
    mask = torch.ones(x.shape[0], device=DEV)
    out = {}
    if "loop" in which:
        steps = [
            TrainStep(
                {k: v[i].clone().requires_grad_(True) for k, v in P.items()},
                {k: v[i].clone() for k, v in S.items()},
                cfg,
                hp,
                w["lr"],
            )
            for i in range(m)
        ]

        def loop():
            loss = None
            for i, st in enumerate(steps):
                loss = st(x, R[i], mask)
            return loss

        out["loop"] = loop
    if "func_vmap" in which:
        PV = {k: v.clone() for k, v in P.items()}
        leaves = list(PV.values())
        opt = torch.optim.Adam(leaves, lr=w["lr"])  # elementwise, so per-model Adam

        def loss_one(p, r, zz):
            return objective(p, None, cfg, hp, x, r, True, zz, mask)[0]

        gfn = torch.func.vmap(torch.func.grad(loss_one), in_dims=(0, 0, 0), randomness="different")

        def fvmap():
            zz = torch.randn(m, x.shape[0], 1, 2, device=DEV)
            g = gfn(PV, R, zz)
            finite = torch.stack([torch.isfinite(v).all() for v in g.values()]).all()
            if bool(finite):
                for k, v in PV.items():
                    v.grad = g[k]
                opt.step()
                with torch.no_grad():
                    PV["readout/mu"].clamp_(-1.0, 1.0)
            return g["readout/bias"]

        out["func_vmap"] = fvmap
    return out


def run_per_neuron(w, z):
    cfg, hp, recs = check_train(z)  # model 0, same weights as JAX
    recs = json.loads(str(z["fused_vs_vmap"])) + recs  # JAX fused == JAX vmap
    P = stacked_tree(z, "stack/params")
    S = stacked_tree(z, "stack/state")
    x, R = T(z["x"]), T(z["R"])
    res = {}
    for name, fn in per_neuron_runners(w, cfg, hp, P, S, x, R).items():
        t = common.time_calls(fn, w["repeats"], sync=sync)
        res[name] = {**t, "items_per_s": R.shape[0] / t["median_s"], "unit": "model-steps/s"}
    return res, recs


# MEIs -------------------------------------------------------------------------
def fix_norm(u, norm):
    u = u - u.mean(dim=(1, 2, 3), keepdim=True)
    return norm * u / torch.sqrt((u**2).sum(dim=(1, 2, 3), keepdim=True) + 1e-16)


def run_mei(w, z):
    cfg = json.loads(str(z["cfg"]))
    P = load_tree(z, "params")
    S = {k[len("state/") :]: T(z[k]) for k in z.files if k.startswith("state/")}
    norm = float(z["norm"])
    u = T(z["u"], True)
    tg = torch.as_tensor(z["targets"], device=DEV)
    rates = forward(P, S, cfg, (127.5 + 127.5 * fix_norm(u, norm) - 127.5) / 127.5, False)
    act = rates[torch.arange(len(tg)), tg]
    act.sum().backward()
    recs = [
        compare("activation", act.detach().cpu(), z["act"]),
        compare("grad_u", u.grad.cpu(), z["grad_u"]),
    ]
    require(recs)
    h, wd = w["image"]
    res = {}

    def run(n, chunk):
        acts = []
        for s in range(0, n, chunk):
            k = min(chunk, n - s)
            tgt = torch.arange(s, s + k, device=DEV)
            u = 0.1 * torch.randn(k, 1, h, wd, device=DEV)
            with torch.no_grad():
                u = fix_norm(u, norm)
            u.requires_grad_(True)
            opt = torch.optim.Adam([u], lr=w["lr"])
            trace = []
            for _ in range(w["steps"]):
                opt.zero_grad(set_to_none=True)
                raw = 127.5 + 127.5 * fix_norm(u, norm)
                r = forward(P, S, cfg, (raw - 127.5) / 127.5, False)
                a = r[torch.arange(k, device=DEV), tgt]
                (-a.sum()).backward()
                opt.step()
                with torch.no_grad():
                    u.copy_(fix_norm(u, norm))
                trace.append(a.detach())
            with torch.no_grad():
                acts.append(
                    forward(P, S, cfg, fix_norm(u, norm), False)[torch.arange(k, device=DEV), tgt]
                )
        return sync(torch.cat(acts))

    for n in w["neurons"]:
        chunk = min(w["chunk"], n)
        t = common.time_calls(lambda: run(n, chunk), w["repeats"], warmup=0, sync=sync)
        res[f"batched_sum_n{n}"] = {
            **t,
            "items_per_s": n * w["steps"] / t["median_s"],
            "unit": "neuron-steps/s",
            "neurons": n,
            "chunk": chunk,
        }
    return res, recs


# sweep ------------------------------------------------------------------------
def run_sweep(w, z):
    cfg = json.loads(str(z["cfg"]))
    grid = z["grid"]
    h, wd = w["image"]
    x, r = random_images(w["batch"], h, wd, w["n_neurons"])
    mask = torch.ones(w["batch"], device=DEV)
    gi, gh = 0.5, 0.0
    steps = []
    for i, (lr, gr) in enumerate(grid):
        P, S = fresh_model(cfg, w["n_neurons"], h, wd, seed=i)
        hp = {
            "gamma_input": gi,
            "gamma_hidden": gh,
            "gamma_readout": float(gr),
            "loss_scale": float(np.sqrt(4000 / w["batch"])),
        }
        steps.append(TrainStep(P, S, cfg, hp, float(lr)))

    def loop():
        loss = None
        for s in steps:
            loss = s(x, r, mask)
        return loss

    t = common.time_calls(loop, w["repeats"], sync=sync)
    m = len(grid)
    return {"loop": {**t, "items_per_s": m / t["median_s"], "unit": "model-steps/s"}}, [
        {"name": "same model and step as small_train (checked there)", "ok": True}
    ]


# scaling ------------------------------------------------------------------------
SMALL = {
    "layers": 3,
    "hidden_channels": 16,
    "input_kern": 9,
    "hidden_kern": 5,
    "pooling": 2,
    "hidden_pooling": 1,
    "batch_norm": True,
    "stack": None,
    "final_nonlinearity": True,
    "elu_offset": 0.0,
    "laplace_normalized": False,
    "eps": 1e-8,
}


def run_scale(w, z):
    res = {}
    hp = {"gamma_input": 0.5, "gamma_hidden": 0.0, "gamma_readout": 0.5, "loss_scale": 8.0}
    for pt in w["points"]:
        if w["of"] in ("train", "image"):
            n = pt if w["of"] == "train" else w["n_neurons"]
            h, wd = w["image"] if w["of"] == "train" else pt
            P, S = fresh_model(SMALL, n, h, wd)
            x, r = random_images(w["batch"], h, wd, n)
            step = TrainStep(P, S, SMALL, hp, 5e-3)
            mask = torch.ones(w["batch"], device=DEV)
            t = common.time_calls(lambda: step(x, r, mask), w["repeats"], sync=sync)
            key = f"n{pt}" if w["of"] == "train" else f"{pt[0]}x{pt[1]}"
            res[key] = {
                "x": pt if w["of"] == "train" else pt[0] * pt[1],
                **t,
                "items_per_s": w["batch"] / t["median_s"],
                "unit": "images/s",
            }
        else:
            h, wd = w["image"]
            cfg = per_neuron_cfg(w)
            ms = [fresh_model(cfg, 1, h, wd, seed=i) for i in range(pt)]
            P = {k: torch.stack([mm[0][k].detach() for mm in ms]) for k in ms[0][0]}
            S = {k: torch.stack([mm[1][k] for mm in ms]) for k in ms[0][1]}
            x, r = random_images(w["batch"], h, wd, pt)
            R = r.T[:, :, None].contiguous()
            runners = per_neuron_runners(w, cfg, hp, P, S, x, R, which=("loop",))
            t = common.time_calls(runners["loop"], w["repeats"], warmup=1, sync=sync)
            res[f"m{pt}"] = {
                "x": pt,
                **t,
                "items_per_s": pt / t["median_s"],
                "unit": "model-steps/s",
            }
    return res, []


def matmul_peak(n=2048, repeats=10):
    a = torch.randn(n, n, device=DEV)
    t = common.time_calls(lambda: a @ a, repeats, warmup=2, sync=sync)
    return 2 * n**3 / t["min_s"] / 1e9  # best case: the peak


RUNNERS = {
    "train": run_train,
    "per_neuron": run_per_neuron,
    "mei": run_mei,
    "sweep": run_sweep,
    "inference": run_inference,
    "scale": run_scale,
}


def main():
    a = common.parse_args()
    t0 = time.perf_counter()
    out = {
        "side": "torch",
        "versions": {
            "torch": torch.__version__,
            "device": str(DEV),
            "threads": torch.get_num_threads(),
            "device_name": torch.cuda.get_device_name(0)
            if DEV.type == "cuda"
            else common.cpu_model(),
        },
        "machine": common.machine(),
    }
    if a.workload == "matmul":
        out["matmul_gflops"] = matmul_peak()
    else:
        w = common.load_workload(a.workload, a.quick)
        out["workload"] = w
        ex = Path(a.exchange) / f"{a.workload}.npz"
        z = np.load(ex) if ex.exists() else None
        try:
            res, recs = RUNNERS[w["kind"]](w, z)
        except EquivalenceError as e:
            out["equivalence_error"] = str(e)
            common.write_json(a.out, out)
            print(f"EQUIVALENCE FAILED ({a.workload}): {e}", file=sys.stderr)
            sys.exit(3)
        out["results"] = res
        out["equivalence"] = recs
    out["peak_rss_mib"] = common.peak_rss_mib()
    out["peak_device_mib"] = (
        torch.cuda.max_memory_allocated() / 2**20 if DEV.type == "cuda" else None
    )
    out["wall_s"] = time.perf_counter() - t0
    common.write_json(a.out, out)


if __name__ == "__main__":
    main()
