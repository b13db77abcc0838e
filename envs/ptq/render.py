"""``render_mode='rgb_array'`` frames of DynamicPTQ: the input image and its bit plan."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from models.quant import FP_BITS


def render_frame(image: torch.Tensor, plan: np.ndarray, k: int, bit_choices: tuple[int, ...],
                 class_names: tuple[str, ...], label: int, fp_pred: int,
                 info: dict[str, Any] | None) -> np.ndarray:
    """An ``[H, W, 3]`` uint8 frame: the image with its label and predictions on the left,
    the bits chosen per layer on the right (grey bars: layers not chosen yet)."""
    fig = Figure(figsize=(6.4, 3.2), dpi=80)
    FigureCanvasAgg(fig)
    ax_img, ax_bits = fig.subplots(1, 2, width_ratios=(1, 1.6))
    img = image.detach().cpu().float().numpy()
    if img.shape[0] == 1:
        ax_img.imshow(img[0], cmap="gray", vmin=0, vmax=1)
    else:
        ax_img.imshow(np.clip(img.transpose(1, 2, 0), 0, 1))
    title = f"label {class_names[label]}\nFP → {class_names[fp_pred]}"
    if info:
        title += f" | Q → {class_names[info['q_pred']]}"
    ax_img.set_title(title, fontsize=8)
    ax_img.set_axis_off()
    n = len(plan)
    shown = np.where(plan >= FP_BITS, max(bit_choices[-1], 8) + 1, plan)
    chosen = np.arange(n) < k
    colors = ["tab:red" if c and b <= 3 else "tab:blue" if c else "lightgrey"
              for b, c in zip(plan, chosen, strict=True)]
    ax_bits.bar(np.arange(n), np.where(chosen, shown, max(bit_choices[-1], 8)), color=colors)
    ax_bits.set_xlabel("layer", fontsize=8)
    ax_bits.set_ylabel("activation bits", fontsize=8)
    ax_bits.set_ylim(0, max(bit_choices[-1], 8) + 1.5)
    ax_bits.tick_params(labelsize=7)
    mean = plan[chosen].mean() if chosen.any() else float("nan")
    ax_bits.set_title(f"bit plan ({k}/{n} chosen, mean {mean:.2f})", fontsize=8)
    fig.tight_layout()
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
