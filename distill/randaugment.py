"""Batched RandAugment on float tensors: every image draws its own ``N`` ops and signs.

The op set and magnitude ranges follow torchvision's ``RandAugment`` (31 magnitude bins, so
``M = 14`` means 14/30 of each op's maximum): shear 0.3, translate 150/331 of the side,
rotate 30°, brightness/colour/contrast/sharpness ±0.9, posterize down to 4 bits, solarize
threshold 1 → 0, autocontrast, equalize, identity. Images are ``[B, C, H, W]`` in ``[0, 1]``;
all randomness comes from an explicit ``torch.Generator``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from distill.sources.base import single_threaded

OPS = ("identity", "shear_x", "shear_y", "translate_x", "translate_y", "rotate", "brightness",
       "color", "contrast", "sharpness", "posterize", "solarize", "autocontrast", "equalize")
GEOMETRIC = {"shear_x", "shear_y", "translate_x", "translate_y", "rotate"}


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """Luminance ``[B, 1, H, W]``."""
    if x.shape[1] == 1:
        return x
    w = torch.tensor((0.299, 0.587, 0.114), dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def blend(x: torch.Tensor, degenerate: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``factor·x + (1 − factor)·degenerate`` per image, clamped (PIL ``ImageEnhance``)."""
    f = factor.view(-1, 1, 1, 1)
    return (f * x + (1 - f) * degenerate).clamp_(0.0, 1.0)


def affine(x: torch.Tensor, theta: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Warp by per-image ``[B, 2, 3]`` matrices (output → input, normalised coordinates),
    zero fill."""
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)


def _geometric(op: str, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    b = x.shape[0]
    theta = torch.zeros(b, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    if op == "shear_x":
        theta[:, 0, 1] = v
    elif op == "shear_y":
        theta[:, 1, 0] = v
    elif op == "translate_x":
        theta[:, 0, 2] = 2.0 * v  # v is a fraction of the width
    elif op == "translate_y":
        theta[:, 1, 2] = 2.0 * v
    else:  # rotate, v in radians
        c, s = torch.cos(v), torch.sin(v)
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = c, -s, s, c
    return affine(x, theta)


def sharpen_degenerate(x: torch.Tensor) -> torch.Tensor:
    """PIL's SMOOTH filter (centre weight 5) inside, original pixels on the border."""
    c = x.shape[1]
    k = torch.ones(3, 3, dtype=x.dtype, device=x.device)
    k[1, 1] = 5.0
    k = (k / k.sum()).expand(c, 1, 3, 3)
    out = x.clone()
    if x.shape[-1] > 2 and x.shape[-2] > 2:
        out[..., 1:-1, 1:-1] = F.conv2d(x, k, groups=c)
    return out


def apply_op(op: str, x: torch.Tensor, mag: float, sign: torch.Tensor) -> torch.Tensor:
    """One op on a sub-batch at magnitude fraction ``mag`` in [0, 1] with per-image ``sign``."""
    if op == "identity":
        return x
    if op in ("shear_x", "shear_y"):
        return _geometric(op, x, sign * 0.3 * mag)
    if op in ("translate_x", "translate_y"):
        return _geometric(op, x, sign * (150.0 / 331.0) * mag)
    if op == "rotate":
        return _geometric(op, x, sign * math.radians(30.0) * mag)
    factor = 1.0 + sign * 0.9 * mag
    if op == "brightness":
        return blend(x, torch.zeros_like(x), factor)
    if op == "color":
        return blend(x, grayscale(x).expand_as(x), factor)
    if op == "contrast":
        return blend(x, grayscale(x).mean(dim=(1, 2, 3), keepdim=True).expand_as(x), factor)
    if op == "sharpness":
        return blend(x, sharpen_degenerate(x), factor)
    if op == "posterize":
        bits = 8 - int(round(4 * mag))
        q = float(2 ** (8 - bits))
        return torch.floor(torch.floor(x * 255.0) / q) * q / 255.0
    if op == "solarize":
        thr = 1.0 - mag
        return torch.where(x >= thr, 1.0 - x, x)
    if op == "autocontrast":
        lo = x.amin(dim=(2, 3), keepdim=True)
        hi = x.amax(dim=(2, 3), keepdim=True)
        span = hi - lo
        return torch.where(span > 0, (x - lo) / span.clamp_min(1e-8), x)
    if op == "equalize":
        return TF.equalize(x)
    raise KeyError(f"unknown op {op!r}; valid: {', '.join(OPS)}")


@single_threaded
def rand_augment(x: torch.Tensor, gen: torch.Generator, num_ops: int = 2, magnitude: int = 9,
                 num_bins: int = 31, ops: tuple[str, ...] = OPS) -> torch.Tensor:
    """RandAugment on a batch: ``num_ops`` rounds, each image picks an op uniformly from
    ``ops`` and a random sign; magnitude ``magnitude / (num_bins − 1)`` of each op's range."""
    if not 0 <= magnitude < num_bins:
        raise ValueError(f"magnitude must be in [0, {num_bins - 1}], got {magnitude}")
    mag = magnitude / (num_bins - 1)
    b = x.shape[0]
    x = x.clone()
    for _ in range(num_ops):
        choice = torch.randint(0, len(ops), (b,), generator=gen)
        sign = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
        for k in torch.unique(choice).tolist():
            idx = torch.nonzero(choice == k).flatten().to(x.device)
            x[idx] = apply_op(ops[k], x[idx], mag, sign[idx.cpu()].to(x.device, x.dtype))
    return x
