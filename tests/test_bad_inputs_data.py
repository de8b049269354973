"""Bad-input catalogue of the data and the run config (issue 14): every bad data file, folder
or config key gets a JaxselError (API) or a non-zero exit (``jaxsel run``) whose one-line
message names the file or key, the field and the fix; the CLI prints no traceback, writes no
stage output, and no input file is changed.

Each case mutates a copy of one tiny static folder (a simulated twin written with
``js.save_static``) or writes a small array/table file. The API half calls the public
loaders (``js.load_static``, ``js.load_arrays``, ``js.load_table``, ``js.load_allen_nwb``,
``js.make_dataset``, ``js.fit``); the CLI half runs ``jaxsel run`` on a TOML whose ``[data]``
points at the bad input: in process through ``jaxsel.cli._main.main`` for every case, and as
a real subprocess (``PYTHONPATH`` set) for a few cases (every case with ``-m slow``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import jaxsel as js
from jaxsel import DataError, JaxselError
from jaxsel.cli._main import main

REPO = Path(__file__).resolve().parents[1]
SHAPE = (12, 16)
N_NEURONS = 6
# run-folder entries a run that failed at the data stage may leave (its config and log)
RUN_LEFTOVERS = {"config.toml", "run.log", "metrics.json"}


@pytest.fixture(scope="module")
def base(twin_factory, tmp_path_factory) -> Path:
    """The tiny static folder every case starts from (never modified: cases copy it)."""
    ds, _ = twin_factory(
        seed=7,
        n_neurons=N_NEURONS,
        shape=SHAPE,
        n_train=96,
        n_validation=24,
        n_test=8,
        test_repeats=3,
    )
    return js.save_static(ds, tmp_path_factory.mktemp("base") / "static")


# ------------------------------------------------------------------ mutations of a copy


def _save(rel: str, value) -> Callable[[Path, Path], Path]:
    def make(static: Path, tmp: Path) -> Path:
        np.save(static / rel, value, allow_pickle=True)
        return static

    return make


def _edit(rel: str, fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path, Path], Path]:
    def make(static: Path, tmp: Path) -> Path:
        np.save(static / rel, fn(np.load(static / rel)))
        return static

    return make


def _tiers(fn: Callable[[np.ndarray, np.ndarray], None]) -> Callable[[Path, Path], Path]:
    """Edit tiers.npy in place by ``fn(tiers, image_ids)``; the responses of 'final_test'
    trials are zeroed when fn marks any."""

    def make(static: Path, tmp: Path) -> Path:
        tiers = np.load(static / "meta/trials/tiers.npy").astype("<U10")
        ids = np.load(static / "meta/trials/frame_image_id.npy")
        fn(tiers, ids)
        np.save(static / "meta/trials/tiers.npy", tiers)
        return static

    return make


def _final_test(zero: bool) -> Callable[[Path, Path], Path]:
    def make(static: Path, tmp: Path) -> Path:
        tiers = np.load(static / "meta/trials/tiers.npy").astype("<U10")
        ids = np.load(static / "meta/trials/frame_image_id.npy")
        final = (tiers == "test") & np.isin(ids, np.unique(ids[tiers == "test"])[:4])
        tiers[final] = "final_test"
        np.save(static / "meta/trials/tiers.npy", tiers)
        if zero:
            for i in np.flatnonzero(final):
                np.save(static / f"data/responses/{i}.npy", np.zeros(N_NEURONS, np.float32))
        return static

    return make


def _no_repeats(tiers: np.ndarray, ids: np.ndarray) -> None:
    test = np.flatnonzero(tiers == "test")
    _, first = np.unique(ids[test], return_index=True)
    tiers[np.setdiff1d(test, test[first])] = "train"


def _rm(rel: str) -> Callable[[Path, Path], Path]:
    def make(static: Path, tmp: Path) -> Path:
        target = static / rel
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        return static

    return make


def _empty(static: Path, tmp: Path) -> Path:
    empty = tmp / "empty"
    empty.mkdir()
    return empty


def _missing(static: Path, tmp: Path) -> Path:
    return tmp / "nowhere"


def _zip_bad_member(static: Path, tmp: Path) -> Path:
    """A zip of the folder whose images/4.npy member is corrupted (CRC mismatch)."""
    z = Path(shutil.make_archive(str(tmp / "static"), "zip", static))
    with zipfile.ZipFile(z) as zf:
        info = zf.getinfo("data/images/4.npy")
    raw = bytearray(z.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    raw[start + info.compress_size // 2] ^= 0xFF
    z.write_bytes(bytes(raw))
    return z


def _zip_without_layout(static: Path, tmp: Path) -> Path:
    z = tmp / "other.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("readme.txt", "not a dataset")
    return z


def _not_a_zip(static: Path, tmp: Path) -> Path:
    f = tmp / "static.zip"
    f.write_text("this is text, not a zip archive")
    return f


def _truncate(rel: str) -> Callable[[Path, Path], Path]:
    def make(static: Path, tmp: Path) -> Path:
        f = static / rel
        f.write_bytes(f.read_bytes()[:40])
        return static

    return make


def _arrays(**change) -> Callable[[Path, Path], Path]:
    """An .npz of the static folder's arrays with ``change`` applied (None drops a key)."""

    def make(static: Path, tmp: Path) -> Path:
        ds = js.load_static(static)
        out: dict[str, Any] = {
            "images": ds["images"].values,
            "responses": ds["responses"].values,
            "image_id": ds["image_id"].values,
            "tier": ds["tier"].values.astype(str),
            "neuron_id": ds["neuron_id"].values,
        }
        for k, v in change.items():
            if v is None:
                out.pop(k)
            else:
                out[k] = v(out[k]) if callable(v) else v
        f = tmp / "arrays.npz"
        np.savez(f, **out)  # pyright: ignore[reportArgumentType]
        return f

    return make


def _arrays_pickled_folder(static: Path, tmp: Path) -> Path:
    ds = js.load_static(static)
    folder = tmp / "arrays"
    folder.mkdir()
    np.save(folder / "images.npy", ds["images"].values)
    np.save(folder / "responses.npy", ds["responses"].values)
    np.save(folder / "image_id.npy", ds["image_id"].values)
    np.save(folder / "tier.npy", ds["tier"].values.astype(object), allow_pickle=True)
    return folder


def _corrupt_npz(static: Path, tmp: Path) -> Path:
    f = _arrays()(static, tmp)
    f.write_bytes(f.read_bytes()[:200])
    return f


def _with_nan(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a[3, 1] = np.nan
    return a


def _table(cell: str = "1.5", image_for_row: bool = True) -> Callable[[Path, Path], Path]:
    """A CSV of 12 frames x 3 neurons plus a PNG folder; row 5's cell is ``cell``; without
    ``image_for_row`` the image of frame 7 is missing."""

    def make(static: Path, tmp: Path) -> Path:
        from PIL import Image

        images = tmp / "images"
        images.mkdir()
        rng = np.random.default_rng(0)
        for k in range(12):
            if k == 7 and not image_for_row:
                continue
            im = rng.integers(0, 255, size=(24, 32), dtype=np.uint8)
            Image.fromarray(im).save(images / f"scene_{k:03d}.png")
        lines = ["frame,n1,n2,n3"]
        for k in range(12):
            lines.append(f"{k},{cell if k == 5 else '2'},1,0.5")
        csv = tmp / "table.csv"
        csv.write_text("\n".join(lines) + "\n")
        return csv

    return make


def _negative(ids: int) -> Callable[[Path, Path], Path]:
    """Negative responses for the first ``ids`` neurons of train trial 0 (and a 'dataset'
    with more neurons when ``ids`` > 6)."""

    def make(static: Path, tmp: Path) -> Path:
        if ids > N_NEURONS:
            ds = js.load_static(static)
            r = np.tile(ds["responses"].values, (1, 2))
            ds = js.make_dataset(
                ds["images"].values,
                r,
                image_id=ds["image_id"].values,
                tier=ds["tier"].values,
                neuron_id=np.arange(r.shape[1]) + 100,
            )
            static = js.save_static(ds, tmp / "wide")
        tiers = np.load(static / "meta/trials/tiers.npy")
        t = int(np.flatnonzero(tiers == "train")[0])
        r = np.load(static / f"data/responses/{t}.npy")
        r[:ids] = -0.5
        np.save(static / f"data/responses/{t}.npy", r)
        return static

    return make


# ------------------------------------------------------------------------ the cases


def _static(**kw):
    return lambda p: js.load_static(p, **kw)


def _fit_ln(p: Path):
    ds = js.load_static(p)
    cfg = js.named_config("ln").replace(max_epochs=1, batch_size=32, progress=False)
    return js.fit(cfg, ds, seed=0)


NEG_FIX = r"train\.overrides\.loss = 'mse'.*loss='mse'"


@dataclass
class Case:
    """A bad input: ``make(static copy, tmp)`` returns the input path; ``api(path)`` is the
    public call (None: CLI only); ``cli`` the ``[data]`` table of ``jaxsel run`` (``{input}``
    is the input path; None: API only) with ``toml`` appended; ``pattern`` matches the
    one-line message (file or key ... field ... fix) of both."""

    id: str
    make: Callable[[Path, Path], Path]
    api: Callable[[Path], object] | None
    cli: dict | None
    pattern: str
    error: type = DataError
    toml: str = ""
    stages: tuple[str, ...] = ("data",)
    quick: bool = False  # also run as a subprocess without -m slow
    extra: dict = field(default_factory=dict)


S = {"source": "static", "path": "{input}"}
A = {"source": "arrays", "path": "{input}"}
T = {
    "source": "table",
    "path": "{input}",
    "images": "{input_dir}/images",
    "tiers": [0.5, 0.25, 0.25],
}

CASES: list[Case] = [
    # ---- item 3: image files holding strings, objects or the wrong dims
    Case(
        "static-image-strings",
        _save("data/images/3.npy", np.full((1, *SHAPE), "x")),
        _static(),
        S,
        r"images/3\.npy: field 'images': image has dtype <U1.*expected a numeric \(1, y, x\)",
        quick=True,
    ),
    Case(
        "static-image-objects",
        _save("data/images/3.npy", np.full((1, *SHAPE), None, dtype=object)),
        _static(),
        S,
        r"images/3\.npy: field 'images': holds pickled.*data\.allow_pickle = true.*"
        r"allow_pickle=True",
    ),
    Case(
        "static-image-objects-allowed",
        _save("data/images/3.npy", np.full((1, *SHAPE), None, dtype=object)),
        _static(allow_pickle=True),
        {**S, "allow_pickle": True},
        r"images/3\.npy: field 'images': image has dtype object.*numeric \(1, y, x\)",
    ),
    Case(
        "static-image-4d",
        _save("data/images/2.npy", np.zeros((1, 1, *SHAPE), np.float32)),
        _static(),
        S,
        r"images/2\.npy: field 'images': image has shape \(1, 1, 12, 16\).*expected \(1, y, x\)",
    ),
    Case(
        "static-image-1d",
        _save("data/images/2.npy", np.zeros(12, np.float32)),
        _static(),
        S,
        r"images/2\.npy: field 'images': image has shape \(12,\).*expected \(1, y, x\)",
    ),
    Case(
        "static-image-other-size",
        _save("data/images/5.npy", np.zeros((1, 10, 16), np.float32)),
        _static(),
        S,
        r"images/5\.npy: field 'images': image has shape \(1, 10, 16\) but 0\.npy.*one shape",
    ),
    Case(
        "static-image-nan",
        _edit(
            "data/images/6.npy",
            lambda a: np.where(np.arange(a.size).reshape(a.shape) == 3, np.nan, a),
        ),
        _static(),
        S,
        r"images/6\.npy: field 'images': 1 non-finite pixel values.*finite numbers",
    ),
    Case(
        "static-image-file-missing",
        _rm("data/images/5.npy"),
        _static(),
        S,
        r"images/5\.npy: field 'images': file 5\.npy is missing.*without gaps",
    ),
    Case(
        "static-image-truncated",
        _truncate("data/images/1.npy"),
        _static(),
        S,
        r"images/1\.npy: field 'images': cannot read.*expected",
    ),
    # ---- responses
    Case(
        "static-response-strings",
        _save("data/responses/2.npy", np.array(["1"] * N_NEURONS)),
        _static(),
        S,
        r"responses/2\.npy: field 'responses': non-finite or non-numeric.*finite numbers",
    ),
    Case(
        "static-response-nan",
        _edit("data/responses/4.npy", lambda a: np.where(np.arange(a.size) == 2, np.nan, a)),
        _static(),
        S,
        r"responses/4\.npy: field 'responses': non-finite.*neurons \[2\].*finite numbers",
        quick=True,
    ),
    Case(
        "static-response-inf",
        _edit("data/responses/4.npy", lambda a: np.where(np.arange(a.size) == 1, np.inf, a)),
        _static(),
        S,
        r"responses/4\.npy: field 'responses': non-finite.*neurons \[1\]",
    ),
    Case(
        "static-response-length",
        _save("data/responses/7.npy", np.zeros(N_NEURONS + 1, np.float32)),
        _static(),
        S,
        r"responses/7\.npy: field 'responses': responses have shape \(7,\).*same neurons",
    ),
    Case(
        "static-response-dir-missing",
        _rm("data/responses"),
        _static(),
        S,
        r"data/responses: field 'responses': no numbered \.npy files.*0\.npy, 1\.npy",
    ),
    # ---- tiers and meta files
    Case(
        "static-tier-unknown",
        _tiers(lambda t, ids: t.__setitem__(0, "training")),
        _static(),
        S,
        r"tiers\.npy: field 'tiers': unknown tier values \['training'\].*'validation'",
    ),
    Case(
        "static-tiers-length",
        _edit("meta/trials/tiers.npy", lambda a: a[:-3]),
        _static(),
        S,
        r"tiers\.npy: field 'tiers': has shape \(141,\) for 144 trials",
    ),
    Case(
        "static-no-validation-tier",
        _tiers(lambda t, ids: t.__setitem__(t == "validation", "train")),
        _static(),
        S,
        r"static: field 'tier': no trials in tier 'validation'.*at least one trial",
    ),
    Case(
        "static-test-without-repeats",
        _tiers(_no_repeats),
        _static(),
        S,
        r"field 'image_id \(tier 'test'\)'.*data\.require_repeats = false.*"
        r"require_repeats=False",
    ),
    Case(
        "static-final-test-withheld",
        _final_test(zero=True),
        _static(),
        S,
        r"tiers\.npy: field 'tiers': all responses of the 'final_test' trials are zero.*"
        r"data\.final_test = 'drop' \(API: final_test='drop'\)",
        quick=True,
    ),
    Case(
        "static-final-test-error-mode",
        _final_test(zero=False),
        _static(final_test="error"),
        {**S, "final_test": "error"},
        r"tiers\.npy: field 'tiers': 12 trials in tier 'final_test'.*"
        r"data\.final_test = 'merge'.*data\.final_test = 'drop'",
    ),
    Case(
        "static-pickled-tiers",
        _edit("meta/trials/tiers.npy", lambda a: a.astype(object)),
        _static(),
        S,
        r"tiers\.npy: field 'tiers': holds pickled.*data\.allow_pickle = true.*allow_pickle=True",
    ),
    Case(
        "static-unit-ids-length",
        _edit("meta/neurons/unit_ids.npy", lambda a: a[:-1]),
        _static(),
        S,
        r"unit_ids\.npy: field 'unit_ids': has shape \(5,\).*one value per neuron, shape \(6,\)",
    ),
    Case(
        "static-unit-ids-duplicate",
        _edit("meta/neurons/unit_ids.npy", lambda a: np.zeros_like(a)),
        _static(),
        S,
        r"static: field 'neuron_id': neuron ids are not unique",
    ),
    Case(
        "static-unknown-neuron-ids",
        lambda s, t: s,
        _static(neurons=[999]),
        None,
        r"unit_ids\.npy: field 'unit_ids': unknown neuron ids \[999\].*neurons=",
    ),
    Case(
        "static-image-ids-fractional",
        _edit("meta/trials/frame_image_id.npy", lambda a: a + 0.5),
        _static(),
        S,
        r"static: field 'image_id': image ids of dtype float64 are not all integers.*"
        r"integer ids",
    ),
    Case(
        "static-cortex-strings",
        _save("meta/neurons/cell_motor_coordinates.npy", np.full((N_NEURONS, 3), "a")),
        _static(),
        S,
        r"cell_motor_coordinates\.npy: field 'cell_motor_coordinates': has shape \(6, 3\) "
        r"and dtype <U1.*\(6, 3\) numbers",
    ),
    Case(
        "static-behavior-wrong-length",
        lambda s, t: (
            (s / "data/behavior").mkdir(),
            [np.save(s / f"data/behavior/{i}.npy", np.zeros(2)) for i in range(144)],
            s,
        )[-1],
        _static(),
        S,
        r"behavior/0\.npy: field 'behavior': has shape \(2,\).*\(3,\) numbers",
    ),
    # ---- folders and archives
    Case(
        "static-empty-folder",
        _empty,
        _static(),
        S,
        r"empty/meta/trials/tiers\.npy: field 'tiers': file not found.*check data\.path",
    ),
    Case(
        "static-path-missing",
        _missing,
        _static(),
        S,
        r"data\.path.*nowhere|nowhere.*not found",
        error=JaxselError,
    ),
    Case(
        "static-zip-bad-member",
        _zip_bad_member,
        _static(),
        S,
        r"static\.zip::data/images/4\.npy: field 'images': cannot read.*re-extract",
        quick=True,
    ),
    Case(
        "static-zip-without-layout",
        _zip_without_layout,
        _static(),
        S,
        r"other\.zip: field 'meta/trials/tiers': no meta/trials/tiers\.npy.*static layout",
    ),
    Case(
        "static-not-a-zip",
        _not_a_zip,
        _static(),
        S,
        r"static\.zip: field 'path': neither a folder nor a readable zip",
    ),
    # ---- plain arrays
    Case(
        "arrays-images-strings",
        _arrays(images=lambda a: a.astype(str)),
        lambda p: js.load_arrays(p),
        A,
        r"arrays\.npz: field 'images': has dtype <U\d+.*numbers",
    ),
    Case(
        "arrays-missing-responses",
        _arrays(responses=None),
        lambda p: js.load_arrays(p),
        A,
        r"arrays\.npz: field 'responses': missing.*images, responses, image_id, tier",
    ),
    Case(
        "arrays-responses-nan",
        _arrays(responses=_with_nan),
        lambda p: js.load_arrays(p),
        A,
        r"arrays\.npz: field 'responses': 1 non-finite response values, first at trial 3.*"
        r"neuron 1",
    ),
    Case(
        "arrays-trial-mismatch",
        _arrays(images=lambda a: a[:-1]),
        lambda p: js.load_arrays(p),
        A,
        r"arrays\.npz: field 'images/responses': 143 image trials but 144 response trials",
    ),
    Case(
        "arrays-pickled-npy",
        _arrays_pickled_folder,
        lambda p: js.load_arrays(p),
        A,
        r"arrays/tier\.npy: field 'tier': cannot read.*non-pickled.*astype\(str\)",
    ),
    Case(
        "arrays-corrupt-npz",
        _corrupt_npz,
        lambda p: js.load_arrays(p),
        A,
        r"arrays\.npz: field 'arrays': not a readable \.npz file",
    ),
    # ---- response table
    Case(
        "table-non-numeric-cell",
        _table(cell="n/a"),
        lambda p: js.load_table(p, p.parent / "images", tiers=(0.5, 0.25, 0.25)),
        T,
        r"table\.csv: field 'row 7, column 'n1'': non-numeric cell 'n/a'.*finite numbers",
    ),
    Case(
        "table-nan-cell",
        _table(cell="nan"),
        lambda p: js.load_table(p, p.parent / "images", tiers=(0.5, 0.25, 0.25)),
        T,
        r"table\.csv: field 'row 7, column 'n1'': non-finite cell 'nan'",
    ),
    Case(
        "table-missing-image",
        _table(image_for_row=False),
        lambda p: js.load_table(p, p.parent / "images", tiers=(0.5, 0.25, 0.25)),
        T,
        r"images: field 'row 9': no image for row 9 id '7'.*image file named by the id",
    ),
    # ---- Allen NWB
    Case(
        "allen-nwb-missing",
        _missing,
        lambda p: js.load_allen_nwb(p, p.parent),
        {"source": "allen", "path": "{input}", "images": "{input_dir}"},
        r"data\.path.*nowhere|nowhere.*(not found|does not exist)",
        error=JaxselError,
    ),
    # ---- item 9: negative "spike counts" under the Poisson loss
    Case(
        "fit-negative-responses-poisson",
        _negative(2),
        _fit_ln,
        None,
        r"static: field 'responses': 2 of 6 neurons have negative train-tier responses "
        r"\(neuron_id \d+, \d+; the smallest -0\.5\), which the poisson loss.*" + NEG_FIX,
    ),
    Case(
        "fit-negative-responses-many-neurons",
        _negative(10),
        _fit_ln,
        None,
        r"10 of 12 neurons.*\(neuron_id 100, 101, 102, 103, 104, 105, 106, 107, \.\.\.;.*"
        + NEG_FIX,
    ),
]

# config errors of the [data] section (CLI only: the API equivalents are arguments)
CONFIG_CASES: list[tuple[str, str, str]] = [
    (
        "unknown-data-key",
        '[data]\nsource = "static"\npath = "{input}"\nfinal_tset = "drop"\n',
        r"data\.final_tset.*final_test",
    ),
    (
        "wrong-type-require-repeats",
        '[data]\nsource = "static"\npath = "{input}"\nrequire_repeats = "no"\n',
        r"data\.require_repeats",
    ),
    (
        "wrong-type-allow-pickle",
        '[data]\nsource = "static"\npath = "{input}"\nallow_pickle = 1\n',
        r"data\.allow_pickle",
    ),
    (
        "bad-final-test-choice",
        '[data]\nsource = "static"\npath = "{input}"\nfinal_test = "dropped"\n',
        r"data\.final_test.*'merge', 'drop', 'error'",
    ),
    (
        "unknown-source",
        '[data]\nsource = "sensorium"\npath = "{input}"\n',
        r"data\.source.*static",
    ),
    (
        "missing-data-path",
        '[data]\nsource = "static"\npath = "{input}/nowhere"\n',
        r"data\.path.*does not exist",
    ),
    (
        "empty-data-path",
        '[data]\nsource = "static"\n',
        r"data\.path",
    ),
    (
        "table-without-images",
        '[data]\nsource = "table"\npath = "{input}/meta/trials/tiers.npy"\n',
        r"data\.images.*empty",
    ),
]


# ------------------------------------------------------------------------ helpers


def checksums(path: Path) -> dict[str, str]:
    """sha256 of every file under ``path`` (or of ``path``), with the listing itself."""
    if not path.exists():
        return {}
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))


def write_toml(tmp: Path, data: dict | str, inp: Path, stages=("data",)) -> tuple[Path, Path]:
    """A run config ``tmp/run.toml`` whose run folder is ``tmp/run``; ``data`` is the
    ``[data]`` table (a dict) or the raw TOML of the rest; ``{input}`` is the input path."""
    out = tmp / "run"
    head = (
        f'[run]\nname = "bad"\nout = {json.dumps(str(out))}\nstages = {list(stages)!r}\n'.replace(
            "'", '"'
        )
    )
    if isinstance(data, dict):
        body = "[data]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in data.items())
    else:
        body = data
    body = body.replace("{input_dir}", str(inp.parent)).replace("{input}", str(inp))
    f = tmp / "run.toml"
    f.write_text(head + body)
    return f, out


def _inputs(case_make, base: Path, tmp: Path) -> Path:
    static = tmp / "static"
    shutil.copytree(base, static)
    return case_make(static, tmp)


def _assert_run_folder_clean(out: Path) -> None:
    """A run stopped by bad data or config writes no stage output (at most its config and
    log, so the error is on record; an empty ``stages/`` folder holds no file)."""
    if out.exists():
        left = {str(p.relative_to(out)) for p in out.rglob("*") if not p.is_dir()}
        assert left <= RUN_LEFTOVERS, f"the failed run wrote {sorted(left - RUN_LEFTOVERS)}"


def _assert_one_line(err: str, pattern: str) -> str:
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines, "no error message"
    msg = lines[-1]
    assert msg.startswith("jaxsel run: error: "), err
    assert re.search(pattern, msg), f"{msg!r} does not match {pattern!r}"
    return msg


# ------------------------------------------------------------------------ API


API_CASES = [c for c in CASES if c.api is not None]


@pytest.mark.parametrize("case", API_CASES, ids=[c.id for c in API_CASES])
def test_api(case: Case, base: Path, tmp_path: Path):
    inp = _inputs(case.make, base, tmp_path)
    before = checksums(tmp_path)
    assert case.api is not None
    with pytest.raises(case.error) as info:
        case.api(inp)
    assert isinstance(info.value, JaxselError)
    msg = str(info.value)
    assert "\n" not in msg, msg
    assert re.search(case.pattern, msg), f"{msg!r} does not match {case.pattern!r}"
    assert checksums(tmp_path) == before, "the call changed or added files"


# ------------------------------------------------------------------------ CLI


CLI_CASES = [c for c in CASES if c.cli is not None]


def _cli_setup(case: Case, base: Path, tmp: Path) -> tuple[Path, Path, Path, dict]:
    inp = _inputs(case.make, base, tmp)
    assert case.cli is not None
    toml, out = write_toml(tmp, case.cli, inp, case.stages)
    data_root = tmp / "static" if inp.is_relative_to(tmp / "static") else inp
    return toml, out, data_root, checksums(tmp / "static") | checksums(inp)


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_cli_in_process(case: Case, base: Path, tmp_path: Path, capsys, monkeypatch):
    toml, out, _, before = _cli_setup(case, base, tmp_path)
    monkeypatch.chdir(tmp_path)
    rc = main(["run", str(toml), "--no-progress"])
    err = capsys.readouterr().err
    assert rc != 0
    _assert_one_line(err, case.pattern)
    _assert_run_folder_clean(out)
    assert checksums(tmp_path / "static") | checksums(_input_of(toml)) == before


def _input_of(toml: Path) -> Path:
    text = toml.read_text()
    return Path(re.search(r'^path = "(.*)"$', text, re.M).group(1))  # type: ignore[union-attr]


def _run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {
        "PYTHONPATH": str(REPO),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "JAX_PLATFORMS": "cpu",
        "HOME": str(cwd),
    }
    code = "import sys; from jaxsel.cli._main import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


SUBPROCESS = [
    pytest.param(c, id=c.id, marks=() if c.quick else pytest.mark.slow) for c in CLI_CASES
]


@pytest.mark.parametrize("case", SUBPROCESS)
def test_cli_subprocess(case: Case, base: Path, tmp_path: Path):
    toml, out, _, before = _cli_setup(case, base, tmp_path)
    res = _run_cli(["run", str(toml), "--no-progress"], tmp_path)
    assert res.returncode != 0, res.stdout
    _assert_one_line(res.stderr, case.pattern)
    _assert_run_folder_clean(out)
    assert checksums(tmp_path / "static") | checksums(_input_of(toml)) == before


@pytest.mark.parametrize(
    ("name", "body", "pattern"), CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES]
)
def test_cli_config_error(name, body, pattern, base: Path, tmp_path: Path, capsys, monkeypatch):
    inp = _inputs(lambda s, t: s, base, tmp_path)
    toml, out = write_toml(tmp_path, body, inp)
    before = checksums(inp)
    monkeypatch.chdir(tmp_path)
    rc = main(["run", str(toml), "--no-progress"])
    err = capsys.readouterr().err
    assert rc != 0
    msg = _assert_one_line(err, pattern)
    assert "run.toml" in msg or "data." in msg
    assert not out.exists(), "a config error must stop the run before its folder is made"
    assert checksums(inp) == before


def test_cli_config_error_subprocess(base: Path, tmp_path: Path):
    """One config error through a real process: exit 2, one line, no run folder."""
    inp = _inputs(lambda s, t: s, base, tmp_path)
    toml, out = write_toml(tmp_path, CONFIG_CASES[0][1], inp)
    res = _run_cli(["run", str(toml)], tmp_path)
    assert res.returncode == 2
    _assert_one_line(res.stderr, CONFIG_CASES[0][2])
    assert not out.exists()


def test_negative_responses_fit_with_mse(base: Path, tmp_path: Path):
    """Loaders keep negative responses (calcium data), recording how many neurons have one;
    the fix the Poisson error names, loss='mse', fits them."""
    path = _negative(2)(shutil.copytree(base, tmp_path / "static"), tmp_path)
    ds = js.load_static(path)
    assert ds.attrs["n_negative_neurons"] == 2
    assert js.load_static(base).attrs["n_negative_neurons"] == 0
    cfg = js.named_config("ln").replace(max_epochs=1, batch_size=32, progress=False, loss="mse")
    res = js.fit(cfg, ds, seed=0)
    assert res.best_epoch >= 0


def test_withheld_final_test_runs_with_drop(base: Path, tmp_path: Path, monkeypatch, capsys):
    """Item 7: the all-zero final_test error names data.final_test = 'drop'; with it set, the
    data stage of ``jaxsel run`` loads the folder without those trials and records it."""
    path = _final_test(zero=True)(shutil.copytree(base, tmp_path / "static"), tmp_path)
    before = checksums(path)
    toml, out = write_toml(tmp_path, S, path)
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(toml), "--no-progress"]) != 0
    msg = _assert_one_line(capsys.readouterr().err, r"data\.final_test = 'drop'")
    fix = re.search(r"(data\.final_test) = '(drop)'", msg)
    assert fix is not None
    rc = main(["run", str(toml), "--no-progress", "--set", f"{fix[1]}='{fix[2]}'"])
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((out / "data" / "summary.json").read_text())
    assert summary["final_test"] == "drop"
    assert summary["n_final_test"] == 12
    assert summary["n_trials"] == 144 - 12
    assert checksums(path) == before


def test_allow_pickle_key_reaches_the_loader(base: Path, tmp_path: Path, monkeypatch, capsys):
    """Item 7: the pickled-meta error names data.allow_pickle; set, the run loads."""
    path = _edit("meta/trials/tiers.npy", lambda a: a.astype(object))(
        shutil.copytree(base, tmp_path / "static"), tmp_path
    )
    toml, out = write_toml(tmp_path, {**S, "allow_pickle": True}, path)
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(toml), "--no-progress"]) == 0, capsys.readouterr().err
    assert json.loads((out / "data" / "summary.json").read_text())["n_trials"] == 144


def test_catalogue_size():
    """Issue 14's acceptance: >= 45 cases overall (70 API cases in test_bad_inputs_api.py);
    this file adds >= 25 data / CLI cases."""
    assert len(CASES) + len(CONFIG_CASES) >= 25
    assert len({c.id for c in CASES}) == len(CASES)
