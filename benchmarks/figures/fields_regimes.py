"""The regimes map (``fields_regimes.json``): error ratio learned / gappy POD over K × condition.

One row per field; columns: the best Voronoi-CNN (faithful or improved, whichever is lower in
the cell) on fixed layouts, the same on unseen layouts, and the shallow decoder on fixed
layouts. Colour: log₂ of the ratio (blue: the learned method is better). Each cell prints the
ratio; ``*`` marks a paired p < 0.05 against gappy POD over the seeds; an empty cell has not
run yet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.figures.common import save

PANELS = (("fixed", ("cnn_faithful", "cnn_improved"), "Voronoi-CNN, fixed layout"),
          ("unseen", ("cnn_faithful", "cnn_improved"), "Voronoi-CNN, unseen layouts"),
          ("fixed", ("shallow_decoder",), "shallow decoder, fixed layout"))


def _grid(cells: dict[str, Any], methods: tuple[str, ...], ks: list[str], conds: list[str]
          ) -> tuple[np.ndarray, np.ndarray]:
    ratio = np.full((len(ks), len(conds)), np.nan)
    sig = np.zeros((len(ks), len(conds)), dtype=bool)
    for i, k in enumerate(ks):
        for j, c in enumerate(conds):
            cell = cells.get(k, {}).get(c, {})
            have = [m for m in methods if m in cell and "over_gappy_pod" in cell[m]]
            if not have:
                continue
            best = min(have, key=lambda m: cell[m]["mean"])
            ratio[i, j] = cell[best]["over_gappy_pod"]
            p = cell[best].get("p_vs_gappy_pod")
            sig[i, j] = p is not None and p < 0.05
    return ratio, sig


def plot(out: dict[str, Any], path: Path) -> None:
    """Draw the map; nothing to draw (no finished run) writes no file."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    summary = out.get("summary", {})
    fields = [f for f in out.get("fields", []) if f in summary]
    if not fields:
        return
    conds = out["spec"][fields[0]]["conditions"]
    ks = [f"K{k}" for k in out["spec"][fields[0]]["ks"]]
    fig = Figure(figsize=(4.2 * len(PANELS), 2.6 * len(fields) + 0.6), dpi=110,
                 layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(fields), len(PANELS), squeeze=False)
    image = None
    for r, field in enumerate(fields):
        for c, (layout, methods, title) in enumerate(PANELS):
            ax = axes[r][c]
            ratio, sig = _grid(summary[field].get(layout, {}), methods, ks, conds)
            image = ax.imshow(np.log2(ratio), cmap="RdBu_r", vmin=-3, vmax=3, aspect="auto")
            for i in range(len(ks)):
                for j in range(len(conds)):
                    if np.isfinite(ratio[i, j]):
                        ax.text(j, i, f"{ratio[i, j]:.2g}" + ("*" if sig[i, j] else ""),
                                ha="center", va="center", fontsize=7)
            ax.set_xticks(range(len(conds)), [c.replace("+drop", "\n+drop") for c in conds],
                          fontsize=7)
            ax.set_yticks(range(len(ks)), ks, fontsize=7)
            ax.set_title(f"{field}: {title}", fontsize=8)
            if r == len(fields) - 1:
                ax.set_xlabel("sensor noise (fraction of field std)", fontsize=7)
    if image is not None:
        bar = fig.colorbar(image, ax=axes, shrink=0.6)
        bar.set_label("log₂(learned / gappy POD error); * p < 0.05 (paired, seeds)", fontsize=7)
    save(fig, path, "Learned reconstruction vs gappy POD: error ratio per K × sensor condition")
