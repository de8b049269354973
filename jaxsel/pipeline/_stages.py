"""The pipeline stages: one function per stage, each a thin call into the library.

A stage reads what it needs through the :class:`Context` (which loads earlier stages'
outputs from the run folder, so a resumed run works), writes its outputs into the run
folder and returns their relative paths; :func:`run_pipeline` records a done-marker holding
the hash of the config sections the stage depends on (:data:`DEPENDS`). A stage that lacks
an input (no trained model, no ground truth) raises :class:`~jaxsel.MissingInput`:
the run goes on, records the stage as ``"not applicable: <reason>"`` and the report and the
command line say so.
"""

from __future__ import annotations

import hashlib
import time
import traceback

from jaxsel._dataclass_io import to_dict
from jaxsel._errors import JaxselError, MissingInput
from jaxsel._provenance import provenance
from jaxsel.pipeline._config_docs import to_toml
from jaxsel.pipeline._config_io import section_hash
from jaxsel.pipeline._config_schema import STAGES, Config
from jaxsel.pipeline._context import Context, check_data_paths
from jaxsel.pipeline._data_stages import stage_data, stage_select
from jaxsel.pipeline._figures import draw_all
from jaxsel.pipeline._information_stage import stage_information
from jaxsel.pipeline._insilico_stages import stage_gabor, stage_mei
from jaxsel.pipeline._model_stages import stage_evaluate, stage_train
from jaxsel.pipeline._report import build_report
from jaxsel.pipeline._rundir import RunDir, attach_library_log, write_json, write_text
from jaxsel.pipeline._session_config import check_session_config, uses_sessions
from jaxsel.pipeline._session_stages import SESSION_STAGE_FUNCS

# config sections whose values each stage's outputs depend on (cumulative over the chain)
DEPENDS = {
    "data": ("data", "run.seed"),
    "select": ("data", "select"),
    "train": ("data", "select", "train", "run.seed"),
    "evaluate": ("data", "select", "train", "evaluate", "run.seed"),
    "information": ("data", "select", "train", "information", "run.seed"),
    "mei": ("data", "select", "train", "mei", "run.seed"),
    "gabor": ("data", "select", "train", "mei", "gabor", "run.seed"),
    "figures": (
        "data",
        "select",
        "train",
        "evaluate",
        "information",
        "mei",
        "gabor",
        "report",
        "run.seed",
    ),
    "report": (
        "data",
        "select",
        "train",
        "evaluate",
        "information",
        "mei",
        "gabor",
        "report",
        "run.seed",
    ),
}


# cheap stages that read everything before them: always redrawn
ALWAYS = ("figures", "report")

# the stages whose outputs each stage reads: a stage's key includes their markers' tokens,
# so recomputing a stage invalidates every stage after it (the keys chain)
UPSTREAM = {
    "data": (),
    "select": ("data",),
    "train": ("select",),
    "evaluate": ("train",),
    "information": ("train",),
    "mei": ("train",),
    "gabor": ("mei",),
    "figures": (),
    "report": (),
}


def downstream(stage: str) -> list[str]:
    """Every stage that reads ``stage``'s outputs, directly or through another stage."""
    out: list[str] = []
    for s in STAGES:
        if any(u == stage or u in out for u in UPSTREAM[s]):
            out.append(s)
    return out


def stage_key(cfg: Config, rd: RunDir, name: str) -> str:
    """The key of ``name``'s done-marker: the hash of its config sections chained with the
    tokens of its upstream stages' markers (a recomputed upstream stage changes it)."""
    key = section_hash(cfg, *DEPENDS[name])
    ups = [rd.token(u) for u in UPSTREAM[name]]
    if not ups:
        return key
    return hashlib.sha256("/".join([key, *ups]).encode()).hexdigest()[:16]


def stage_figures(ctx: Context) -> list[str]:
    """Draw every figure the run's outputs allow (the figures of :mod:`jaxsel.viz`)."""
    entries = draw_all(ctx)
    return ["figures/index.json"] + [f"figures/{e['file']}" for e in entries]


def stage_report(ctx: Context) -> list[str]:
    """Write ``report.html`` from the run folder."""
    write_json(ctx.rd / "stages" / "status.json", ctx.cache.get("status", {}))
    path = build_report(
        ctx.rd.path,
        title=ctx.cfg.report.title or ctx.cfg.run.name,
        embed=ctx.cfg.report.embed_images,
    )
    ctx.log.info(f"  report: {path}")
    return ["report.html"]


STAGE_FUNCS = {
    "data": stage_data,
    "select": stage_select,
    "train": stage_train,
    "evaluate": stage_evaluate,
    "information": stage_information,
    "mei": stage_mei,
    "gabor": stage_gabor,
    "figures": stage_figures,
    "report": stage_report,
}
assert set(STAGE_FUNCS) == set(STAGES) == set(DEPENDS)


# =========================================================================== runner


def run_pipeline(cfg: Config, *, force: bool = False, stages=None, echo: bool = True) -> dict:
    """Run the configured stages in order, skipping finished ones.

    Args:
      cfg: the validated config.
      force: recompute finished stages.
      stages: restrict to these stage names (default ``cfg.run.stages``).
      echo: print the log to stdout too.

    Returns:
      ``{"run_dir": Path, "status": {stage: status}, "metrics": dict}``; a status is
      ``'done'``, ``'skipped'`` (finished earlier with this config), ``'partial'`` (ran
      without an optional input; a rerun completes it) or ``'not applicable: <reason>'``
      (a required input is missing, :class:`~jaxsel.MissingInput`).

    Raises:
      ConfigError: missing data paths, unwritable run folder.
    """
    if uses_sessions(cfg):
        check_session_config(cfg)
    else:
        check_data_paths(cfg)
    rd = RunDir(cfg.out_dir, echo=echo)
    t0 = time.time()
    status: dict[str, str] = {}
    detach = attach_library_log(rd)
    try:
        _run(cfg, rd, status, t0, force=force, stages=stages)
    except JaxselError as err:  # a user error: one line, also in run.log
        rd.log.error(f"error: {err}")
        raise
    except KeyboardInterrupt as err:
        where = getattr(err, "jaxsel_where", "")
        rd.log.error(
            f"interrupted{' ' + where if where else ''} in stage '{_current(status, stages, cfg)}'"
            "; the same command resumes"
        )
        raise
    except Exception:  # a bug: its traceback goes to run.log too
        rd.log.error("error (a bug in jaxsel, please report it):\n" + traceback.format_exc())
        raise
    finally:
        detach()
        rd.close()
    metrics = rd.metrics()
    return {"run_dir": rd.path, "status": status, "metrics": metrics}


def _current(status: dict, stages, cfg: Config) -> str:
    """The stage that was running (the first wanted one without a status)."""
    for s in STAGES:
        if s in (stages or cfg.run.stages) and s not in status:
            return s
    return "?"


def _run(cfg: Config, rd: RunDir, status: dict, t0: float, *, force: bool, stages) -> None:
    write_text(rd / "config.toml", to_toml(cfg))
    rd.log.info(f"jaxsel run '{cfg.run.name}' -> {rd.path}")
    finished = rd.finished()
    if finished:
        rd.log.info(
            f"resuming the run in {rd.path}: stages finished earlier: {', '.join(finished)}"
        )
    note = rd.recover_metrics(STAGES)
    if note:
        rd.log.info(note)
    ctx = Context(cfg, rd)
    ctx.cache["status"] = status
    ctx.force = force
    wanted = [s for s in STAGES if s in (stages or cfg.run.stages)]
    # metrics.json 'provenance': this invocation's, once it computes something (a rerun
    # that only skips stages or redraws the report keeps the provenance of the results)
    prov = provenance(config=to_dict(cfg))
    recorded = "provenance" in rd.metrics()
    # no stage-level bar: stages differ 100x in cost, so a bar's time estimate misleads;
    # each stage logs its name, position and elapsed time instead
    for i, name in enumerate(wanted, 1):
        ctx.stage = name
        key = stage_key(cfg, rd, name)
        func = STAGE_FUNCS[name]
        if uses_sessions(cfg):  # a multi-session run: its own data/train/evaluate stages
            func = SESSION_STAGE_FUNCS.get(name, func)
        if not force and name not in ALWAYS and rd.is_done(name, key):
            status[name] = "skipped"
            rd.log.info(f"[{name}] finished earlier with this config: skipped")
            continue
        if not recorded or name not in ALWAYS:
            rd.update_metrics(provenance=prov)
            recorded = True
        rd.clear(name)
        if name not in ALWAYS:  # what read the old outputs is stale now
            stale = rd.invalidate(downstream(name))
            if stale:
                rd.log.info(
                    f"[{name}] recomputing: removed the outputs of the later stages "
                    f"{', '.join(stale)} (they read the old ones)"
                )
        rd.log.info(f"[{name}] running (stage {i}/{len(wanted)}, {time.time() - t0:.1f} s so far)")
        ts = time.time()
        ctx.partial = False
        rd.touched = set()
        try:
            outputs = func(ctx)
        except MissingInput as err:
            status[name] = f"not applicable: {err}"
            rd.log.info(f"[{name}] not applicable: {err}")
            continue
        if ctx.partial:  # no marker: a rerun completes it
            status[name] = "partial"
            rd.log.info(f"[{name}] partly done in {time.time() - ts:.1f} s (reruns later)")
            continue
        current = rd.metrics()
        rd.mark_done(
            name,
            key,
            outputs,
            seconds=time.time() - ts,
            metrics={k: current.get(k) for k in sorted(rd.touched) if k != "provenance"},
        )
        status[name] = "done"
        rd.log.info(f"[{name}] done in {time.time() - ts:.1f} s ({time.time() - t0:.1f} s so far)")
        rd.update_metrics(
            **{f"stage_seconds_{name}": round(time.time() - ts, 1)},
            runtime_s=round(time.time() - t0, 1),
        )
    runtime = time.time() - t0
    write_json(rd / "stages" / "status.json", status)
    rd.update_metrics(runtime_s=round(runtime, 1))
    rd.log.info(f"finished in {runtime:.1f} s; metrics: {rd.metrics_path}")
