"""Figures of the DynamicPTQ analysis hook, sized to be read at normal zoom.

:func:`ptq_plots` writes ``worst_failures.png`` (the inputs with the largest KL(FP‖Q) among
those the quantized network gets wrong and the FP network right, titled with both
predictions), ``per_class_drop.png``, ``layer_bits.png`` and ``baselines_drop.png`` into
the output folder and, with a writer, the same figures to TensorBoard (``analysis/<name>``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

FONT = 12      # titles and labels, points
DPI = 100


def _worst_failures(plt: Any, r: dict[str, np.ndarray], images: torch.Tensor,
                    class_names: tuple[str, ...], n: int = 16) -> Any | None:
    fail = np.flatnonzero(r["failure"].astype(bool))
    worst = fail[np.argsort(-r["kl"][fail])][:n]
    if not len(worst):
        return None
    cols = min(4, len(worst))
    rows = (len(worst) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.6 * rows + 0.6), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), worst, strict=False):
        img = images[i].permute(1, 2, 0).numpy()
        ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray")
        ax.set_title(f"FP: {class_names[r['fp_pred'][i]][:14]}\n"
                     f"Q: {class_names[r['q_pred'][i]][:14]} ({r['mean_bits'][i]:.1f} b)",
                     fontsize=FONT)
    fig.suptitle(f"{len(worst)} worst failures (largest KL(FP‖Q)): FP vs quantized prediction",
                 fontsize=FONT + 2)
    return fig


def ptq_plots(out: Path, writer: Any, r: dict[str, np.ndarray], images: torch.Tensor,
              class_names: tuple[str, ...], res: dict[str, Any],
              choices: tuple[int, ...]) -> list[str]:
    """Write the hook's figures; returns the PNG names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []

    def save(fig: Any, name: str, tag: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=DPI)
        if writer is not None:
            writer.add_figure(f"analysis/{tag}", fig, 0)
        plt.close(fig)
        written.append(name)

    fig = _worst_failures(plt, r, images, class_names)
    if fig is not None:
        save(fig, "worst_failures.png", "worst_failures")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.bar(range(len(class_names)), res["per_class_drop"])
    ax.set_xticks(range(len(class_names)), [c[:12] for c in class_names], rotation=45,
                  ha="right", fontsize=FONT - 1)
    ax.set_ylabel("drop (points)", fontsize=FONT)
    ax.set_title(f"accuracy drop per class ({res['split']} split)", fontsize=FONT)
    save(fig, "per_class_drop.png", "per_class_drop")
    hist = np.asarray(res["layer_bits_hist"], dtype=float)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    im = ax.imshow(hist / np.maximum(hist.sum(1, keepdims=True), 1), aspect="auto",
                   cmap="viridis")
    ax.set_xticks(range(len(choices)), [str(b) for b in choices], fontsize=FONT - 1)
    ax.set_yticks(range(len(res["layer_names"])), res["layer_names"], fontsize=FONT - 1)
    ax.set_xlabel("bits", fontsize=FONT)
    ax.set_title("bits chosen per layer (fraction of inputs)", fontsize=FONT)
    fig.colorbar(im, ax=ax)
    save(fig, "layer_bits.png", "layer_bits")
    names = ["policy", *res["baselines"]]
    drops = [res["policy"]["drop"], *[b["drop"] for b in res["baselines"].values()]]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.bar(range(len(names)), drops, color=["tab:blue"] + ["tab:gray"] * (len(names) - 1))
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=FONT - 1)
    ax.set_ylabel("drop (points)", fontsize=FONT)
    ax.set_title(f"policy vs baselines on the {res['split']} split", fontsize=FONT)
    save(fig, "baselines_drop.png", "baselines_drop")
    return written
