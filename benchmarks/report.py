"""Ratios, goals, the figure and the README table, all computed from the results JSON.

``python benchmarks/report.py [results.json]`` regenerates the plot and the README block from
a saved run (default ``benchmarks/results/latest.json``).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- bench:start -->", "<!-- bench:end -->"

# (workload, label, jax variants [best is taken], idiomatic torch variant(s) [first found],
#  all torch variants [the fastest is the headline baseline]). "{n}" = a MEI neuron count.
_TRAIN_T = ["eager", "loop", "channels_last", "compile", "compile_channels_last"]
_PN_J = ["fused_xla", "fused_shifted", "fused_fft", "vmap", "loop", "vmap_fft", "loop_fft"]
_PN_T = ["loop", "loop_compile", "func_vmap", "grouped", "grouped_channels_last", "grouped_compile"]
_MEI_T = ["batched_sum_n{n}", "batched_sum_channels_last_n{n}", "batched_sum_compile_n{n}"]
COMPARISONS = [
    (
        "lurz_train",
        "Lurz train step (4x64, k9/7, {n_neurons} neurons, b{batch}, {image[0]}x{image[1]})",
        ["jit", "jit_auto"],
        ["eager", "loop"],
        _TRAIN_T,
    ),
    (
        "small_train",
        "`small` config train step ({n_neurons} neurons, b{batch})",
        ["jit", "jit_auto"],
        ["eager", "loop"],
        _TRAIN_T,
    ),
    ("per_neuron", "{n_models} per-neuron CNNs, 1 step each", _PN_J, ["loop"], _PN_T),
    ("mei", "MEIs, {n} neurons", ["vmap_n{n}"], ["batched_sum_n{n}"], _MEI_T),
    (
        "sweep",
        "{n_models}-point sweep, 1 step each",
        ["fused_shifted", "fused_xla", "vmap", "loop", "loop_threads"],
        ["loop"],
        ["loop", "loop_channels_last", "loop_compile"],
    ),
    (
        "inference",
        "Lurz inference, batch {batch}",
        ["jit"],
        ["no_grad"],
        ["no_grad", "channels_last", "compile", "compile_channels_last"],
    ),
]
CONV_HEAVY = ["lurz_train", "small_train", "inference", "per_neuron", "mei"]
SCALES = {
    "scale_neurons": "neurons",
    "scale_models": "models",
    "scale_image": "pixels per image",
    "scale_batch": "batch",
}


def _pick(res: dict, names):
    got = {n: res[n] for n in names if n in res and "items_per_s" in res[n]}
    if not got:
        return None, None
    best = max(got, key=lambda n: got[n]["items_per_s"])
    return best, got[best]


def _rows_for(run, wl, label, jv, tidiom, tall):
    r = run["workloads"].get(wl)
    if not r or "jax" not in r or "torch" not in r:
        return []
    jr, tr = r["jax"].get("results", {}), r["torch"].get("results", {})
    ns = r["jax"]["workload"].get("neurons", [None]) if wl == "mei" else [None]
    rows = []
    for n in ns:

        def fmt(v, n=n):
            return [x.format(n=n) for x in v]

        jname, j = _pick(jr, fmt(jv))
        tname, t = _pick(tr, fmt(tall))
        iname, ti = _pick(tr, fmt(tidiom)[:1]) if fmt(tidiom)[0] in tr else _pick(tr, fmt(tidiom))
        if j is None or t is None:
            continue
        rows.append(
            {
                "workload": wl,
                "label": label.format(**{**r["jax"]["workload"], "n": n}),
                "jax_variant": jname,
                "torch_variant": tname,
                "torch_idiomatic": iname,
                "unit": j["unit"],
                "jax": j["items_per_s"],
                "torch": t["items_per_s"],
                "ratio": j["items_per_s"] / t["items_per_s"],
                "torch_idiomatic_value": ti["items_per_s"] if ti else None,
                "ratio_idiomatic": j["items_per_s"] / ti["items_per_s"] if ti else None,
                "torch_not_working": {
                    k: v["error"]
                    for k, v in tr.items()
                    if isinstance(v, dict) and "error" in v and k in fmt(tall)
                },
                "jax_peak_rss_mib": r["jax"].get("peak_rss_mib"),
                "torch_peak_rss_mib": r["torch"].get("peak_rss_mib"),
                "jax_peak_device_mib": r["jax"].get("peak_device_mib"),
                "torch_peak_device_mib": r["torch"].get("peak_device_mib"),
                "compile_s": j.get("compile_s", j.get("first_call_s")),
            }
        )
    return rows


def ratios(run: dict) -> list[dict]:
    """One row per comparison: JAX's best variant against the FASTEST torch variant
    (``ratio``) and against the idiomatic eager one (``ratio_idiomatic``)."""
    rows = []
    for c in COMPARISONS:
        rows += _rows_for(run, *c)
    return rows


def scaling(run: dict) -> list[dict]:
    """Per scaling curve and side: the fitted log-log slope of seconds per step vs size
    (1 = linear cost; a JAX slope above torch's means JAX's cost grows faster)."""
    import numpy as np

    out = []
    for wl, xl in SCALES.items():
        r = run["workloads"].get(wl)
        if not r:
            continue
        row = {"workload": wl, "x": xl}
        for side in ("jax", "torch"):
            res = r.get(side, {}).get("results", {})
            pts = sorted((v["x"], v["median_s"]) for v in res.values() if "median_s" in v)
            if len(pts) >= 2:
                lx, ly = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
                row[f"{side}_slope"] = float(np.polyfit(lx, ly, 1)[0])
                row[f"{side}_points"] = pts
        if "jax_slope" in row and "torch_slope" in row:
            worse = row["jax_slope"] > row["torch_slope"] + 0.05
            row["note"] = (
                f"JAX's cost grows faster with {xl} (slope {row['jax_slope']:.2f} vs "
                f"{row['torch_slope']:.2f})"
                if worse
                else ""
            )
        out.append(row)
    return out


def roofline(run: dict) -> list[dict]:
    """Achieved conv GFLOP/s (analytic conv FLOPs / median time) of the conv-heavy
    comparisons, for the JAX and the torch variant of each ratio row, vs the matmul peak."""
    peaks = run.get("matmul_gflops", {})
    out, seen = [], set()
    for row in run.get("ratios", []):
        wl = row["workload"]
        if wl not in CONV_HEAVY:
            continue
        res = run["workloads"][wl]
        j = res["jax"]["results"][row["jax_variant"]]
        t = res["torch"]["results"][row["torch_variant"]]
        if "gflops" not in j:
            continue
        for side, name, r in (("jax", row["jax_variant"], j), ("torch", row["torch_variant"], t)):
            if (wl, side, name) in seen:
                continue
            seen.add((wl, side, name))
            x = {
                "workload": wl,
                "variant": f"{side}:{name}",
                "gflops": j["gflops"],
                "achieved": j["gflops"] / r["median_s"],
            }
            if peaks.get(side):
                x["fraction_of_peak"] = x["achieved"] / peaks[side]
            out.append(x)
    return out


def goals(run: dict) -> list[dict]:
    """The issue's goals, each against the FASTEST torch variant of the same run."""
    rows = {}
    for r in run.get("ratios", []):
        rows.setdefault(r["workload"], []).append(r)
    g = []

    def add(name, ok, value):
        g.append({"goal": name, "met": bool(ok), "value": value})

    for wl, need in (
        ("lurz_train", 1.2),
        ("small_train", 1.0),
        ("per_neuron", 3.0),
        ("sweep", 1.5),
        ("inference", 1.0),
    ):
        for r in rows.get(wl, [])[:1]:
            add(
                f"{wl}: >= {need}x the fastest torch variant",
                r["ratio"] >= need,
                round(r["ratio"], 2),
            )
    mei = rows.get("mei", [])
    if mei:
        r = mei[-1]
        add(
            f"{r['label']}: >= 2x the fastest torch variant",
            r["ratio"] >= 2.0,
            round(r["ratio"], 2),
        )
    rl = [
        x
        for x in run.get("roofline", [])
        if x["variant"].startswith("jax:jit")
        and x["workload"] in ("lurz_train", "small_train", "inference")
    ]
    for x in rl:
        if "fraction_of_peak" in x:
            add(
                f"{x['workload']}: >= 50% of matmul GFLOP/s",
                x["fraction_of_peak"] >= 0.5,
                round(x["fraction_of_peak"], 2),
            )
    mj = run["workloads"].get("mei", {}).get("jax", {})
    if mj:
        add(
            "MEI peak RSS <= 4 GiB",
            mj.get("peak_rss_mib", 1e9) <= 4096,
            round(mj.get("peak_rss_mib", 0)),
        )
    return g


def _load_note(machine: dict) -> str:
    """A caveat when other jobs shared the cores (load above the core count)."""
    load = max(machine["loadavg_start"][0], machine.get("loadavg_end", machine["loadavg_start"])[0])
    if load > machine["cores"] + 0.5:
        return "; the cores were shared with other jobs, so treat single numbers as +-20%"
    return "; no other jobs on the machine"


def _torch_variants(run: dict) -> str:
    names = sorted(
        {
            re.sub(r"_n\d+$", "", k)
            for w in run["workloads"].values()
            for k, v in w.get("torch", {}).get("results", {}).items()
            if "items_per_s" in v and not w["torch"].get("workload", {}).get("of")
        }
    )
    return ", ".join(names) or "none"


def table(run: dict) -> str:
    m = run["machine"]
    v = run["versions"]
    not_run = (
        "; NOT RUN (the run stopped early: an equivalence check failed or time ran out, "
        "see benchmarks/README.md): " + ", ".join(run["partial"])
        if run.get("partial")
        else ""
    )
    lines = [
        START,
        "",
        f"Measured {run['date']} on {m['cpu']} ({m['cores']} cores, "
        f"{v.get('jax_backend', 'cpu')}; load average during the run "
        f"{m['loadavg_start'][0]:.1f} -> {m.get('loadavg_end', m['loadavg_start'])[0]:.1f}"
        f"{_load_note(m)}), "
        f"jax {v.get('jax')}, torch {v.get('torch')} ({v.get('torch_device')}), "
        f"{'quick sizes' if run.get('quick') else 'full sizes'}"
        f"{not_run}. "
        "Ratio = JAX throughput / throughput of the FASTEST PyTorch variant measured in the "
        f"same run (torch variants timed: {_torch_variants(run)}; > 1: JAX faster); the "
        "ratio against the idiomatic eager baseline beside it. Medians over repeats, warm-up "
        "and compilation excluded. Every workload (and every torch variant) passed the "
        "equivalence checks before timing.",
        "",
        "| workload | JAX (variant) | fastest PyTorch (variant) | unit | ratio | vs eager "
        "torch | peak RSS JAX / torch (MiB) | JAX compile (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in run.get("ratios", []):
        idi = r.get("ratio_idiomatic")
        vs_eager = "" if idi is None else f"{idi:.2f}x ({r.get('torch_idiomatic')})"
        lines.append(
            f"| {r['label']} | {r['jax']:.3g} ({r['jax_variant']}) | "
            f"{r['torch']:.3g} ({r['torch_variant']}) | {r['unit']} | "
            f"**{r['ratio']:.2f}x** | "
            f"{vs_eager} | "
            f"{r['jax_peak_rss_mib']:.0f} / "
            f"{r['torch_peak_rss_mib']:.0f} | {r['compile_s'] or 0:.1f} |"
        )
    broken = sorted({k for r in run.get("ratios", []) for k in r.get("torch_not_working", {})})
    if broken:
        lines += ["", "PyTorch variants that did not run on this machine: " + ", ".join(broken)]
    mg = run.get("matmul_gflops", {})
    lines += [
        "",
        f"Matmul peak (2048^2 f32): JAX {mg.get('jax', 0):.0f} GFLOP/s, "
        f"torch {mg.get('torch', 0):.0f} GFLOP/s (best of 10, same run). Conv-heavy "
        "steps (achieved conv GFLOP/s = analytic conv FLOPs x3 for a train step / "
        "median time):",
        "",
    ]
    for x in run.get("roofline", []):
        lines.append(
            f"- {x['workload']} {x['variant']}: {x['achieved']:.1f} GFLOP/s "
            f"({100 * x.get('fraction_of_peak', 0):.0f}% of that side's matmul peak)"
        )
    sc = run.get("scaling", [])
    if sc:
        lines += ["", "Scaling (fitted log-log slope of seconds per step; 1 = linear):", ""]
        for x in sc:
            lines.append(
                f"- {x['workload']} ({x['x']}): JAX {x.get('jax_slope', float('nan')):.2f}, "
                f"torch {x.get('torch_slope', float('nan')):.2f}"
                + (f" -- {x['note']}" if x.get("note") else "")
            )
    lines += ["", "Goals:", ""]
    for g in run.get("goals", []):
        lines.append(f"- {'met' if g['met'] else 'NOT met'}: {g['goal']} ({g['value']})")
    lines += [
        "",
        "Figure: `benchmarks/results/bench.png`; raw numbers: "
        "`benchmarks/results/latest.json`; how to run (CPU and GPU): "
        "`benchmarks/README.md`.",
        "",
        END,
    ]
    return "\n".join(lines)


def write_readme(
    run: dict,
    readme: Path = ROOT / "README.md",
    bench_readme: Path | None = ROOT / "benchmarks" / "README.md",
) -> None:
    """Replace the marked block in the README and in ``benchmarks/README.md`` with the same
    table (append a ``## Benchmarks`` / ``## Last full run`` section with markers if absent)."""
    block = table(run)
    for path, title in ((readme, "Benchmarks"), (bench_readme, "Last full run")):
        if path is None:
            continue
        text = path.read_text() if path.exists() else ""
        if START in text and END in text:
            text = re.sub(
                re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S
            )
        else:
            text = text.rstrip("\n") + f"\n\n## {title}\n\n" + block + "\n"
        path.write_text(text)


def plot(run: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(17, 8.5))
    axs = fig.subplots(2, 4).ravel()
    axs[7].set_visible(False)
    slopes = {x["workload"]: x for x in run.get("scaling") or scaling(run)}
    rows = run.get("ratios", [])
    ax = axs[0]
    ax.barh(range(len(rows)), [r["ratio"] for r in rows], color="tab:blue")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r['workload']} vs {r['torch_variant']}" for r in rows], fontsize=7)
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xlabel("JAX / PyTorch throughput")
    ax.set_title("ratios (same run)")
    for ax, (wl, xl) in zip(axs[1:5], SCALES.items(), strict=True):
        r = run["workloads"].get(wl)
        if not r:
            ax.set_visible(False)
            continue
        for side, style in (("jax", "o-"), ("torch", "s--")):
            res = r.get(side, {}).get("results", {})
            pts = sorted((v["x"], v["median_s"]) for v in res.values() if "median_s" in v)
            slope = slopes.get(wl, {}).get(f"{side}_slope")
            if pts:
                lab = side if slope is None else f"{side} (slope {slope:.2f})"
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=lab)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xl)
        ax.set_ylabel("seconds per step")
        ax.set_title(f"cost vs {xl}")
        ax.legend()
    ax = axs[5]
    rl = run.get("roofline", [])
    peak = run.get("matmul_gflops", {}).get("jax")
    ax.bar(
        range(len(rl)),
        [x["achieved"] for x in rl],
        color=["tab:blue" if x["variant"].startswith("jax") else "tab:orange" for x in rl],
    )
    ax.set_xticks(range(len(rl)))
    ax.set_xticklabels([f"{x['workload']}\n{x['variant']}" for x in rl], rotation=90, fontsize=6)
    if peak:
        ax.axhline(peak, color="k", lw=0.8, label=f"JAX matmul peak {peak:.0f}")
        ax.axhline(peak / 2, color="k", lw=0.8, ls=":", label="50%")
        ax.legend(fontsize=7)
    ax.set_ylabel("conv GFLOP/s")
    ax.set_title("roofline-style: achieved vs matmul peak")
    ax = axs[6]
    names = [r["workload"] + ":" + r["torch_variant"] for r in rows]
    ax.barh(range(len(rows)), [r["jax_peak_rss_mib"] for r in rows], height=0.4, label="JAX")
    ax.barh(
        [i + 0.4 for i in range(len(rows))],
        [r["torch_peak_rss_mib"] for r in rows],
        height=0.4,
        label="torch",
    )
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(names, fontsize=7)
    ax.set_xlabel("peak RSS (MiB)")
    ax.legend()
    fig.suptitle(
        f"jaxsel vs PyTorch, {run['machine']['cpu']} x{run['machine']['cores']}, {run['date']}"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def finish(run: dict) -> dict:
    run["ratios"] = ratios(run)
    run["roofline"] = roofline(run)
    run["scaling"] = scaling(run)
    run["goals"] = goals(run)
    return run


if __name__ == "__main__":
    p = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "benchmarks/results/latest.json"
    run = finish(json.loads(p.read_text()))
    if p.name == "partial.json":  # an interrupted run: publish what exists
        import os

        run["machine"].setdefault("loadavg_end", list(os.getloadavg()))
        run["partial"] = [
            n
            for n in (
                "lurz_train",
                "small_train",
                "per_neuron",
                "mei",
                "sweep",
                "inference",
                "scale_neurons",
                "scale_models",
                "scale_image",
            )
            if n not in run["workloads"]
        ]
        (p.parent / "latest.json").write_text(json.dumps(run, indent=1, default=float))
    plot(run, p.parent / "bench.png")
    write_readme(run)
