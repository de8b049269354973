"""The run folder: resolved config, log, metrics, stage done-markers.

Layout of ``runs/<name>/``::

    config.toml        the resolved config (every key spelled out)
    run.log            what each stage did, with timings
    metrics.json       headline numbers (merged by every stage) and "provenance": jaxsel
                       version, git commit, host, device, UTC date, Python/JAX versions
                       and the full resolved config of the last run that computed a stage
    stages/<s>.json    done-marker of stage s: key, token, outputs, time, the metrics it wrote
    data/ selection.nc models/ evaluation.nc arrays/*.zarr insilico.nc figures/ report.html

A stage is *finished* when its marker exists, holds the stage's key and every output it
lists exists. The key hashes the config sections the stage depends on together with the
tokens of its upstream stages' markers (a new token each time a stage finishes), so a
recomputed stage invalidates every stage after it; when a stage reruns, the outputs of the
stages that read it are removed, so the report never mixes two upstream states. Rerunning
skips finished stages; ``force`` recomputes them. An unreadable ``metrics.json`` is kept as
``metrics.json.broken`` and rebuilt from the markers' metrics.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import shutil
import time
from pathlib import Path

import numpy as np

from jaxsel._errors import ConfigError

_LOGGER = "jaxsel.run"


def check_writable(path: Path, key: str = "run.out") -> None:
    """Raise :class:`ConfigError` unless ``path`` can be created and written.

    Args:
      path: the run folder (created if missing).
      key: the config key named in the message.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise ConfigError(
            f"key '{key}': cannot write the run folder {path} "
            f"({err.strerror or err}); choose a writable folder "
            f"(CLI: --out DIR)"
        ) from None
    if not os.access(path, os.W_OK):  # pragma: no cover - root ignores modes
        raise ConfigError(f"key '{key}': run folder {path} is not writable (CLI: --out DIR)")


class _TqdmHandler(logging.Handler):
    """Print log lines through ``tqdm.write`` so progress bars stay intact."""

    def emit(self, record):
        try:
            from tqdm.auto import tqdm

            tqdm.write(self.format(record))
        except Exception:  # pragma: no cover
            self.handleError(record)


class RunDir:
    """A run folder with its log, metrics and stage markers.

    Args:
      path: the folder (created if missing; must be writable).
      echo: also print log lines to stdout.
    """

    def __init__(self, path: str | Path, *, echo: bool = True):
        self.path = Path(path)
        check_writable(self.path)
        (self.path / "stages").mkdir(exist_ok=True)
        self.touched: set[str] = set()  # metric keys written by the current stage
        self.log = logging.getLogger(f"{_LOGGER}.{id(self)}")
        self.log.setLevel(logging.INFO)
        self.log.propagate = False
        fh = logging.FileHandler(self.path / "run.log")
        fh.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        self.log.addHandler(fh)
        if echo:
            sh = _TqdmHandler()
            sh.setFormatter(logging.Formatter("%(message)s"))
            self.log.addHandler(sh)

    def close(self) -> None:
        """Close the log file."""
        for h in list(self.log.handlers):
            h.close()
            self.log.removeHandler(h)

    def __truediv__(self, other) -> Path:
        return self.path / other

    # -- markers
    def marker(self, stage: str) -> Path:
        return self.path / "stages" / f"{stage}.json"

    def is_done(self, stage: str, key: str) -> bool:
        """Whether ``stage`` finished with config hash ``key`` and its outputs still exist."""
        info = self._info(stage)
        if info.get("key") != key:
            return False
        return all((self.path / o).exists() for o in info.get("outputs", []))

    def _info(self, stage: str) -> dict:
        """The done-marker of ``stage`` ({} if missing or unreadable)."""
        try:
            info = json.loads(self.marker(stage).read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return {}
        return info if isinstance(info, dict) else {}

    def token(self, stage: str) -> str:
        """The token of ``stage``'s marker: new each time the stage finishes ("" if it has
        not), so the stages that read its outputs can tell a recomputed one."""
        return str(self._info(stage).get("token", ""))

    def finished(self) -> list[str]:
        """The stages with a done-marker (finished by an earlier run)."""
        return sorted(p.stem for p in (self.path / "stages").glob("*.json") if p.stem != "status")

    def invalidate(self, stages) -> list[str]:
        """Remove the markers and outputs of ``stages`` (their inputs were recomputed).
        Returns the stages that had finished."""
        gone = []
        for stage in stages:
            info = self._info(stage)
            if not self.marker(stage).exists():
                continue
            self.clear(stage)
            for o in info.get("outputs", []):
                p = (self.path / o).resolve()
                if self.path.resolve() not in p.parents:  # pragma: no cover - never outside
                    continue
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
            gone.append(stage)
        return gone

    def recover_metrics(self, stages) -> str:
        """Rebuild ``metrics.json`` from the stage markers when it is unreadable (or gone
        while stages finished); a marker without stored metrics values is removed so its
        stage reruns. Returns a log line saying what happened ("" if nothing)."""
        p = self.metrics_path
        try:
            m = json.loads(p.read_text())
            if isinstance(m, dict):
                return ""
            why = "not a JSON object"
        except FileNotFoundError:
            why = "missing"
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
            why = f"unreadable: {type(err).__name__}"
        done = [s for s in stages if self.marker(s).exists()]
        if not done and why == "missing":
            return ""
        rebuilt: dict = {}
        rerun = []
        for stage in done:
            info = self._info(stage)
            values = info.get("metrics")
            if isinstance(values, dict):
                rebuilt.update(values)
                if "seconds" in info:
                    rebuilt[f"stage_seconds_{stage}"] = info["seconds"]
            elif values:  # an old marker that stored only the keys: recompute the stage
                self.marker(stage).unlink(missing_ok=True)
                rerun.append(stage)
        if why != "missing":
            broken = p.with_name(f"{p.name}.broken")
            os.replace(p, broken)
        write_json(p, rebuilt)
        return (
            f"metrics.json was {why}"
            + (f" (kept as {p.name}.broken)" if why != "missing" else "")
            + f"; rebuilt it from the markers of the finished stages {', '.join(done)}"
            + (f"; rerunning {', '.join(rerun)} (their markers hold no metrics)" if rerun else "")
        )

    def mark_done(self, stage: str, key: str, outputs, *, seconds: float, **info) -> None:
        """Write the done-marker of ``stage``."""
        missing = [o for o in outputs if not (self.path / o).exists()]
        if missing:
            raise RuntimeError(f"stage {stage} claims outputs that do not exist: {missing}")
        write_json(
            self.marker(stage),
            {
                "stage": stage,
                "key": key,
                "token": secrets.token_hex(8),
                "outputs": list(outputs),
                "seconds": round(seconds, 2),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                **info,
            },
        )

    def clear(self, stage: str) -> None:
        """Forget that ``stage`` finished (and drop the metrics it wrote)."""
        m = self.marker(stage)
        old = self._info(stage).get("metrics", [])
        if old:
            kept = {k: v for k, v in self.metrics().items() if k not in old}
            write_json(self.metrics_path, kept)
        m.unlink(missing_ok=True)

    # -- metrics
    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    def metrics(self) -> dict:
        """The metrics written so far."""
        try:
            return json.loads(self.metrics_path.read_text())
        except (OSError, json.JSONDecodeError):
            return {}

    def update_metrics(self, **values) -> dict:
        """Merge ``values`` into ``metrics.json`` (NaN/inf stored as null)."""
        m = self.metrics()
        m.update({k: _plain(v) for k, v in values.items()})
        self.touched.update(values)
        write_json(self.metrics_path, m)
        return m


def attach_library_log(rd: RunDir):
    """Send the library's log lines (``jaxsel.train``: resumed from epoch k, fell back to an
    earlier checkpoint) to the run's log too. Returns the function that detaches them."""
    lib = logging.getLogger("jaxsel.train")
    before, propagate = lib.level, lib.propagate
    lib.setLevel(logging.INFO)
    lib.propagate = False  # the run's handlers only (not a root handler someone installed)
    handlers = list(rd.log.handlers)
    for h in handlers:
        lib.addHandler(h)

    def detach() -> None:
        for h in handlers:
            lib.removeHandler(h)
        lib.setLevel(before)
        lib.propagate = propagate

    return detach


def _plain(v):
    """JSON-able form of numbers (NumPy scalars, NaN -> None)."""
    if isinstance(v, np.generic):
        v = v.item()
    elif isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def write_json(path: Path, data) -> None:
    """Write JSON atomically (temporary file + rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(_plain(data), indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
