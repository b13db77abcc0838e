"""Procedural non-shader sources: dead leaves and noise.

Dead leaves are drawn without a per-leaf pass over the image: every leaf is evaluated only on a
square window around its centre (windows grouped by size class), and the leaf on top at each
pixel is found with one ``scatter_reduce(amax)`` over leaf depth indices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from distill.sources.base import Source, gen_for, single_threaded


def power_law(u: torch.Tensor, rmin: float, rmax: float, alpha: float) -> torch.Tensor:
    """Inverse-CDF sample of ``p(r) ∝ r^-alpha`` on ``[rmin, rmax]`` from uniforms ``u``."""
    if abs(alpha - 1.0) < 1e-6:
        return rmin * (rmax / rmin) ** u
    e = 1.0 - alpha
    return (rmin ** e + u * (rmax ** e - rmin ** e)) ** (1.0 / e)


class LeavesSource(Source):
    """Dead-leaves images: occluding discs, ellipses and rotated rectangles with random colours,
    radii from a power law ``p(r) ∝ r^-alpha`` (scale-invariant for ``alpha = 3``).

    Args:
        num_leaves: leaves per image (enough to nearly cover it with the default radii).
        rmin, rmax: radius range as fractions of the image side.
        alpha: power-law exponent.
        supersample: render at ``s×`` and average down (anti-aliased edges).
    """

    name = "leaves"
    _WINDOWS = (3, 6, 12, 24)  # half-widths in (supersampled) pixels of the window size classes

    def __init__(self, image_size: tuple[int, int] | int, channels: int, num_leaves: int = 160,
                 rmin: float = 0.03, rmax: float = 0.6, alpha: float = 3.0,
                 supersample: int = 2) -> None:
        super().__init__(image_size, channels)
        self.num_leaves, self.rmin, self.rmax, self.alpha = num_leaves, rmin, rmax, alpha
        self.supersample = int(supersample)

    @single_threaded
    def sample(self, n: int, seed: int) -> torch.Tensor:
        g, s, h, w = self.canvas(seed, self.supersample)
        k = self.num_leaves
        side = float(max(h, w))
        u = torch.rand(n, k, 8, generator=g)
        cx, cy = u[..., 0] * w, u[..., 1] * h
        r = power_law(u[..., 2], self.rmin, self.rmax, self.alpha) * side
        aspect = torch.where(u[..., 3] < 0.4, torch.ones_like(r), 0.35 + 0.65 * u[..., 4])
        ra, rb = r, r * aspect  # semi-axes
        theta = u[..., 5] * math.pi
        is_box = u[..., 6] < 0.35
        colours = torch.rand(n, k + 1, self.channels, generator=g)  # index 0: background
        owner = torch.zeros(n * h * w, dtype=torch.long)
        depth = torch.arange(1, k + 1).expand(n, k)
        base = (torch.arange(n) * (h * w))[:, None].expand(n, k)
        halfwidth = torch.ceil(r).long()
        prev = 0
        for hw_ in (*self._WINDOWS, max(h, w)):
            sel = (halfwidth > prev) & (halfwidth <= hw_)
            prev = hw_
            if not bool(sel.any()):
                continue
            # Separable window coordinates: x along dim 2, y along dim 1 of [L, Sy, Sx].
            off = torch.arange(-hw_, hw_ + 1)
            px = cx[sel].floor().long()[:, None] + off  # [L, S]
            py = cy[sel].floor().long()[:, None] + off
            dx = (px + 0.5 - cx[sel][:, None])[:, None, :]
            dy = (py + 0.5 - cy[sel][:, None])[:, :, None]
            c = torch.cos(theta[sel])[:, None, None]
            sn = torch.sin(theta[sel])[:, None, None]
            uu = (dx * c + dy * sn) / ra[sel][:, None, None]
            vv = (dy * c - dx * sn) / rb[sel][:, None, None]
            box = is_box[sel][:, None, None]
            inside = torch.where(box, torch.maximum(uu.abs(), vv.abs()), uu * uu + vv * vv) <= 1.0
            valid = ((py >= 0) & (py < h))[:, :, None] & ((px >= 0) & (px < w))[:, None, :]
            flat = ((base[sel][:, None] + py.clamp(0, h - 1) * w)[:, :, None]
                    + px.clamp(0, w - 1)[:, None, :])
            val = depth[sel][:, None, None] * (inside & valid)
            owner.scatter_reduce_(0, flat.reshape(-1), val.reshape(-1), reduce="amax")
        owner = owner.view(n, h * w)
        img = torch.gather(colours, 1, owner[..., None].expand(-1, -1, self.channels))
        img = img.view(n, h, w, self.channels).permute(0, 3, 1, 2)
        if s > 1:
            img = F.avg_pool2d(img, s)
        return img.contiguous()


class GaussianNoiseSource(Source):
    """Gaussian noise with given per-channel mean/std (e.g. the target data's), clipped to [0, 1]."""

    name = "noise"

    def __init__(self, image_size: tuple[int, int] | int, channels: int,
                 mean: float | Sequence[float] = 0.5, std: float | Sequence[float] = 0.25) -> None:
        super().__init__(image_size, channels)
        self.mean = _per_channel(mean, channels)
        self.std = _per_channel(std, channels)

    @single_threaded
    def sample(self, n: int, seed: int) -> torch.Tensor:
        x = torch.randn(n, self.channels, *self.image_size, generator=gen_for(seed))
        return (x * self.std.view(1, -1, 1, 1) + self.mean.view(1, -1, 1, 1)).clamp_(0.0, 1.0)


class UniformNoiseSource(Source):
    """Independent uniform pixels in [0, 1]."""

    name = "uniform"

    @single_threaded
    def sample(self, n: int, seed: int) -> torch.Tensor:
        return torch.rand(n, self.channels, *self.image_size, generator=gen_for(seed))


def _per_channel(v: float | Sequence[float], channels: int) -> torch.Tensor:
    arr = np.atleast_1d(np.asarray(v, dtype=np.float32))
    if len(arr) == 1:
        arr = np.repeat(arr, channels)
    elif len(arr) == 3 and channels == 1:
        arr = np.array([float(np.dot(arr, (0.299, 0.587, 0.114)))], dtype=np.float32)
    elif len(arr) != channels:
        raise ValueError(f"expected 1 or {channels} values, got {len(arr)}")
    return torch.from_numpy(arr)
