"""The ``fractals`` source: attractors of random iterated function systems (IFS).

Each image is one IFS of 2–4 contractive affine maps ``x ↦ A x + t``, sampled through the SVD
``A = R(θ) diag(σ1, d σ2) R(φ)`` with the total "σ-factor" ``Σ σ1 + 2 σ2`` held in the range
that gives neither dust nor blobs (as in fractal pre-training work). The attractor is found with
a parallel chaos game (many points, a few iterations each, all images at once), fitted into the
frame, and rasterised as a log-density coloured by the map each point used last.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from distill.sources.base import Source, single_threaded


def sample_ifs(n: int, max_maps: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Random IFS for ``n`` images: matrices ``[n, M, 2, 2]``, shifts ``[n, M, 2]``,
    map probabilities ``[n, M]`` (zero for unused maps)."""
    m = max_maps
    num = torch.randint(2, m + 1, (n,), generator=g)
    used = torch.arange(m)[None] < num[:, None]
    u = torch.rand(n, m, 6, generator=g)
    s1 = 0.25 + 0.75 * u[..., 0]
    s2 = s1 * (0.1 + 0.9 * u[..., 1])
    target = 0.5 * (5.0 + num.float()) + 0.5 * torch.rand(n, generator=g)  # σ-factor range
    factor = ((s1 + 2 * s2) * used).sum(1)
    scale = (target / factor)[:, None]
    s1, s2 = (s1 * scale).clamp(max=0.97), (s2 * scale).clamp(max=0.97)
    th, ph = u[..., 2] * 2 * math.pi, u[..., 3] * 2 * math.pi
    d = torch.where(u[..., 4] < 0.5, -1.0, 1.0)

    def rot(a: torch.Tensor) -> torch.Tensor:
        c, s = torch.cos(a), torch.sin(a)
        return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)

    diag = torch.diag_embed(torch.stack([s1, d * s2], -1))
    mats = rot(th) @ diag @ rot(ph)
    shifts = torch.rand(n, m, 2, generator=g) * 2 - 1
    probs = (s1 * s2 + 1e-3) * used
    return mats, shifts, probs / probs.sum(1, keepdim=True)


class FractalSource(Source):
    """IFS fractal images with random colours on a random background.

    Args:
        max_maps: maps per system are drawn from ``2..max_maps``.
        points_per_pixel: chaos-game points per (supersampled) pixel.
        iterations: chaos-game steps per point.
    """

    name = "fractals"

    def __init__(self, image_size: tuple[int, int] | int, channels: int, max_maps: int = 4,
                 points_per_pixel: float = 1.5, iterations: int = 8, supersample: int = 2) -> None:
        super().__init__(image_size, channels)
        self.max_maps, self.ppp, self.iterations = max_maps, points_per_pixel, iterations
        self.supersample = int(supersample)

    @single_threaded
    def sample(self, n: int, seed: int) -> torch.Tensor:
        g, s, h, w = self.canvas(seed, self.supersample)
        mats, shifts, probs = sample_ifs(n, self.max_maps, g)
        p = max(256, int(self.ppp * h * w))
        cum = probs.cumsum(1)[:, :-1, None]  # [n, M-1, 1] thresholds
        coef = torch.cat([mats.reshape(n, -1, 4), shifts], -1)  # [n, M, 6]

        def step(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
            u = torch.rand(n, 1, k, generator=g)
            choice = (u >= cum).sum(1)  # inverse CDF over at most a handful of maps
            c = [torch.gather(coef[..., i], 1, choice) for i in range(6)]
            x0, x1 = x[..., 0], x[..., 1]
            return torch.stack([c[0] * x0 + c[1] * x1 + c[4], c[2] * x0 + c[3] * x1 + c[5]], -1), choice

        # Burn-in a few points onto the attractor, then spread many points from them.
        seeds = torch.zeros(n, 64, 2)
        for _ in range(48):
            seeds, _ = step(seeds, 64)
        x = torch.gather(seeds, 1, torch.randint(0, 64, (n, p, 1), generator=g).expand(-1, -1, 2))
        for _ in range(self.iterations):
            x, choice = step(x, p)
        bidx = torch.arange(n)[:, None]
        # Fit the attractor into the frame (robust bounds, aspect kept, small margin).
        lo, hi = x.amin(1, keepdim=True), x.amax(1, keepdim=True)
        centre, half = (lo + hi) / 2, ((hi - lo).amax(-1, keepdim=True) / 2).clamp_min(1e-6)
        zoom = 0.8 + 0.4 * torch.rand(n, 1, 1, generator=g)
        q = (x - centre) / (half * zoom) * 0.5 + 0.5  # [0, 1] inside
        ix = (q[..., 0] * w).floor().long()
        iy = (q[..., 1] * h).floor().long()
        ok = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
        flat = (bidx * (h * w) + iy.clamp(0, h - 1) * w + ix.clamp(0, w - 1)).reshape(-1)
        counts = torch.zeros(n * h * w).index_add_(0, flat, ok.reshape(-1).float()).view(n, h * w)
        # Colour: per-map colours, pixel colour = mean colour of the maps its points used last.
        map_col = torch.rand(n, self.max_maps, self.channels, generator=g)
        pt_col = torch.gather(map_col, 1, choice[..., None].expand(-1, -1, self.channels))
        col = torch.zeros(n * h * w, self.channels).index_add_(
            0, flat, pt_col.reshape(-1, self.channels) * ok.reshape(-1, 1).float())
        col = col.view(n, h * w, self.channels) / counts[..., None].clamp_min(1.0)
        dens = torch.log1p(counts)
        dens = (dens / torch.quantile(dens, 0.9, dim=1, keepdim=True).clamp_min(1e-6)).clamp(0, 1)
        bg = torch.rand(n, 1, self.channels, generator=g)
        img = bg * (1 - dens[..., None]) + col * dens[..., None]
        img = img.view(n, h, w, self.channels).permute(0, 3, 1, 2)
        if s > 1:
            img = F.avg_pool2d(img, s)
        return img.clamp(0, 1).contiguous()
