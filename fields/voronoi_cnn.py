"""Voronoi-CNN (Fukami et al., arXiv:2101.00554) and the reconstruction metrics."""

from __future__ import annotations

import torch
from torch import nn

NORMS = ("none", "standard", "revisited")


class VoronoiCNN(nn.Module):
    """``depth`` × [Conv k×k, ``width`` filters, (BN), ReLU] then a linear Conv to 1 channel.

    The paper's network is ``depth=7, width=48, kernel=7`` with a 3×3 output layer (7×7 for
    SST). ``norm`` adds batch norm after every hidden conv: ``'standard'`` or ``'revisited'``
    (γ₀ = 0.1, from :mod:`models.bn`).
    """

    def __init__(self, in_channels: int, width: int = 48, depth: int = 7, kernel: int = 7,
                 out_kernel: int = 3, norm: str = "none") -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; choose one of {NORMS}")
        if kernel % 2 == 0 or out_kernel % 2 == 0:
            raise ValueError("kernel sizes must be odd to keep the grid size")
        make_norm = None
        if norm != "none":
            from models.bn import make_norm as _make_norm

            make_norm = _make_norm(norm)
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(depth):
            layers.append(nn.Conv2d(c, width, kernel, padding=kernel // 2,
                                    bias=make_norm is None))
            if make_norm is not None:
                layers.append(make_norm(width))
            layers.append(nn.ReLU(inplace=True))
            c = width
        layers.append(nn.Conv2d(c, 1, out_kernel, padding=out_kernel // 2))
        self.net = nn.Sequential(*layers)
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` → ``(B, H, W)``."""
        return self.net(x).squeeze(1)


def _weights(pred: torch.Tensor, valid: torch.Tensor, weight: torch.Tensor | None
             ) -> torch.Tensor:
    v = valid.to(pred.dtype)
    return (v if weight is None else v * weight.to(pred.dtype)).expand_as(pred)


def relative_l2(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
                weight: torch.Tensor | None = None) -> torch.Tensor:
    """Per-snapshot ``‖q − q̂‖₂ / ‖q‖₂`` over valid cells; ``(B,)``.

    ``weight`` ``(H, W)``: cell areas (cos latitude on lat/lon grids) for area-weighted norms.
    """
    w = _weights(pred, valid, weight)
    num = ((pred - target) ** 2 * w).flatten(1).sum(1).sqrt()
    den = (target ** 2 * w).flatten(1).sum(1).sqrt().clamp_min(1e-12)
    return num / den


def rmse(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
         weight: torch.Tensor | None = None) -> torch.Tensor:
    """Per-snapshot (area-weighted) root-mean-square error over valid cells; ``(B,)``."""
    w = _weights(pred, valid, weight)
    return (((pred - target) ** 2 * w).flatten(1).sum(1) / w.flatten(1).sum(1)).sqrt()


def masked_mse(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
               weight: torch.Tensor | None = None) -> torch.Tensor:
    """(Area-weighted) mean squared error over valid cells (the training loss)."""
    w = _weights(pred, valid, weight)
    return ((pred - target) ** 2 * w).sum() / w.sum()
