"""Equivalence machinery: parameter exchange, a NumPy reference model, and tolerance checks.

The JAX side writes an ``.npz`` exchange file: the model's parameters and state flattened to
``"params/core/layer0_conv/kernel"``-style keys (JAX layouts: HWIO kernels, NHWC maps), the
inputs, and the JAX results (forward rates, loss, parameter gradients, input gradients). The
PyTorch side loads the same weights, recomputes everything and calls :func:`compare`; any
mismatch raises :class:`EquivalenceError`, which aborts the workload before timing.

:func:`numpy_forward` is an independent NumPy implementation of the stacked core + Gaussian
readout in eval mode, used by ``tests/test_bench_equivalence.py`` (no torch needed).
"""

from __future__ import annotations

import numpy as np


class EquivalenceError(AssertionError):
    """JAX and the baseline disagree beyond tolerance."""


def flatten(tree, prefix: str = "") -> dict[str, np.ndarray]:
    """Nested dict of arrays -> flat ``{"a/b/c": array}``."""
    out = {}
    for k, v in tree.items():
        key = f"{prefix}/{k}" if prefix else str(k)
        if hasattr(v, "items"):
            out.update(flatten(v, key))
        else:
            out[key] = np.asarray(v)
    return out


def unflatten(flat: dict, prefix: str) -> dict:
    """Inverse of :func:`flatten` for the keys under ``prefix/``."""
    out: dict = {}
    for key, v in flat.items():
        if not key.startswith(prefix + "/"):
            continue
        parts = key[len(prefix) + 1 :].split("/")
        d = out
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = np.asarray(v)
    return out


def compare(name: str, got, want, rtol: float = 2e-3, atol: float = 1e-4) -> dict:
    """A record of how ``got`` matches ``want`` (relative to the scale of ``want``).

    The check passes when ``max|got - want| <= atol + rtol * max|want|``; float32 sums in a
    different order (oneDNN vs Eigen convolutions) differ at the 1e-6..1e-5 relative level.
    """
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    if got.shape != want.shape:
        return {"name": name, "ok": False, "error": f"shape {got.shape} != {want.shape}"}
    err = float(np.max(np.abs(got - want))) if got.size else 0.0
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    ok = bool(np.isfinite(err) and err <= atol + rtol * scale)
    return {
        "name": name,
        "ok": ok,
        "max_abs_err": err,
        "max_abs_ref": scale,
        "rel_err": err / scale if scale > 0 else err,
    }


def require(records: list[dict]) -> None:
    """Raise :class:`EquivalenceError` naming every failed record."""
    bad = [r for r in records if not r["ok"]]
    if bad:
        lines = "; ".join(
            f"{r['name']}: {r.get('error') or r.get('max_abs_err')} "
            f"(ref scale {r.get('max_abs_ref')})"
            for r in bad
        )
        raise EquivalenceError(f"{len(bad)} of {len(records)} checks failed: {lines}")


# ------------------------------------------------------------------ NumPy reference model
def conv2d_same(x, k):
    """'SAME' cross-correlation. x: (B, H, W, Ci) NHWC; k: (kh, kw, Ci, Co) HWIO (odd k)."""
    kh, kw = k.shape[:2]
    xp = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))  # B,H,W,Ci,kh,kw
    return np.einsum("bhwcij,ijco->bhwo", win, k, optimize=True)


def elu(x):
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


def bilinear(features, grid):
    """features (B, H, W, C), grid (N, 2) [x, y] in [-1, 1] -> (B, N, C) (align_corners)."""
    b, h, w, c = features.shape
    x = (grid[:, 0] + 1) * 0.5 * (w - 1)
    y = (grid[:, 1] + 1) * 0.5 * (h - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    out = np.zeros((b, len(grid), c))
    for dy in (0, 1):
        for dx in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            wgt = (1 - np.abs(x - xi)) * (1 - np.abs(y - yi))
            ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            vals = features[:, np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1), :]
            out += vals * (wgt * ok)[None, :, None]
    return out


def numpy_forward(params: dict, state: dict, cfg: dict, images) -> np.ndarray:
    """Eval-mode rates of a stacked core + full Gaussian readout (jaxsel layouts).

    Args:
      params, state: jaxsel ``Model.init`` trees (as NumPy).
      cfg: dict with ``layers``, ``batch_norm``, ``stack`` (list or None), ``elu_offset``,
        ``final_nonlinearity``, optional ``pooling`` / ``hidden_pooling`` (pad_input, odd
        kernels, no skip, non-separable).
      images: (B, 1, H, W) standardized.
    """
    x = np.moveaxis(np.asarray(images, np.float64), 1, -1)
    core, bst = params["core"], state.get("batch_stats", {}).get("core", {})
    outs = []
    for layer in range(cfg["layers"]):
        conv = core[f"layer{layer}_conv"]
        h = conv2d_same(x if layer == 0 else outs[-1], np.asarray(conv["kernel"], np.float64))
        if "bias" in conv:
            h = h + conv["bias"]
        pool = cfg.get("pooling", 1) if layer == 0 else cfg.get("hidden_pooling", 1)
        if pool > 1:  # average pool, stride = size, floor
            b_, hh, ww, c_ = h.shape
            h = (
                h[:, : hh // pool * pool, : ww // pool * pool]
                .reshape(b_, hh // pool, pool, ww // pool, pool, c_)
                .mean(axis=(2, 4))
            )
        if cfg["batch_norm"]:
            bn, st = core[f"layer{layer}_bn"], bst[f"layer{layer}_bn"]
            h = (h - st["mean"]) / np.sqrt(st["var"] + 1e-5) * bn["scale"] + bn["bias"]
        if layer < cfg["layers"] - 1 or cfg["final_nonlinearity"]:
            h = elu(h)
        outs.append(h)
    idx = (
        range(cfg["layers"]) if cfg["stack"] is None else [s % cfg["layers"] for s in cfg["stack"]]
    )
    f = np.concatenate([outs[i] for i in idx], axis=-1)
    ro = params["readout"]
    v = bilinear(f, np.clip(np.asarray(ro["mu"], np.float64), -1, 1))
    y = np.einsum("bnc,nc->bn", v, ro["features"]) + ro["bias"] + cfg["elu_offset"]
    return elu(y) + 1.0


def poisson_objective(rates, responses, eps: float = 1e-8) -> float:
    """Summed Poisson loss ``sum(f - r log(f + eps))``."""
    return float(np.sum(rates - responses * np.log(rates + eps)))
