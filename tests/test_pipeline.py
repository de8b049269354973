"""A tiny end-to-end run on the twin: every stage, the report, resume and --force."""

import base64
import json
import math
import re
import shutil

import pytest
import xarray as xr

from jaxsel.cli._main import main
from jaxsel.pipeline import STAGES, demo_config, run_pipeline

TINY = {
    "data.twin.n_neurons": 20,
    "data.twin.n_train": 200,
    "data.twin.n_validation": 40,
    "data.twin.n_test": 12,
    "data.twin.test_repeats": 4,
    "train.overrides": {"max_epochs": 2, "progress": False},
    "train.per_model": {"small": {"hidden_channels": 4, "layers": 2}},
    "mei.overrides": {"steps": 20},
    "mei.n_neurons": 0,  # all 8 selected: every kind
    "gabor.steps": 5,
    "gabor.truth": False,
    "gabor.bank": {"n_x": 3, "n_y": 2, "n_theta": 4, "n_phase": 2, "sigmas": [3.0], "sfs": [0.1]},
    "report.pdf": False,
    "report.n_examples": 4,
    "run.progress": False,
}
#: the shared tiny run's overrides: TINY with a 2-member ensemble and two MEI starts
TINY_RUN = {**TINY, "train.ensemble": 2, "mei.seeds": 2}
pytestmark = pytest.mark.slow  # the shared tiny run runs every stage (~60 s)
PNG = b"\x89PNG\r\n\x1a\n"


# the run itself is the session fixture ``tiny_run`` of conftest.py (TINY + a 2-member
# ensemble), shared with test_ensemble_pipeline.py; tests that change a run copy it first


def test_every_stage_runs_and_writes_its_outputs(tiny_run):
    _, out, res = tiny_run
    assert res["status"] == dict.fromkeys(STAGES, "done")  # no stage skipped or not applicable
    for f in (
        "config.toml",
        "run.log",
        "metrics.json",
        "selection.nc",
        "data/summary.json",
        "report.html",
        "figures/index.json",
    ):
        assert (out / f).exists(), f
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_neurons"] == 20 and 0 < m["n_selected"] <= 20
    assert -1 <= m["oracle_spearman_vs_truth"] <= 1
    assert m["runtime_s"] > 0
    prov = m.pop("provenance")
    not_finite = [k for k, v in m.items() if v is None or not math.isfinite(v)]  # NaN -> null
    assert not not_finite, not_finite
    # provenance: where and with what, and the full resolved config
    import jax

    import jaxsel

    assert prov["jaxsel_version"] == jaxsel.__version__ and prov["jax"] == jax.__version__
    assert prov["device"].startswith(jax.devices()[0].device_kind)
    assert prov["host"] and prov["python"].count(".") == 2
    assert prov["date_utc"].endswith("+00:00")
    assert prov["git_commit"] is None or len(prov["git_commit"]) == 40
    assert prov["config"]["data"]["twin"]["n_neurons"] == 20
    assert prov["config"]["run"]["out"] == str(out)
    # the logs report the same statistic (median over neurons) for validation and test
    log = (out / "run.log").read_text()
    assert "'small': validation correlation median " in log
    assert "'small': test correlation median " in log
    assert f"{m['small_val_corr_median']:.3f}" in log
    assert f"{m['small_test_corr_median']:.3f}" in log
    # labelled results reopen with xarray
    sel = xr.open_dataset(out / "selection.nc", engine="h5netcdf")
    assert sel.sizes["neuron"] == 20 and "oracle" in sel
    sel.close()
    assert (out / "models" / "small").is_dir()
    for k in (
        "ln_corr_to_truth_median",
        "cnn_corr_to_truth_median",
        "cnn_test_corr_median",
        "mei_truth_r_simple_median",
        "mei_truth_r_complex_median",
        "truemei_truth_r_complex_median",
        "gabor_orientation_error_deg_median",
    ):
        assert k in m, k
    assert (out / "arrays" / "mei_truth.zarr").exists()
    assert m["truemei_truth_r_simple_median"] > 0.8


def test_report_images_all_resolve_and_are_pngs(tiny_run):
    _, out, _ = tiny_run
    page = (out / "report.html").read_text()
    assert "<h2>Dataset</h2>" in page and "Neuron selection" in page
    prov = json.loads((out / "metrics.json").read_text())["provenance"]
    head = page[: page.index("<h2>Headline numbers</h2>")]
    assert "<h2>Provenance</h2>" in head
    for key in ("jaxsel_version", "host", "device", "date_utc", "python", "jax"):
        assert f"<td>{prov[key]}</td>" in head, key
    srcs = re.findall(r'<img src="([^"]+)"', page)
    index = json.loads((out / "figures" / "index.json").read_text())
    assert len(srcs) == len(index) >= 3
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1])
        assert data.startswith(PNG) and len(data) > 2000
    for e in index:
        assert (out / "figures" / e["file"]).read_bytes().startswith(PNG)


def test_rerun_skips_finished_stages_and_force_recomputes(tiny_run, tmp_path, capsys):
    cfg, shared, first = tiny_run
    out = tmp_path / "tiny"
    shutil.copytree(shared, out)  # the shared run stays as it was for the other tests
    cfg = demo_config(overrides={**TINY_RUN, "run.out": str(out)})
    again = run_pipeline(cfg, echo=False)
    done_before = [
        s for s, v in first["status"].items() if v == "done" and s not in ("figures", "report")
    ]
    assert done_before and all(again["status"][s] == "skipped" for s in done_before)
    # a changed section invalidates that stage and those after it, not those before
    cfg2 = demo_config(
        overrides={
            **TINY_RUN,
            "run.out": str(out),
            "select.percentiles": {"oracle": 50.0, "variance": 50.0},
            "run.stages": ["data", "select"],
        }
    )
    res = run_pipeline(cfg2, echo=False)
    assert res["status"] == {"data": "skipped", "select": "done"}
    runs_before = (out / "run.log").read_text().count("[data] running")
    rc = main(
        [
            "run",
            str(out / "config.toml"),
            "--force",
            "--no-progress",
            "--set",
            "run.stages=['data']",
        ]
    )
    assert rc == 0
    assert (out / "run.log").read_text().count("[data] running") == runs_before + 1
    marker = json.loads((out / "stages" / "data.json").read_text())
    assert marker["stage"] == "data" and len(marker["key"]) == 16
    # recomputing data invalidated every stage that reads it (their outputs are gone)
    assert not (out / "stages" / "select.json").exists() and not (out / "selection.nc").exists()
    assert not (out / "models").exists() or not any((out / "models").iterdir())
    assert "removed the outputs of the later stages select" in (out / "run.log").read_text()


def test_a_stage_without_its_input_is_reported_not_applicable(tiny_run, tmp_path):
    _, out, _ = tiny_run
    bare = tmp_path / "bare"
    shutil.copytree(out, bare, ignore=shutil.ignore_patterns("models"))
    cfg2 = demo_config(
        overrides={**TINY, "run.out": str(bare), "run.stages": ["select", "evaluate"]}
    )
    res = run_pipeline(cfg2, echo=False, force=True)
    status = res["status"]["evaluate"]
    assert status.startswith("not applicable: ") and "has not been trained" in status
    assert "[evaluate] not applicable" in (bare / "run.log").read_text()
