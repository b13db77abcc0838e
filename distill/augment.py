"""Batched, seeded augmentation policies for distillation, and mixup.

* ``none``: identity.
* ``standard``: pad-and-crop (4 px at 32, scaled with the side) and horizontal flip.
* ``heavy``: the synthetic-data policy of P2: RandAugment (4 ops, magnitude 14), elastic
  (α = 50, σ = 5, p = 0.5), invert (p = 0.1), pad-and-crop (12 px at 32) and flip.

Every function takes ``[B, C, H, W]`` float images in ``[0, 1]`` and a ``torch.Generator``;
the same generator state gives the same output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from distill.randaugment import rand_augment
from distill.sources.base import single_threaded
from models.datasets import random_crop, random_hflip


def _gauss_kernel(sigma: float, size: int, device, dtype) -> torch.Tensor:
    r = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    k = torch.exp(-0.5 * (r / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding (kernel 8σ+1, capped by the image)."""
    h, w = x.shape[-2:]
    size = int(8 * sigma + 1) | 1
    size = min(size, 2 * (min(h, w) - 1) - 1) | 1
    k = _gauss_kernel(sigma, size, x.device, x.dtype)
    c, p = x.shape[1], size // 2
    x = F.conv2d(F.pad(x, (p, p, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, p, p), mode="reflect"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


@single_threaded
def elastic(x: torch.Tensor, gen: torch.Generator, alpha: float = 50.0, sigma: float = 5.0,
            p: float = 0.5) -> torch.Tensor:
    """Elastic deformation as torchvision's ``ElasticTransform``: uniform noise displacement
    fields blurred with σ and scaled by ``alpha / side`` (normalised units), on a fraction
    ``p`` of the batch."""
    b, _, h, w = x.shape
    sel = torch.nonzero(torch.rand(b, generator=gen) < p).flatten()
    noise = torch.rand(len(sel), 2, h, w, generator=gen) * 2 - 1
    if len(sel) == 0:
        return x
    disp = gaussian_blur(noise.to(x.device, x.dtype), sigma) * torch.tensor(
        [alpha / w, alpha / h], device=x.device, dtype=x.dtype).view(1, 2, 1, 1)
    ys = torch.linspace(-1 + 1 / h, 1 - 1 / h, h, device=x.device, dtype=x.dtype)
    xs = torch.linspace(-1 + 1 / w, 1 - 1 / w, w, device=x.device, dtype=x.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack([gx, gy], -1)[None] + disp.permute(0, 2, 3, 1)
    out = x.clone()
    sel = sel.to(x.device)
    out[sel] = F.grid_sample(x[sel], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out


def invert(x: torch.Tensor, gen: torch.Generator, p: float = 0.1) -> torch.Tensor:
    """``1 − x`` on a random fraction ``p`` of the batch."""
    m = (torch.rand(x.shape[0], generator=gen) < p).to(x.device).view(-1, 1, 1, 1)
    return torch.where(m, 1.0 - x, x)


def mixup(x: torch.Tensor, gen: torch.Generator, alpha: float = 1.0, per_example: bool = True
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mixup: ``lam·x + (1 − lam)·x[perm]`` with ``lam ~ Beta(alpha, alpha)``.

    Returns the mixed batch, the permutation and ``lam`` (shape ``[B]``), so targets can be
    mixed the same way. Each image draws its own ``lam``, as P2's code does; ``per_example=False``
    shares one value across the batch (the original mixup paper's implementation).
    """
    b = x.shape[0]
    rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=gen)))
    lam_np = rng.beta(alpha, alpha, size=b if per_example else 1) if alpha > 0 else np.ones(1)
    lam = torch.as_tensor(np.broadcast_to(lam_np, (b,)).copy(), dtype=x.dtype, device=x.device)
    perm = torch.randperm(b, generator=gen).to(x.device)
    lv = lam.view(-1, 1, 1, 1)
    return lv * x + (1 - lv) * x[perm], perm, lam


def scaled_pad(image_size: tuple[int, int], pad_at_32: int) -> int:
    """A padding quoted for 32×32 images, scaled to this side (at least 1)."""
    return max(1, round(pad_at_32 * max(image_size) / 32))


@dataclass(frozen=True)
class Policy:
    """An augmentation policy: call it on a batch with a generator."""

    name: str
    fn: Callable[[torch.Tensor, torch.Generator], torch.Tensor]

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if x.device.type == "cpu":  # many small ops: one thread is faster on a busy CPU
            return single_threaded(self.fn)(x, gen)
        return self.fn(x, gen)


def standard_policy(image_size: tuple[int, int], pad: int | None = None, flip: bool = True) -> Policy:
    pad = scaled_pad(image_size, 4) if pad is None else pad

    def fn(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        x = random_crop(x, pad, gen)
        return random_hflip(x, gen) if flip else x

    return Policy("standard", fn)


def heavy_policy(image_size: tuple[int, int], num_ops: int = 4, magnitude: int = 14,
                 elastic_p: float = 0.5, alpha: float = 50.0, sigma: float = 5.0,
                 invert_p: float = 0.1, pad: int | None = None, flip: bool = True) -> Policy:
    pad = scaled_pad(image_size, 12) if pad is None else pad

    def fn(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        x = rand_augment(x, gen, num_ops=num_ops, magnitude=magnitude)
        x = elastic(x, gen, alpha=alpha, sigma=sigma, p=elastic_p)
        x = invert(x, gen, p=invert_p)
        x = random_crop(x, pad, gen)
        x = random_hflip(x, gen) if flip else x
        return x.clamp_(0.0, 1.0)

    return Policy("heavy", fn)


POLICIES: dict[str, Callable[..., Policy]] = {
    "none": lambda image_size, **kw: Policy("none", lambda x, gen: x),
    "standard": standard_policy,
    "heavy": heavy_policy,
}


def get_policy(name: str, image_size: tuple[int, int] | int, **kwargs) -> Policy:
    """A policy by name (``none``, ``standard``, ``heavy``); kwargs override its settings."""
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    if name not in POLICIES:
        raise KeyError(f"unknown augmentation policy {name!r}; valid: {', '.join(POLICIES)}")
    return POLICIES[name](image_size, **kwargs)
