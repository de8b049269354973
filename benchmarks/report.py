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

# (workload, label, jax variant(s) [best is taken], torch variant, what is compared)
COMPARISONS = [
    ("lurz_train", "Lurz train step (4x64, k9/7, 1000 neurons, b64, 36x64)", ["jit"], "loop"),
    ("small_train", "`small` config train step (300 neurons, b64)", ["jit"], "loop"),
    (
        "per_neuron",
        "100 per-neuron CNNs, 1 step each vs torch loop",
        ["fused_xla", "fused_shifted", "fused_fft", "vmap", "loop", "vmap_fft", "loop_fft"],
        "loop",
    ),
    (
        "per_neuron",
        "100 per-neuron CNNs, 1 step each vs torch.func.vmap",
        ["fused_xla", "fused_shifted", "fused_fft", "vmap", "loop", "vmap_fft", "loop_fft"],
        "func_vmap",
    ),
    ("mei", "MEIs, 100 neurons (vmap vs batched sum)", ["vmap_n{a}"], "batched_sum_n{a}"),
    ("mei", "MEIs, 1000 neurons (vmap vs batched sum)", ["vmap_n{b}"], "batched_sum_n{b}"),
    (
        "sweep",
        "24-point sweep, 1 step each",
        ["fused_shifted", "fused_xla", "vmap", "loop"],
        "loop",
    ),
    ("inference", "Lurz inference, batch 256", ["jit"], "no_grad"),
]
CONV_HEAVY = ["lurz_train", "small_train", "inference", "per_neuron", "mei"]


def _pick(res: dict, names):
    got = {n: res[n] for n in names if n in res and "items_per_s" in res[n]}
    if not got:
        return None, None
    best = max(got, key=lambda n: got[n]["items_per_s"])
    return best, got[best]


def ratios(run: dict) -> list[dict]:
    """One row per comparison: JAX and torch throughput and their ratio (JAX / torch)."""
    rows = []
    for wl, label, jv, tv in COMPARISONS:
        r = run["workloads"].get(wl)
        if not r or "jax" not in r or "torch" not in r:
            continue
        jr, tr = r["jax"].get("results", {}), r["torch"].get("results", {})
        if wl == "mei":
            ns = r["jax"]["workload"]["neurons"]
            fmt = {"a": ns[0], "b": ns[-1]}
            jv = [v.format(**fmt) for v in jv]
            tv = tv.format(**fmt)
            label = (
                label.replace("100", str(ns[0]), 1)
                if "100 n" in label
                else label.replace("1000", str(ns[-1]), 1)
            )
        jname, j = _pick(jr, jv)
        if j is None or tv not in tr:
            continue
        t = tr[tv]
        rows.append(
            {
                "workload": wl,
                "label": label,
                "jax_variant": jname,
                "torch_variant": tv,
                "unit": j["unit"],
                "jax": j["items_per_s"],
                "torch": t["items_per_s"],
                "ratio": j["items_per_s"] / t["items_per_s"],
                "jax_peak_rss_mib": r["jax"].get("peak_rss_mib"),
                "torch_peak_rss_mib": r["torch"].get("peak_rss_mib"),
                "jax_peak_device_mib": r["jax"].get("peak_device_mib"),
                "torch_peak_device_mib": r["torch"].get("peak_device_mib"),
                "compile_s": j.get("compile_s", j.get("first_call_s")),
            }
        )
    return rows


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
    rows = {(r["workload"], r["torch_variant"]): r for r in run.get("ratios", [])}
    g = []

    def add(name, ok, value):
        g.append({"goal": name, "met": ok, "value": value})

    for wl in ("lurz_train", "small_train"):
        r = rows.get((wl, "loop"))
        if r:
            add(f"{wl}: JAX/torch >= 1.0", r["ratio"] >= 1.0, round(r["ratio"], 2))
    for tv in ("loop", "func_vmap"):
        r = rows.get(("per_neuron", tv))
        if r:
            add(f"per_neuron: >= 3x torch {tv}", r["ratio"] >= 3.0, round(r["ratio"], 2))
    for key, r in rows.items():
        if key[0] == "mei":
            add(f"MEI {r['label']}: >= 1.0", r["ratio"] >= 1.0, round(r["ratio"], 2))
    rl = [
        x
        for x in run.get("roofline", [])
        if x["variant"] == "jax:jit" and x["workload"] in ("lurz_train", "small_train", "inference")
    ]
    for x in rl:
        if "fraction_of_peak" in x:
            add(
                f"{x['workload']}: >= 50% of matmul GFLOP/s",
                x["fraction_of_peak"] >= 0.5,
                round(x["fraction_of_peak"], 2),
            )
    mei = run["workloads"].get("mei", {}).get("jax", {})
    if mei:
        add(
            "MEI peak RSS <= 4 GiB",
            mei.get("peak_rss_mib", 1e9) <= 4096,
            round(mei.get("peak_rss_mib", 0)),
        )
    return g


def _load_note(machine: dict) -> str:
    """A caveat when other jobs shared the cores (load above the core count)."""
    load = max(machine["loadavg_start"][0], machine.get("loadavg_end", machine["loadavg_start"])[0])
    if load > machine["cores"] + 0.5:
        return "; the cores were shared with other jobs, so treat single numbers as +-20%"
    return "; no other jobs on the machine"


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
        "Ratio = JAX throughput / PyTorch throughput measured in the same run (> 1: JAX "
        "faster); medians over repeats, warm-up and compilation excluded. Every workload "
        "passed the JAX-vs-PyTorch equivalence checks before timing.",
        "",
        "| workload | JAX (variant) | PyTorch (variant) | unit | ratio | peak RSS "
        "JAX / torch (MiB) | JAX compile (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in run.get("ratios", []):
        lines.append(
            f"| {r['label']} | {r['jax']:.3g} ({r['jax_variant']}) | "
            f"{r['torch']:.3g} ({r['torch_variant']}) | {r['unit']} | "
            f"**{r['ratio']:.2f}x** | {r['jax_peak_rss_mib']:.0f} / "
            f"{r['torch_peak_rss_mib']:.0f} | {r['compile_s'] or 0:.1f} |"
        )
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


def write_readme(run: dict, readme: Path = ROOT / "README.md") -> None:
    """Replace the marked block (append ``## Benchmarks`` + markers if absent)."""
    text = readme.read_text() if readme.exists() else ""
    block = table(run)
    if START in text and END in text:
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n## Benchmarks\n\n" + block + "\n"
    readme.write_text(text)


def plot(run: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 8.5))
    axs = fig.subplots(2, 3).ravel()
    rows = run.get("ratios", [])
    ax = axs[0]
    ax.barh(range(len(rows)), [r["ratio"] for r in rows], color="tab:blue")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r['workload']} vs {r['torch_variant']}" for r in rows], fontsize=7)
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xlabel("JAX / PyTorch throughput")
    ax.set_title("ratios (same run)")
    for ax, wl, xl, logx in (
        (axs[1], "scale_neurons", "neurons", True),
        (axs[2], "scale_models", "models", True),
        (axs[3], "scale_image", "pixels per image", True),
    ):
        r = run["workloads"].get(wl)
        if not r:
            ax.set_visible(False)
            continue
        for side, style in (("jax", "o-"), ("torch", "s--")):
            res = r.get(side, {}).get("results", {})
            pts = sorted((v["x"], v["median_s"]) for v in res.values())
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=side)
        ax.set_xscale("log" if logx else "linear")
        ax.set_yscale("log")
        ax.set_xlabel(xl)
        ax.set_ylabel("seconds per step")
        ax.set_title(f"cost vs {xl}")
        ax.legend()
    ax = axs[4]
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
    ax = axs[5]
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
