"""P5 against training budget (``bn_init_budget.json``): the effect per rung and the ablation.

Left: revisited − standard test accuracy (points, 95% CI) at each training budget, on a log
axis labelled with the rungs. Right: each ablation variant (one change undone) minus the
standard network at the ablation budget, beside the full revisited recipe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot(summary: dict[str, Any], path: Path) -> None:
    """Draw the ladder and the ablation of ``summary`` into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    rungs = [(int(e), c) for e, c in summary["ladder"].items() if c["diff_mean"] is not None]
    if rungs:
        ax1.errorbar([e for e, _ in rungs], [100 * c["diff_mean"] for _, c in rungs],
                     yerr=[100 * (c["ci95"] or 0) for _, c in rungs], fmt="o-", capsize=4)
        for e, c in rungs:
            ax1.annotate(f"n={c['n_seeds']}", (e, 100 * c["diff_mean"]), fontsize=7,
                         xytext=(4, 4), textcoords="offset points")
    ax1.axhline(0, color="0.5", lw=0.8)
    ax1.set_xscale("log")
    if rungs:  # label the rungs themselves, not powers of ten
        ax1.set_xticks([e for e, _ in rungs], [str(e) for e, _ in rungs])
        ax1.xaxis.set_minor_locator(plt.NullLocator())
    ax1.set_xlabel("epochs")
    ax1.set_ylabel("revisited − standard (points, 95% CI)")
    ax1.set_title("P5 effect against training budget")
    ab = summary["ablation"]
    names, vals, errs = ["revisited"], [], []
    base = ab["revisited_minus_standard"]
    vals.append(100 * (base["diff_mean"] or 0))
    errs.append(100 * (base["ci95"] or 0))
    for v, cell in ab["variants"].items():
        names.append(f"−{v}")
        vals.append(100 * (cell["minus_standard"]["diff_mean"] or 0))
        errs.append(100 * (cell["minus_standard"]["ci95"] or 0))
    ax2.bar(names, vals, yerr=errs, capsize=4, color=["tab:blue"] + ["tab:orange"] * (
        len(names) - 1))
    ax2.axhline(0, color="0.5", lw=0.8)
    ax2.set_ylabel("− standard (points, 95% CI)")
    ax2.set_title(f"ablation at {ab['epochs']} epochs (one change undone)")
    ax2.tick_params(axis="x", labelsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
