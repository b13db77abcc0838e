"""Shared drawing helpers: per-seed points with a mean marker and 95% CI whiskers."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def new_figure(width: float, height: float, ncols: int = 1,
               width_ratios: Sequence[float] | None = None) -> tuple[Figure, list[Axes]]:
    """A figure drawn without pyplot (no global state, no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, width_ratios=width_ratios, squeeze=False)[0]
    return fig, list(axes)


def points_with_ci(ax: Axes, x: float, values: Sequence[float], mean: float, ci: float | None,
                   color: str, label: str | None = None, log_floor: float | None = None,
                   marker: str = "o") -> None:
    """Seeds as small points, the mean as a large marker, ``mean ± ci`` as a whisker.

    On a log axis (``log_floor`` given) a lower CI end at or below ``log_floor`` is drawn down
    to ``log_floor`` and ends in a downward triangle: the interval reaches below it (down to
    or past zero), which a log axis cannot show. ``ci=None`` (one seed) draws no whisker.
    """
    vals = np.asarray(values, dtype=float)
    jitter = np.linspace(-0.06, 0.06, len(vals)) if len(vals) > 1 else np.zeros(1)
    ax.scatter(x + jitter, vals, s=16, color=color, alpha=0.7, linewidths=0, zorder=3)
    if ci is not None:
        _whisker(ax, x, mean - ci, mean + ci, color, log_floor)
    ax.scatter([x], [mean], s=38, color=color, marker=marker, edgecolors="black",
               linewidths=0.5, zorder=4, label=label)


def _whisker(ax: Axes, x: float, lo: float, hi: float, color: str, log_floor: float | None
             ) -> None:
    clipped = log_floor is not None and lo <= log_floor
    if clipped:
        lo = log_floor
    ax.plot([x, x], [lo, hi], color=color, lw=1.4, zorder=2)
    ax.plot([x - 0.08, x + 0.08], [hi, hi], color=color, lw=1.4, zorder=2)
    if clipped:
        ax.plot([x], [lo], marker="v", color=color, ms=5, zorder=2)
    else:
        ax.plot([x - 0.08, x + 0.08], [lo, lo], color=color, lw=1.4, zorder=2)


def seed_list(record: dict[str, Any]) -> str:
    """The record's seeds as ``0,1,2`` for a title."""
    return ",".join(map(str, record.get("seeds", [])))


def save(fig: Figure, path: Path, title: str) -> Path:
    """Title ``fig`` and write it as a PNG to ``path`` (its folder made); returns ``path``."""
    fig.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def redraw_from(results_dir: Path, name: str, plot: Callable[[dict[str, Any], Path], Path]
                ) -> Path:
    """Re-draw ``<name>.png`` with ``plot`` from the committed ``<name>.json``."""
    record = json.loads((results_dir / f"{name}.json").read_text())
    return plot(record, results_dir / f"{name}.png")
