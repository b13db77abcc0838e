"""Truth / reconstruction / error / sensors panels, as a PNG file or an RGB array."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def reconstruction_figure(truth: np.ndarray, recon: np.ndarray, valid: np.ndarray,
                          sensors: np.ndarray, title: str = "",
                          path: str | Path | None = None) -> np.ndarray:
    """Draw the four panels; save to ``path`` if given; return the image ``(H, W, 3)`` uint8."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, w = truth.shape
    t = np.where(valid, truth, np.nan)
    r = np.where(valid, recon, np.nan)
    e = np.where(valid, recon - truth, np.nan)
    lo, hi = np.nanpercentile(t, [1, 99])
    em = float(np.nanmax(np.abs(e))) or 1.0
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.2 * h / w + 0.8), constrained_layout=True)
    panels = [("truth", t, "RdBu_r", lo, hi), ("reconstruction", r, "RdBu_r", lo, hi),
              ("error", e, "PuOr", -em, em), ("sensors", t, "RdBu_r", lo, hi)]
    for ax, (name, img, cmap, vmin, vmax) in zip(axes, panels, strict=True):
        im = ax.imshow(img, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, shrink=0.8)
    sy, sx = np.unravel_index(sensors, (h, w))
    axes[3].scatter(sx, sy, s=14, c="k", marker="x")
    if title:
        fig.suptitle(title)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return rgb
