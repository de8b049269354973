"""One figure style and one way to save: every jaxsel figure goes through here.

Figures are plain :class:`matplotlib.figure.Figure` objects with their own Agg canvas
(:func:`new_figure`): no pyplot state, and no backend is chosen at import. Drawing functions
are wrapped in :func:`styled`, which applies :data:`STYLE` through
``matplotlib.rc_context`` (never globally); :func:`save_figure` writes atomically.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

STYLE: dict[RcKeyType, Any] = {
    "image.interpolation": "nearest",  # pixels are data: never smooth them
    "image.origin": "upper",  # [y, x] with y downwards (jaxsel.data._stimuli)
    "axes.titlesize": "medium",
    "legend.frameon": False,
    "savefig.dpi": 120,
}
"""The rcParams every jaxsel figure is drawn and saved with."""


def styled[F: Callable[..., Any]](fn: F) -> F:
    """Decorator: run a drawing function inside ``matplotlib.rc_context(STYLE)``."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return fn(*args, **kwargs)

    return cast(F, wrapper)


def new_figure(
    figsize: tuple[float, float],
    *,
    layout: Literal["constrained", "compressed", "tight"] | None = None,
    **kwargs,
) -> Figure:
    """A figure with its own Agg canvas (no pyplot, no global backend).

    Args:
      figsize: (width, height) in inches.
      layout: matplotlib layout engine (e.g. ``"constrained"``) or None.
      **kwargs: passed to :class:`matplotlib.figure.Figure`.
    """
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=figsize, layout=layout, **kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_figure(
    fig: Figure, path: str | Path, *, dpi: float | None = None, tight: bool = True
) -> Path:
    """Write ``fig`` to ``path`` atomically (format from the suffix) and release it.

    The file is written under a temporary name in the same folder and renamed, so a
    crash never leaves a half-written figure. A figure made by pyplot is closed; one made by
    :func:`new_figure` holds no global state and stays usable (e.g. ``fig.axes``).

    Args:
      fig: the figure.
      path: destination (``.png``, ``.pdf``, ``.svg``, ...); folders are created.
      dpi: resolution (default :data:`STYLE`'s ``savefig.dpi``).
      tight: crop to the drawn content (``bbox_inches="tight"``).

    Returns:
      The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with matplotlib.rc_context(STYLE):
            extra: dict[str, Any] = {} if dpi is None else {"dpi": dpi}
            fig.savefig(
                tmp,
                format=path.suffix.lstrip(".") or "png",
                bbox_inches="tight" if tight else None,
                **extra,
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None and getattr(fig.canvas, "manager", None) is not None:
        plt.close(fig)  # only pyplot figures have a manager
    return path


def maybe_save(fig: Figure, path: str | Path | None) -> Figure:
    """Save ``fig`` to ``path`` if one is given (:func:`save_figure`); return the figure."""
    if path is not None:
        save_figure(fig, path)
    return fig
