"""Benchmark: one convolution layer, forward + backward, by each form ``conv="auto"`` chooses
from: XLA's direct convolution, FFT (:func:`jaxsel.models.fft_conv`) and XLA with an FFT
kernel gradient (:func:`jaxsel.models.fft_kernel_grad_conv`).

The measurements behind :func:`jaxsel.models.cpu_conv_form` (batch 64, one model; the input
gradient is skipped for 1-channel inputs, as for images). The forms are timed interleaved in
one process (direct, fft, kgrad, direct, ...) and the ratios are medians of the per-round
ratios, so that load from other jobs on shared cores affects all forms alike. Prints a table
and JSON. Usage::

    .venv/bin/python benchmarks/conv_forms.py [--out benchmarks/results/conv_forms.json]
"""

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxsel.models._conv_impl import cpu_conv_form, fft_conv, fft_kernel_grad_conv

# (H, W), cin, cout, k, stride
CASES = [
    ((36, 64), 1, 4, 9, 1),
    ((36, 64), 4, 4, 7, 1),
    ((36, 64), 1, 8, 10, 2),
    ((18, 32), 8, 8, 5, 1),
    ((36, 64), 1, 16, 9, 1),
    ((36, 64), 16, 16, 7, 1),
    ((36, 64), 8, 8, 7, 1),
    ((36, 64), 4, 4, 3, 1),
    ((18, 32), 16, 16, 5, 1),
    ((18, 32), 32, 32, 5, 1),
    ((36, 64), 1, 4, 5, 1),
    ((18, 32), 4, 4, 5, 1),
    ((36, 64), 1, 32, 10, 2),
    ((36, 64), 1, 64, 9, 1),
    ((36, 64), 16, 16, 5, 1),
    ((36, 64), 32, 32, 7, 1),
    ((36, 64), 64, 64, 3, 1),
    ((36, 64), 64, 64, 7, 1),  # the Lurz model's hidden layers
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    print(" H  W  cin cout  k s | direct ms | direct/fft direct/kgrad | rule", flush=True)
    for (h, w), cin, cout, k, st in CASES:
        x = jnp.asarray(rng.normal(size=(a.batch, h, w, cin)).astype(np.float32))
        kern = jnp.asarray(rng.normal(size=(k, k, cin, cout)).astype(np.float32))
        pads = (((k - 1) // 2, k // 2),) * 2

        def direct(x, kern):
            return lax.conv_general_dilated(
                x, kern, (st, st), pads, dimension_numbers=("NHWC", "HWIO", "NHWC")
            )

        forms = {"direct": direct, "fft": lambda x, kern: fft_conv(x, kern, st, pads)}
        if st == 1:
            forms["kgrad"] = lambda x, kern: fft_kernel_grad_conv(x, kern, pads)
        g = jnp.asarray(rng.normal(size=direct(x, kern).shape).astype(np.float32))
        argnums = (1,) if cin == 1 else (0, 1)
        grads = {
            n: jax.jit(jax.grad(lambda x, kern, f=f: jnp.sum(f(x, kern) * g), argnums=argnums))
            for n, f in forms.items()
        }
        for f in grads.values():
            jax.block_until_ready(f(x, kern))
        ts = {n: [] for n in grads}
        for _ in range(a.rounds):
            for n, f in grads.items():
                t = time.perf_counter()
                jax.block_until_ready(f(x, kern))
                ts[n].append(time.perf_counter() - t)
        d = np.array(ts["direct"])
        ratio = {n: float(np.median(d / np.array(v))) for n, v in ts.items() if n != "direct"}
        rule = cpu_conv_form(k, cin, cout, st)
        rows.append(
            {
                "h": h,
                "w": w,
                "cin": cin,
                "cout": cout,
                "k": k,
                "stride": st,
                "direct_ms": 1e3 * float(np.median(d)),
                **{f"{n}_ms": 1e3 * float(np.median(v)) for n, v in ts.items() if n != "direct"},
                "direct_over_fft": ratio["fft"],
                "direct_over_kgrad": ratio.get("kgrad"),
                "rule": rule,
            }
        )
        kg = ratio.get("kgrad")
        print(
            f"{h:2d} {w:2d} {cin:4d} {cout:4d} {k:2d} {st} | {1e3 * np.median(d):9.1f} | "
            f"{ratio['fft']:10.2f} {'-' if kg is None else f'{kg:12.2f}'} | {rule}",
            flush=True,
        )
    out = {
        "backend": jax.default_backend(),
        "cpu_count": os.cpu_count(),
        "loadavg": list(os.getloadavg()),
        "batch": a.batch,
        "rounds": a.rounds,
        "rows": rows,
    }
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(out, fh, indent=1)
    print(json.dumps(out)[:200], "...")


if __name__ == "__main__":
    main()
