"""Benchmark: one convolution layer, forward + backward, XLA's direct convolution vs FFT.

The measurements behind ``conv="auto"`` of :func:`jaxsel.fit_many` (batch 64, one
model; the input gradient is skipped for 1-channel inputs, as for images). Prints a table and
JSON. Usage::

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

from jaxsel.models._conv_impl import fft_conv, fft_is_faster_on_cpu

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
]


def time_ms(f, reps):
    jax.block_until_ready(f())
    t = time.perf_counter()
    for _ in range(reps):
        jax.block_until_ready(f())
    return (time.perf_counter() - t) / reps * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    print(" H  W  cin cout  k s | direct ms   fft ms  direct/fft  rule")
    for (h, w), cin, cout, k, st in CASES:
        x = jnp.asarray(rng.normal(size=(a.batch, h, w, cin)).astype(np.float32))
        kern = jnp.asarray(rng.normal(size=(k, k, cin, cout)).astype(np.float32))
        pads = (((k - 1) // 2, k // 2),) * 2

        def direct(x, kern):
            return lax.conv_general_dilated(
                x, kern, (st, st), pads, dimension_numbers=("NHWC", "HWIO", "NHWC")
            )

        def by_fft(x, kern):
            return fft_conv(x, kern, st, pads)

        g = jnp.asarray(rng.normal(size=direct(x, kern).shape).astype(np.float32))
        argnums = (1,) if cin == 1 else (0, 1)
        ms = []
        for f in (direct, by_fft):
            grad = jax.jit(jax.grad(lambda x, kern, f=f: jnp.sum(f(x, kern) * g), argnums=argnums))
            ms.append(time_ms(lambda grad=grad: grad(x, kern), a.reps))
        rule = fft_is_faster_on_cpu(k, cin, cout, st)
        rows.append(
            {
                "h": h,
                "w": w,
                "cin": cin,
                "cout": cout,
                "k": k,
                "stride": st,
                "direct_ms": ms[0],
                "fft_ms": ms[1],
                "ratio": ms[0] / ms[1],
                "rule_says_fft": rule,
            }
        )
        print(
            f"{h:2d} {w:2d} {cin:4d} {cout:4d} {k:2d} {st} | {ms[0]:9.2f} {ms[1]:8.2f} "
            f"{ms[0] / ms[1]:10.2f}  {'fft' if rule else 'xla'}",
            flush=True,
        )
    out = {
        "backend": jax.default_backend(),
        "cpu_count": os.cpu_count(),
        "batch": a.batch,
        "rows": rows,
    }
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(out, fh, indent=1)
    print(json.dumps(out)[:200], "...")


if __name__ == "__main__":
    main()
