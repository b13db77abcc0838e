"""P3 (``fields.json``): test relative L2 per method, points per seed, 95% CI whiskers.

Left, on a log axis: the cylinder wake (fixed and layout-general protocols), where errors span
three decades; a CI reaching to or below zero ends in a downward triangle at the axis floor.
Right, on a linear axis: the navy wind anomalies, where every method sits between 0.7 and 1.
COADS SST (an example without a claim) is left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.figures.common import new_figure, points_with_ci, redraw_from, save, seed_list

METHODS = (("gappy_pod", "gappy POD", "tab:blue"),
           ("qr_gappy_pod", "QR layout + gappy POD", "tab:cyan"),
           ("faithful", "Voronoi-CNN faithful", "tab:orange"),
           ("distance", "+ distance", "tab:olive"),
           ("scaled", "+ [−1, 1] scaling", "tab:purple"),
           ("land", "+ mask channel", "tab:brown"),
           ("improved", "improved (all three)", "tab:red"))
LOG_FLOOR = 1e-3


def _panel(ax: Any, rows: list[dict[str, Any]], log_floor: float | None) -> None:
    present = [m for m in METHODS if any(m[0] in r for r in rows)]
    width = 0.8 / len(present)
    for i, r in enumerate(rows):
        for j, (key, label, color) in enumerate(present):
            if key not in r:
                continue
            points_with_ci(ax, i + (j - (len(present) - 1) / 2) * width, r[f"{key}_per_seed"],
                           r[key], r[f"{key}_ci95"], color, log_floor=log_floor,
                           label=label if not any(key in q for q in rows[:i]) else None)
    ax.set_xticks(np.arange(len(rows)),
                  [f"{r['dataset']}\n{r['protocol'].replace('_', '-')}\n{r['K']}" for r in rows],
                  fontsize=7)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.grid(axis="y", alpha=0.3, which="both")


def plot(record: dict[str, Any], path: Path) -> Path:
    """Draw the figure of a ``fields`` record to ``path`` (PNG); returns ``path``."""
    rows = [r for r in record["rows"] if r["dataset"] != "coads-sst"]
    cyl = [r for r in rows if r["set"] == "cylinder"]
    geo = [r for r in rows if r["set"] != "cylinder"]
    ratios = [max(len(cyl), 1), max(len(geo), 1)] if cyl and geo else None
    fig, axes = new_figure(13.0, 5.0, ncols=2 if cyl and geo else 1, width_ratios=ratios)
    if cyl:
        ax = axes[0]
        ax.set_yscale("log")
        _panel(ax, cyl, LOG_FLOOR)
        ax.set_ylim(LOG_FLOOR * 0.8, 1.5)
        ax.set_ylabel("test relative L2 (log axis)")
        ax.set_title("cylinder wake, 28×48 (▼: CI reaches ≤ 0.001)", fontsize=9)
    if geo:
        ax = axes[-1]
        _panel(ax, geo, None)
        ax.set_ylabel("test relative L2, area-weighted (linear axis)")
        ax.set_title("navy wind anomalies (monthly 1980–90)", fontsize=9)
    handles = {lab: h for ax in axes for h, lab in zip(*ax.get_legend_handles_labels(),
                                                        strict=True)}
    order = [lab for _, lab, _ in METHODS if lab in handles]
    if order:  # a record of COADS SST alone has nothing to draw
        fig.legend([handles[lab] for lab in order], order, loc="outside lower center",
                   ncol=len(order), fontsize=8)
    return save(fig, path, f"P3: reconstruction error on the test block, seeds "
                           f"{seed_list(record)} (points = seeds, whiskers = 95% CI of the mean)")


def redraw(results_dir: Path) -> Path:
    """Re-draw ``fields.png`` from the committed ``fields.json``."""
    return redraw_from(results_dir, "fields", plot)
