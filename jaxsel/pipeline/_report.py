"""``report.html``: one self-contained page summarising a run folder.

The page is built only from files in the run folder (so ``jaxsel report`` can redraw it
later): ``data/summary.json``, ``metrics.json`` (its ``provenance`` block heads the page),
``stages/*.json``, ``config.toml`` and the
figure manifest ``figures/index.json`` (one entry per figure: file, title, section,
caption). Figures are embedded as base64 PNG (``embed=True``) or linked beside the page.
"""

from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path

# report sections, in page order: (key, heading, what the figures there show)
SECTIONS = (
    ("data", "Dataset", "What was recorded (or simulated)."),
    (
        "selection",
        "Neuron selection",
        "Reliability (oracle correlation) and tuning statistics; the selection rule.",
    ),
    (
        "models",
        "Model quality",
        "Test-set correlations of the LN and CNN models, LN vs CNN "
        "per neuron, and (twin) correlation to the true response.",
    ),
    (
        "mei",
        "Most exciting inputs",
        "MEIs of the model (and of the true neurons on the twin) with their activation traces.",
    ),
    ("rf", "Gradient receptive fields", "d rate / d pixel at the mean (gray) image."),
    ("cross", "Cross-activation", "Each neuron's response to every MEI, normalised per neuron."),
    (
        "gabor",
        "MEI vs Gabor",
        "Optimal Gabors next to the MEIs; image metrics and the "
        "model's activation to MEI, Gabor and best natural image.",
    ),
    (
        "information",
        "Information and selectivity",
        "Single-neuron information and selectivity indices.",
    ),
    (
        "recovery",
        "Ground-truth recovery (twin)",
        "MEIs and Gabors against the twin's true optimal stimuli and parameters.",
    ),
    ("other", "Other figures", ""),
)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1150px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
.sub{color:#666}.note{color:#555;font-size:.95em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}th{background:#f5f5f5}
td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{color:#444;font-size:.92em}
.ok{color:#1a7f37}.bad{color:#b42318}.miss{color:#888}
pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.85em}
"""


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if v is None:
        return "n/a"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items())
    if isinstance(v, list):
        return ", ".join(_fmt(x) for x in v)
    return str(v)


def _read_json(path: Path, default):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return default


def _table(rows, header=None) -> str:
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
    for row in rows:
        cells = []
        for c in row:
            cls = ' class="num"' if isinstance(c, (int, float)) and not isinstance(c, bool) else ""
            cells.append(f"<td{cls}>{html.escape(_fmt(c))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _img(run: Path, file: str, embed: bool) -> str:
    path = run / "figures" / file
    if embed:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'<img src="data:image/png;base64,{data}" alt="{html.escape(file)}">'
    return f'<img src="figures/{html.escape(file)}" alt="{html.escape(file)}">'


HEADLINE_METRICS = (  # the numbers a run is summarised by (report, jaxsel demo)
    "n_neurons",
    "n_selected",
    "oracle_spearman_vs_truth",
    "ln_corr_to_truth_median",
    "cnn_corr_to_truth_median",
    "cnn_corr_to_truth_p10",
    "cnn_corr_to_truth_n_below_0_5",
    "cnn_test_corr_median",
    "mei_n_neurons",
    "mei_sample_random",
    "mei_truth_r_simple_median",
    "mei_truth_r_simple_p10",
    "mei_truth_r_complex_median",
    "mei_truth_r_complex_p10",
    "mei_true_drive_fraction_median",
    "mei_true_drive_fraction_p10",
    "mei_true_drive_fraction_n_below_0_9",
    "mei_vs_best_natural_ratio_median",
    "gabor_orientation_error_deg_median",
    "gabor_orientation_error_deg_p90",
    "ensemble_members",
    "runtime_s",
)


def ensemble_key(key: str) -> str | None:
    """The ensemble counterpart of a single-model metric (``cnn_*`` -> ``ensemble_*``,
    ``mei_*`` -> ``ensemble_mei_*``, ``gabor_*`` -> ``ensemble_gabor_*``), or None."""
    if key.startswith("cnn_"):
        return "ensemble_" + key[4:]
    if key.startswith(("mei_truth", "mei_true", "mei_vs", "gabor_")):
        return "ensemble_" + key
    return None


# thresholds the acceptance criteria state, shown next to the metric (None = informative)
CHECKS = {
    "cnn_corr_to_truth_median": (">=", 0.8),  # issue 3: small CNN vs the true response
}


def build_report(run: str | Path, *, title: str | None = None, embed: bool = True) -> Path:
    """Write ``run/report.html`` from the run folder's contents.

    Args:
      run: the run folder.
      title: page title (default: the run name).
      embed: embed figures as base64 (one self-contained file) instead of linking them.

    Returns:
      The path of the report.
    """
    run = Path(run)
    metrics = _read_json(run / "metrics.json", {})
    summary = _read_json(run / "data" / "summary.json", {})
    status = _read_json(run / "stages" / "status.json", {})
    figs = _read_json(run / "figures" / "index.json", [])
    title = title or run.name
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>jaxsel report: {html.escape(title)}</title><style>{_CSS}</style>"
        f"</head><body>",
        f"<h1>jaxsel report: {html.escape(title)}</h1>",
        f"<p class='sub'>Run folder <code>{html.escape(str(run.resolve()))}</code>; "
        f"written {time.strftime('%Y-%m-%d %H:%M')}.</p>",
    ]
    parts += _provenance_html(metrics.get("provenance"))
    parts += _headline_html({k: v for k, v in metrics.items() if k != "provenance"})
    parts += _stages_html(run, status)
    parts += _sections_html(run, figs, summary, embed)
    cfg = run / "config.toml"
    if cfg.is_file():
        parts.append("<h2>Configuration</h2><pre>" + html.escape(cfg.read_text()) + "</pre>")
    parts.append("</body></html>")
    out = run / "report.html"
    tmp = out.with_name(".report.html.tmp")
    tmp.write_text("\n".join(parts))
    tmp.replace(out)
    return out


# provenance keys shown in the header, with their labels
PROVENANCE = (
    ("jaxsel_version", "jaxsel"),
    ("git_commit", "git commit"),
    ("host", "host"),
    ("device", "device"),
    ("date_utc", "date (UTC)"),
    ("python", "Python"),
    ("jax", "JAX"),
)


def _provenance_html(prov) -> list[str]:
    """Where and with what the results were computed (``metrics.json`` ``provenance``)."""
    if not isinstance(prov, dict):
        return ["<p class='miss'>No provenance recorded (metrics.json has no 'provenance').</p>"]
    rows = [(label, prov.get(key) or "none") for key, label in PROVENANCE]
    return [
        "<h2>Provenance</h2>",
        _table(rows, ("computed with", "")),
        "<p class='note'>The full resolved config is in <code>metrics.json</code> "
        "(provenance.config) and under Configuration below.</p>",
    ]


def _headline_html(metrics: dict) -> list[str]:
    """The headline-numbers table (single model, and the ensemble mean beside it when the
    run has one; the targets of :data:`CHECKS`) and all metrics."""
    parts = ["<h2>Headline numbers</h2>"]
    rows, more = [], []
    ens = any(k.startswith("ensemble_") for k in metrics)
    order = [k for k in HEADLINE_METRICS if k in metrics]
    order += [k for k in metrics if k not in HEADLINE_METRICS]
    for k in order:
        v = metrics[k]
        if k.startswith("stage_seconds_"):
            continue
        check = ""
        if k in CHECKS and isinstance(v, (int, float)):
            op, thr = CHECKS[k]
            ok = v >= thr if op == ">=" else v <= thr
            check = f"{'meets' if ok else 'misses'} {op} {thr}"
        if k in HEADLINE_METRICS:
            ek = ensemble_key(k)
            e = metrics.get(ek) if ek else None
            rows.append((k, v, e, check) if ens else (k, v, check))
        else:
            more.append((k, v, check))
    head = ("metric", "value", "ensemble mean", "target") if ens else ("metric", "value", "target")
    parts.append(_table(rows, head) if rows else "<p class='miss'>No metrics yet.</p>")
    if ens:
        parts.append(
            "<p class='note'>value: the single CNN; ensemble mean: the mean response of the "
            f"{metrics.get('ensemble_members', 'K')} ensemble members ([train] ensemble), "
            "with MEIs and Gabors optimised on it.</p>"
        )
    if more:
        parts.append(
            "<details><summary>All metrics</summary>"
            + _table(more, ("metric", "value", "target"))
            + "</details>"
        )
    return parts


def _stages_html(run: Path, status: dict) -> list[str]:
    """The stage table (status, with the reason of a stage that was not applicable)."""
    if not status:
        return []
    srows = []
    for stage, st in status.items():
        m = _read_json(run / "stages" / f"{stage}.json", {})
        srows.append((stage, st, m.get("seconds", "")))
    parts = ["<h2>Stages</h2>" + _table(srows, ("stage", "status", "seconds"))]
    missing = [s for s, st in status.items() if st not in ("done", "skipped")]
    if missing:
        parts.append(
            f"<p class='note'>Not computed in this run: {', '.join(missing)} "
            "(see the status column for the reason); their sections below are "
            "empty.</p>"
        )
    return parts


def _sections_html(run: Path, figs: list, summary: dict, embed: bool) -> list[str]:
    """One section per :data:`SECTIONS` entry with its figures (the data section: the
    dataset summary too)."""
    parts: list[str] = []
    by_section: dict[str, list] = {}
    for f in figs:
        if (run / "figures" / f.get("file", "")).is_file():
            sec = f.get("section", "other")
            by_section.setdefault(
                sec if sec in {s[0]: 1 for s in SECTIONS} else "other", []
            ).append(f)
    for key, heading, blurb in SECTIONS:
        items = by_section.get(key, [])
        extra = ""
        if key == "data" and summary:
            extra = _table(list(summary.items()), ("property", "value"))
        if not items and not extra:
            if key == "other":
                continue
            parts.append(
                f"<h2>{html.escape(heading)}</h2><p class='miss'>Not available in this run.</p>"
            )
            continue
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if blurb:
            parts.append(f"<p class='note'>{html.escape(blurb)}</p>")
        parts.append(extra)
        for f in items:
            parts.append(
                f"<figure>{_img(run, f['file'], embed)}<figcaption><b>"
                f"{html.escape(f.get('title', f['file']))}.</b> "
                f"{html.escape(f.get('caption', ''))}</figcaption></figure>"
            )
    return parts
