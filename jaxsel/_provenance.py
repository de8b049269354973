"""Where and with what a result was computed: jaxsel version, git commit, host, device, UTC
date, Python and JAX versions. Shared by saved models (``model.json``) and run folders
(``metrics.json`` under ``provenance``, the report header).

This module sits at the bottom of the stack: it imports nothing from jaxsel's stages.
"""

from __future__ import annotations

import datetime
import platform
import socket
import subprocess
from pathlib import Path


def git_commit() -> str | None:
    """The commit of the checkout jaxsel is imported from (None outside a git checkout)."""
    try:
        package = Path(__file__).resolve().parent  # .../jaxsel
        out = subprocess.run(
            ["git", "-C", str(package), "rev-parse", "--show-toplevel", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        lines = out.stdout.split()
        if out.returncode != 0 or len(lines) != 2:
            return None
        # only the checkout jaxsel itself lives in (not e.g. a project holding a venv)
        return lines[1] if Path(lines[0]).resolve() == package.parent else None
    except Exception:
        return None


def device_kind() -> str:
    """``'cpu'``, ``'NVIDIA H100 80GB HBM3'``, ...: the kind of JAX's first device, with the
    platform and device count (``'cpu (cpu x 1)'``)."""
    try:
        import jax

        devices = jax.devices()
        d = devices[0]
        return f"{d.device_kind} ({d.platform} x {len(devices)})"
    except Exception as err:  # pragma: no cover - a broken backend still gets a record
        return f"unknown ({type(err).__name__})"


def provenance(**extra) -> dict:
    """The provenance record (plain JSON-able dict) plus ``extra`` keys.

    Keys: ``jaxsel_version``, ``git_commit`` (None outside a git checkout), ``host``,
    ``device``, ``date_utc`` (ISO 8601 with ``+00:00``), ``python``, ``jax``.
    """
    import jax

    from jaxsel import __version__

    return {
        "jaxsel_version": __version__,
        "git_commit": git_commit(),
        "host": socket.gethostname(),
        "device": device_kind(),
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "jax": jax.__version__,
        **extra,
    }


__all__ = ["device_kind", "git_commit", "provenance"]
