"""``render_mode='rgb_array'`` frames of DistillSource: sample images of the chosen source(s),
the mixture weights of the last phase and the agreement curve of the episode."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def image_grid(images: torch.Tensor, cols: int = 8, pad: int = 1) -> np.ndarray:
    """``[N, C, H, W]`` in [0, 1] → one ``[rows·(H+pad), cols·(W+pad), 3]`` float image."""
    x = images.detach().cpu().float().clamp(0, 1)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    n, _, h, w = x.shape
    rows = max(1, -(-n // cols))
    out = np.ones((rows * (h + pad), cols * (w + pad), 3), dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, cols)
        out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = \
            x[i].permute(1, 2, 0).numpy()
    return out


def render_frame(images: torch.Tensor, title: str, source_names: tuple[str, ...],
                 weights: np.ndarray | None, curve: list[float], phases: int) -> np.ndarray:
    """An ``[H, W, 3]`` uint8 frame: image grid (left), weights and agreement (right)."""
    fig = Figure(figsize=(7.2, 3.4), dpi=80)
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(2, 2, width_ratios=(1.3, 1))
    ax_img = fig.add_subplot(gs[:, 0])
    ax_w, ax_c = fig.add_subplot(gs[0, 1]), fig.add_subplot(gs[1, 1])
    ax_img.imshow(image_grid(images), interpolation="nearest")
    ax_img.set_title(title, fontsize=8)
    ax_img.set_axis_off()
    s = len(source_names)
    ax_w.bar(np.arange(s), weights if weights is not None else np.zeros(s), color="tab:blue")
    ax_w.set_xticks(np.arange(s), source_names, fontsize=6, rotation=30)
    ax_w.set_ylim(0, 1)
    ax_w.set_ylabel("weight", fontsize=7)
    ax_w.tick_params(labelsize=6)
    ax_c.plot(np.arange(len(curve)), curve, "o-", ms=3, color="tab:green")
    ax_c.set_xlim(-0.3, phases + 0.3)
    ax_c.set_ylim(0, 1)
    ax_c.set_xlabel("phase", fontsize=7)
    ax_c.set_ylabel("probe agreement", fontsize=7)
    ax_c.tick_params(labelsize=6)
    fig.tight_layout()
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
