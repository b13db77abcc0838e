"""P1 on hard ground (``ptq_pairs_hard.json``): drop per network, weight setting and seed.

Left: the detrimental pair under its own policy, with P1's published range. Right: the
standard network and the robust pair, each under a fresh attacker with the same PPO budget,
with the targets (≤ 5 and < 2 points). Points are seeds; whiskers the 95% CI of the mean
stored in the JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.figures.common import new_figure, points_with_ci, redraw_from, save, seed_list

SERIES = (("standard_attacked_drop", "standard network, fresh attacker", "tab:blue", "s"),
          ("robust_attacked_drop", "robust pair, fresh attacker", "tab:green", "D"))
ARCH_NAMES = {"cnn": "CNN", "resnet8": "ResNet-8"}
WEIGHT_NAMES = {"a": "float weights", "w8a": "8-bit weights"}


def _groups(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{ARCH_NAMES.get(arch, arch)}\n{WEIGHT_NAMES.get(w, w)}", row)
            for arch, by_w in summary.items() for w, row in by_w.items()]


def plot(record: dict[str, Any], path: Path) -> Path:
    """Draw the figure of a ``ptq_pairs_hard`` record to ``path`` (PNG); returns ``path``."""
    groups = _groups(record["summary"])
    targets = record.get("targets", {})
    paper = record.get("paper", {})
    fig, (ax_det, ax_fresh) = new_figure(10.5, 4.0, ncols=2, width_ratios=(1, 1.3))
    for i, (_, row) in enumerate(groups):
        points_with_ci(ax_det, i, row["per_seed"]["det_pair_drop"], row["det_pair_drop"],
                       row["ci95"]["det_pair_drop"], "tab:red",
                       label="detrimental pair, own policy" if i == 0 else None)
    ax_det.axhspan(10, 65, color="0.85", zorder=0, label="P1: detrimental pairs lose 10–65")
    if "resnet18_detrimental_drop" in paper:
        ax_det.axhline(paper["resnet18_detrimental_drop"], color="0.4", ls=":", lw=1,
                       label=f"P1 ResNet-18: {paper['resnet18_detrimental_drop']}")
    ax_det.set_ylim(0, 100)
    ax_det.set_ylabel("accuracy drop under DPTQ (points)")
    ax_det.set_title("detrimental pair under its own policy", fontsize=10)
    for j, (key, label, color, marker) in enumerate(SERIES):
        for i, (_, row) in enumerate(groups):
            points_with_ci(ax_fresh, i + (j - 0.5) * 0.3, row["per_seed"][key], row[key],
                           row["ci95"][key], color, label=label if i == 0 else None,
                           marker=marker)
    if "standard_attacked_drop" in targets:
        ax_fresh.axhline(targets["standard_attacked_drop"], color="tab:blue", ls="--", lw=0.8,
                         label=f"target standard ≤ {targets['standard_attacked_drop']:g}")
    if "robust_attacked_drop" in targets:
        ax_fresh.axhline(targets["robust_attacked_drop"], color="tab:green", ls="--", lw=0.8,
                         label=f"target robust < {targets['robust_attacked_drop']:g}")
    ax_fresh.axhline(0, color="black", lw=0.6)
    ax_fresh.set_ylabel("accuracy drop under DPTQ (points)")
    ax_fresh.set_title("fresh attacker, same PPO budget", fontsize=10)
    top = max(row[k] + (row["ci95"][k] or 0.0) for _, row in groups for k, *_ in SERIES)
    ax_fresh.set_ylim(min(-1.0, ax_fresh.get_ylim()[0]), top * 1.4)
    for ax, loc in ((ax_det, "lower right"), (ax_fresh, "upper left")):
        ax.set_xticks(range(len(groups)), [g for g, _ in groups], fontsize=8)
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, loc=loc, ncol=1 if ax is ax_det else 2)
    return save(fig, path, f"P1 hard protocol (bits 4..8, Fashion-MNIST, seeds "
                           f"{seed_list(record)}): points = seeds, whiskers = 95% CI")


def redraw(results_dir: Path) -> Path:
    """Re-draw ``ptq_pairs_hard.png`` from the committed ``ptq_pairs_hard.json``."""
    return redraw_from(results_dir, "ptq_pairs_hard", plot)
