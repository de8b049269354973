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


# The torch variants timed (idiomatic eager first; the headline ratio uses the fastest):
# channels_last = NHWC memory format for maps and kernels (oneDNN's preferred layout);
# compile = torch.compile (inductor) of the objective (forward, loss, and via AOTAutograd
# the backward); the optimizer step stays eager (torch.optim.Adam, foreach).
TRAIN_VARIANTS = ("eager", "channels_last", "compile", "compile_channels_last")


def cl(t):
    """``t`` in channels_last memory format (4-D tensors; others unchanged)."""
    return t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t


def compiled(fn):
    """``torch.compile`` (inductor, static shapes) of ``fn``."""
    return torch.compile(fn, dynamic=False)


def variant_objective(variant: str):
    return compiled(objective) if "compile" in variant else objective


class TrainStep:
    """One model's Adam step (the baseline for the train-step workloads), as ``variant``."""

    def __init__(self, P, S, cfg, hp, lr, variant="eager"):
        self.cl = "channels_last" in variant
        if self.cl:
            P = {k: cl(v.detach()).requires_grad_(True) for k, v in P.items()}
        self.P, self.S, self.cfg, self.hp = P, S, cfg, hp
        self.obj = variant_objective(variant)
        self.params = list(P.values())
        self.opt = torch.optim.Adam(self.params, lr=lr, betas=(0.9, 0.999), eps=1e-8)

    def grads(self, x, r, mask, z):
        """Loss and parameter gradients (no update): for the variant checks."""
        for p in self.params:
            p.grad = None
        loss, _ = self.obj(
            self.P, self.S, self.cfg, self.hp, cl(x) if self.cl else x, r, True, z, mask
        )
        loss.backward()
        return loss.detach(), {k: v.grad.detach().contiguous() for k, v in self.P.items()}

    def __call__(self, x, r, mask, z=None):
        self.opt.zero_grad(set_to_none=True)
        n = self.P["readout/mu"].shape[0]
        if z is None:
            z = torch.randn(x.shape[0], n, 2, device=DEV)
        x = cl(x) if self.cl else x
        loss, _ = self.obj(self.P, self.S, self.cfg, self.hp, x, r, True, z, mask)
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


def clone_tree(P, grad=False):
    return {k: v.detach().clone().requires_grad_(grad) for k, v in P.items()}


def check_train_variants(P, S, cfg, hp, lr, x, r, variants, recs) -> dict:
    """Build a :class:`TrainStep` per variant on copies of ``P`` and check its loss and
    gradients against the eager step's (itself checked against JAX). A variant that fails
    to build or run (e.g. torch.compile without a compiler) is reported as
    ``{"error": ...}``; a wrong result raises :class:`EquivalenceError`."""
    mask = torch.ones(x.shape[0], device=DEV)
    z = 0.3 * torch.randn(x.shape[0], P["readout/mu"].shape[0], 2, device=DEV)
    ref_loss, ref = TrainStep(clone_tree(P, True), clone_tree(S), cfg, hp, lr).grads(x, r, mask, z)
    steps = {}
    for v in variants:
        try:
            st = TrainStep(clone_tree(P, True), clone_tree(S), cfg, hp, lr, v)
            loss, g = st.grads(x, r, mask, z)
        except Exception as e:  # reported, not hidden
            steps[v] = {"error": f"{type(e).__name__}: {e}"[:400]}
            continue
        out = [compare(f"variant/{v}/loss", loss.cpu(), ref_loss.cpu())]
        out += [compare(f"variant/{v}/grad/{k}", g[k].cpu(), ref[k].cpu()) for k in ref]
        require(out)
        recs.extend(out)
        steps[v] = st
    return steps


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


def time_variants(fns: dict, w, n_items, unit, warmup=1) -> dict:
    res = {}
    for name, fn in fns.items():
        if isinstance(fn, dict):  # a variant that does not work here
            res[name] = fn
            continue
        t = common.time_calls(fn, w["repeats"], warmup=warmup, sync=sync)
        res[name] = {**t, "items_per_s": n_items / t["median_s"], "unit": unit}
    return res


def run_train(w, z):
    cfg, hp, recs = check_train(z)
    P = load_tree(z, "train/params", grad=True)
    P["readout/sigma"] = T(z["eval/params/readout/sigma"], True)
    S = {k[len("train/state/") :]: T(z[k]) for k in z.files if k.startswith("train/state/")}
    x, r = T(z["x"]), T(z["r"])
    mask = torch.ones(x.shape[0], device=DEV)
    steps = check_train_variants(
        P, S, cfg, hp, cfg["lr"], x, r, common.chosen(w, TRAIN_VARIANTS), recs
    )
    fns = {
        v: (st if isinstance(st, dict) else (lambda st=st: st(x, r, mask)))
        for v, st in steps.items()
    }
    return time_variants(fns, w, w["batch"], "images/s"), recs


def run_inference(w, z):
    cfg = json.loads(str(z["cfg"]))
    P = load_tree(z, "params")
    S = {k[len("state/") :]: T(z[k]) for k in z.files if k.startswith("state/")}
    x = T(z["x"])
    recs, fns = [], {}
    for v in common.chosen(w, ("no_grad", "channels_last", "compile", "compile_channels_last")):
        Pv = {k: cl(a) for k, a in P.items()} if "channels_last" in v else P
        xv = cl(x) if "channels_last" in v else x
        fwd = compiled(forward) if "compile" in v else forward

        def call(Pv=Pv, xv=xv, fwd=fwd):
            with torch.no_grad():
                return fwd(Pv, S, cfg, xv, False)

        try:
            got = call()
        except Exception as e:  # reported, not hidden
            fns[v] = {"error": f"{type(e).__name__}: {e}"[:400]}
            continue
        rec = compare(f"{v}/rates", got.cpu(), z["rates"])
        require([rec])
        recs.append(rec)
        fns[v] = call
    return time_variants(fns, w, w["batch"], "images/s"), recs


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


def grouped_objective(P, S, cfg, hp, x, R, z, mask):
    """M per-neuron CNNs as ONE model with grouped convolutions (groups = M), summed.

    ``P``/``S``: stacked trees (kernels (M, o, i, kh, kw)); ``R`` (M, B, 1); ``z`` (M, B, 1,
    2). The first layer (1 input channel, shared images) is one conv with M*C outputs, the
    hidden layer a grouped conv; BatchNorm is per channel, so per model; the readout
    samples each model's C maps at its own position. The objective is the sum of the M
    models' objectives, so each model's gradient is its own (Adam is elementwise)."""
    if cfg.get("pooling", 1) > 1 or cfg.get("hidden_pooling", 1) > 1 or cfg["laplace_normalized"]:
        raise NotImplementedError("grouped per-neuron mirror: no pooling, plain Laplace")
    m, b = R.shape[0], x.shape[0]
    h = x
    for layer in range(cfg["layers"]):
        k = P[f"core/layer{layer}_conv/kernel"]
        c = k.shape[1]
        wk = k.reshape(m * c, k.shape[2], k.shape[3], k.shape[4])
        h = F.conv2d(h, wk, padding=k.shape[-1] // 2, groups=1 if layer == 0 else m)
        h = F.batch_norm(
            h,
            S[f"batch_stats/core/layer{layer}_bn/mean"].view(-1),
            S[f"batch_stats/core/layer{layer}_bn/var"].view(-1),
            P[f"core/layer{layer}_bn/scale"].reshape(-1),
            P[f"core/layer{layer}_bn/bias"].reshape(-1),
            training=True,
            momentum=0.1,
            eps=1e-5,
        )
        if layer < cfg["layers"] - 1 or cfg["final_nonlinearity"]:
            h = F.elu(h)
    c = h.shape[1] // m
    f = h.reshape(b * m, c, h.shape[2], h.shape[3])  # (b, m) major: each model's C maps
    mu = P["readout/mu"][:, 0].clamp(-1.0, 1.0)  # (m, 2)
    grid = mu[:, None] + torch.einsum("mij,mbj->mbi", P["readout/sigma"][:, 0], z[:, :, 0])
    grid = grid.clamp(-1, 1).transpose(0, 1).reshape(b * m, 1, 1, 2)
    v = F.grid_sample(f, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    v = v.reshape(b, m, c)
    y = torch.einsum("bmc,mc->bm", v, P["readout/features"][:, 0]) + P["readout/bias"][:, 0]
    rates = F.elu(y + cfg["elu_offset"]) + 1.0
    r = R[:, :, 0].T
    pl = (rates - r * torch.log(rates + cfg["eps"])) * mask[:, None]
    k0 = P["core/layer0_conv/kernel"]
    filt = k0.reshape(-1, 1, k0.shape[-2], k0.shape[-1])
    lap = (F.conv2d(filt, LAP.to(filt.device), padding=1) ** 2).sum() / 2.0
    hidden = [P[f"core/layer{i}_conv/kernel"] for i in range(1, cfg["layers"])]
    gs = sum(torch.sqrt((hk**2).sum(dim=(3, 4)) + 1e-12).mean(dim=(1, 2)).sum() for hk in hidden)
    reg = (
        hp["gamma_input"] * lap
        + hp["gamma_hidden"] * gs / max(len(hidden), 1)
        + hp["gamma_readout"] * P["readout/features"].abs().sum()
    )
    return hp["loss_scale"] * pl.sum() + reg


PER_NEURON_VARIANTS = (
    "loop",
    "loop_compile",
    "func_vmap",
    "grouped",
    "grouped_channels_last",
    "grouped_compile",
)


class GroupedStep:
    """The M models' Adam steps as one grouped-convolution model (see grouped_objective)."""

    def __init__(self, P, S, cfg, hp, lr, variant="grouped"):
        self.cl = "channels_last" in variant
        self.P = {k: v.detach().clone().requires_grad_(True) for k, v in P.items()}
        self.S = {k: v.clone() for k, v in S.items()}
        self.cfg, self.hp = cfg, hp
        self.obj = compiled(grouped_objective) if "compile" in variant else grouped_objective
        self.opt = torch.optim.Adam(list(self.P.values()), lr=lr)

    def grads(self, x, R, mask, z):
        for p in self.P.values():
            p.grad = None
        xv = cl(x) if self.cl else x
        loss = self.obj(self.P, self.S, self.cfg, self.hp, xv, R, z, mask)
        loss.backward()
        return loss, {k: v.grad for k, v in self.P.items()}

    def __call__(self, x, R, mask):
        z = torch.randn(R.shape[0], x.shape[0], 1, 2, device=DEV)
        loss, g = self.grads(x, R, mask, z)
        if bool(torch.stack([torch.isfinite(v).all() for v in g.values()]).all()):
            self.opt.step()
            with torch.no_grad():
                self.P["readout/mu"].clamp_(-1.0, 1.0)
        return loss


def per_neuron_runners(w, cfg, hp, P, S, x, R, which=PER_NEURON_VARIANTS, recs=None):
    """``{variant: callable}`` (or ``{"error": ...}`` where it does not work here). With
    ``recs``, every grouped / compiled variant's gradients are first checked against the
    eager loop's (the same z for every model)."""
    m = R.shape[0]
    mask = torch.ones(x.shape[0], device=DEV)
    out = {}
    for v in [v for v in which if v.startswith("loop")]:
        variant = "compile" if v == "loop_compile" else "eager"
        try:
            steps = [
                TrainStep(
                    {k: a[i].clone().requires_grad_(True) for k, a in P.items()},
                    {k: a[i].clone() for k, a in S.items()},
                    cfg,
                    hp,
                    w["lr"],
                    variant,
                )
                for i in range(m)
            ]
            if recs is not None and v != "loop":
                zz = 0.3 * torch.randn(x.shape[0], 1, 2, device=DEV)
                for i in range(min(m, 3)):
                    ref = TrainStep(
                        clone_tree({k: a[i] for k, a in P.items()}, True),
                        {k: a[i].clone() for k, a in S.items()},
                        cfg,
                        hp,
                        w["lr"],
                    )
                    rl, rg = ref.grads(x, R[i], mask, zz)
                    gl, gg = steps[i].grads(x, R[i], mask, zz)
                    got = [compare(f"{v}/model{i}/loss", gl.cpu(), rl.cpu())]
                    got += [compare(f"{v}/model{i}/grad/{k}", gg[k].cpu(), rg[k].cpu()) for k in rg]
                    require(got)
                    recs.extend(got)
        except EquivalenceError:
            raise
        except Exception as e:  # reported, not hidden
            out[v] = {"error": f"{type(e).__name__}: {e}"[:400]}
            continue

        def loop(steps=steps):
            loss = None
            for i, st in enumerate(steps):
                loss = st(x, R[i], mask)
            return loss

        out[v] = loop
    for v in [v for v in which if v.startswith("grouped")]:
        try:
            st = GroupedStep(P, S, cfg, hp, w["lr"], v)
            if recs is not None:
                zz = 0.3 * torch.randn(m, x.shape[0], 1, 2, device=DEV)
                gl, gg = st.grads(x, R, mask, zz)
                want_l, want = 0.0, {k: [] for k in P}
                for i in range(m):
                    ref = TrainStep(
                        clone_tree({k: a[i] for k, a in P.items()}, True),
                        {k: a[i].clone() for k, a in S.items()},
                        cfg,
                        hp,
                        w["lr"],
                    )
                    rl, rg = ref.grads(x, R[i], mask, zz[i])
                    want_l += float(rl)
                    for k in rg:
                        want[k].append(rg[k].cpu())
                got = [compare(f"{v}/loss_sum", gl.detach().cpu(), np.float32(want_l))]
                got += [compare(f"{v}/grad/{k}", gg[k].cpu(), torch.stack(want[k])) for k in want]
                require(got)
                recs.extend(got)
        except EquivalenceError:
            raise
        except Exception as e:  # reported, not hidden
            out[v] = {"error": f"{type(e).__name__}: {e}"[:400]}
            continue
        out[v] = lambda st=st: st(x, R, mask)
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
    fns = per_neuron_runners(
        w, cfg, hp, P, S, x, R, which=common.chosen(w, PER_NEURON_VARIANTS), recs=recs
    )
    return time_variants(fns, w, R.shape[0], "model-steps/s"), recs


# MEIs -------------------------------------------------------------------------
def fix_norm(u, norm):
    u = u - u.mean(dim=(1, 2, 3), keepdim=True)
    return norm * u / torch.sqrt((u**2).sum(dim=(1, 2, 3), keepdim=True) + 1e-16)


MEI_VARIANTS = ("batched_sum", "batched_sum_channels_last", "batched_sum_compile")


def run_mei(w, z):
    cfg = json.loads(str(z["cfg"]))
    P0 = load_tree(z, "params")
    S = {k[len("state/") :]: T(z[k]) for k in z.files if k.startswith("state/")}
    norm = float(z["norm"])
    h, wd = w["image"]
    tg = torch.as_tensor(z["targets"], device=DEV)
    recs, res = [], {}
    for variant in common.chosen(w, MEI_VARIANTS):
        use_cl = "channels_last" in variant
        P = {k: cl(a) for k, a in P0.items()} if use_cl else P0
        fwd = compiled(forward) if "compile" in variant else forward

        def rates_of(u, P=P, fwd=fwd, use_cl=use_cl):
            x = (127.5 + 127.5 * fix_norm(u, norm) - 127.5) / 127.5
            return fwd(P, S, cfg, cl(x) if use_cl else x, False)

        try:
            u = T(z["u"], True)
            act = rates_of(u)[torch.arange(len(tg)), tg]
            act.sum().backward()
        except Exception as e:  # reported, not hidden
            for n in w["neurons"]:
                res[f"{variant}_n{n}"] = {"error": f"{type(e).__name__}: {e}"[:400]}
            continue
        got = [
            compare(f"{variant}/activation", act.detach().cpu(), z["act"]),
            compare(f"{variant}/grad_u", u.grad.cpu(), z["grad_u"]),
        ]
        require(got)
        recs += got

        def run(n, chunk, rates_of=rates_of):
            acts = []
            for s in range(0, n, chunk):
                k = min(chunk, n - s)
                tgt = torch.arange(s, s + k, device=DEV)
                u = 0.1 * torch.randn(k, 1, h, wd, device=DEV)
                with torch.no_grad():
                    u = fix_norm(u, norm)
                u.requires_grad_(True)
                opt = torch.optim.Adam([u], lr=w["lr"])
                for _ in range(w["steps"]):
                    opt.zero_grad(set_to_none=True)
                    a = rates_of(u)[torch.arange(k, device=DEV), tgt]
                    (-a.sum()).backward()
                    opt.step()
                    with torch.no_grad():
                        u.copy_(fix_norm(u, norm))
                with torch.no_grad():
                    acts.append(rates_of(u)[torch.arange(k, device=DEV), tgt])
            return sync(torch.cat(acts))

        for n in w["neurons"]:
            chunk = min(w["chunk"], n)
            # one warm-up (compilation for torch.compile) on the chunk shapes
            run(min(n, chunk), chunk)
            if n % chunk:
                run(n % chunk, chunk)
            t = common.time_calls(lambda: run(n, chunk), w["repeats"], warmup=0, sync=sync)
            res[f"{variant}_n{n}"] = {
                **t,
                "items_per_s": n * w["steps"] / t["median_s"],
                "unit": "neuron-steps/s",
                "neurons": n,
                "chunk": chunk,
            }
    return res, recs


# sweep ------------------------------------------------------------------------
SWEEP_VARIANTS = ("loop", "loop_channels_last", "loop_compile")


def check_sweep(z, cfg, x, r, mask) -> list:
    """A real check of the sweep: every grid point's model (the JAX weights, readout sigma
    0) gives the same loss and gradients as JAX with its own readout penalty, and one step
    with its own learning rate the same parameters. Adam's first step is ``lr * g / (|g| +
    eps)`` (about ``lr * sign(g)``), so updated parameters are compared where ``|g|`` is
    above 1e-4 of its leaf's largest value (elsewhere the sign is rounding noise)."""
    recs = []
    for i, (lr, gamma) in enumerate(z["grid"]):
        P = load_tree(z, f"m{i}/params", grad=True)
        S = {k[len(f"m{i}/state/") :]: T(z[k]) for k in z.files if k.startswith(f"m{i}/state/")}
        hp = {k.split("/")[-1]: float(z[k]) for k in z.files if k.startswith(f"m{i}/hp/")}
        assert abs(hp["gamma_readout"] - float(gamma)) <= 1e-6 * max(1.0, abs(float(gamma)))
        st = TrainStep(P, S, cfg, hp, float(lr))
        zz = torch.zeros(x.shape[0], r.shape[1], 2, device=DEV)
        loss, g = st.grads(x, r, mask, zz)
        recs.append(compare(f"m{i}/loss", loss.cpu(), z[f"m{i}/loss"]))
        for k, v in g.items():
            if k != "readout/sigma":  # depends on the position noise
                recs.append(
                    compare(f"m{i}/grad/{k}", to_jax_layout(k, v.cpu()), z[f"m{i}/grad/{k}"])
                )
        st(x, r, mask, z=zz)
        for k, v in st.P.items():
            if k == "readout/sigma":
                continue
            gj = np.abs(z[f"m{i}/grad/{k}"])
            sel = gj > 1e-4 * gj.max()
            got = to_jax_layout(k, v.detach().cpu().numpy())[sel]
            recs.append(compare(f"m{i}/step/{k}", got, z[f"m{i}/new/{k}"][sel]))
    require(recs)
    return recs


def run_sweep(w, z):
    cfg = json.loads(str(z["cfg"]))
    x, r = T(z["x"]), T(z["r"])
    mask = torch.ones(x.shape[0], device=DEV)
    recs = check_sweep(z, cfg, x, r, mask)
    grid = z["grid"]

    def steps_for(variant):
        out = []
        for i, (lr, _) in enumerate(grid):
            P = load_tree(z, f"m{i}/params", grad=True)
            P["readout/sigma"] = T(z[f"m{i}/sigma"], True)
            S = {k[len(f"m{i}/state/") :]: T(z[k]) for k in z.files if k.startswith(f"m{i}/state/")}
            hp = {k.split("/")[-1]: float(z[k]) for k in z.files if k.startswith(f"m{i}/hp/")}
            out.append(TrainStep(P, S, cfg, hp, float(lr), variant))
        return out

    fns = {}
    for v in common.chosen(w, SWEEP_VARIANTS):
        variant = v.replace("loop_", "") if v != "loop" else "eager"
        try:
            steps = steps_for(variant)
            if variant != "eager":  # same loss and gradients as the eager model 0
                zz = torch.zeros(x.shape[0], r.shape[1], 2, device=DEV)
                rl, rg = steps_for("eager")[0].grads(x, r, mask, zz)
                gl, gg = steps[0].grads(x, r, mask, zz)
                got = [compare(f"{v}/loss", gl.cpu(), rl.cpu())]
                got += [compare(f"{v}/grad/{k}", gg[k].cpu(), rg[k].cpu()) for k in rg]
                require(got)
                recs += got
        except EquivalenceError:
            raise
        except Exception as e:  # reported, not hidden
            fns[v] = {"error": f"{type(e).__name__}: {e}"[:400]}
            continue

        def loop(steps=steps):
            loss = None
            for s in steps:
                loss = s(x, r, mask)
            return loss

        fns[v] = loop
    return time_variants(fns, w, len(grid), "model-steps/s"), recs


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
        if w["of"] in ("train", "image", "batch"):
            n = pt if w["of"] == "train" else w["n_neurons"]
            h, wd = pt if w["of"] == "image" else w["image"]
            b = pt if w["of"] == "batch" else w["batch"]
            P, S = fresh_model(SMALL, n, h, wd)
            x, r = random_images(b, h, wd, n)
            step = TrainStep(P, S, SMALL, hp, 5e-3)
            mask = torch.ones(b, device=DEV)
            t = common.time_calls(lambda: step(x, r, mask), w["repeats"], sync=sync)
            key = f"{pt[0]}x{pt[1]}" if w["of"] == "image" else f"{w['of'][0]}{pt}"
            res[key] = {
                "x": pt[0] * pt[1] if w["of"] == "image" else pt,
                **t,
                "items_per_s": b / t["median_s"],
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
        out["matmul_gflops"] = matmul_peak(n=256 if a.quick else 2048)
    else:
        w = common.load_workload(a.workload, a.quick, a.sizes)
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
