"""P2 / P4 transfer sets (``kd_sources.json``): student test accuracy per source."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def plot(out: dict[str, Any], sources: Sequence[str], path: Path) -> None:
    """Each source's selected recipe (test accuracy, 95% CI) beside the data-free baselines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.8), constrained_layout=True)
    names = [s for s in sources if s in out["summary"]]
    cells = [out["summary"][s][out["selected"][s]] for s in names]
    labels = [s + "\n" + out["selected"][s].replace("_", "\n") for s in names]
    for name, b in out["baselines"].items():
        cells.append(b)
        labels.append(name)
    ax.bar(range(len(cells)), [c["mean"] for c in cells], yerr=[c["ci95"] or 0 for c in cells],
           capsize=4, color=["tab:blue"] * len(names) + ["tab:gray"] * (len(cells) - len(names)))
    ax.set_xticks(range(len(cells)), labels, fontsize=8)
    lo = min(c["mean"] for c in cells)
    ax.set_ylim(max(0, lo - 10), None)
    ax.set_ylabel("student test accuracy (%), 95% CI")
    ax.set_title("Fashion-MNIST KD: recipe chosen on validation, long budget")
    fig.savefig(path, dpi=110)
    plt.close(fig)
