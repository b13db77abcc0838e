"""CIFAR-style ResNets: a 3×3 stem, no max-pool, basic blocks.

* ResNet-8/20/56 (He et al. 2016, sec. 4.2): three stages of widths ``(w, 2w, 4w)``, ``w = 16``,
  ``n = (depth − 2) / 6`` blocks per stage.
* ResNet-18/34: four stages of widths ``(w, 2w, 4w, 8w)``, ``w = 64``, blocks (2,2,2,2)/(3,4,6,3).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models.nets.base import DeployNet


class StridedPointwise(nn.Conv2d):
    """A 1×1 convolution with stride ``s``, computed as ``x[..., ::s, ::s]`` followed by a
    stride-1 1×1 convolution: the same parameters, state-dict keys and arithmetic.

    PyTorch 2.14's oneDNN weight gradient of a strided 1×1 convolution corrupts the heap on one
    intra-op thread with channels-last inputs and few input channels (e.g. 4 → 8 channels at
    8×8), so narrow ResNets crashed the process while training under ``OMP_NUM_THREADS=1``.
    """

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sh, sw = self.stride
        return F.conv2d(x[..., ::sh, ::sw], self.weight, self.bias)


class BasicBlock(nn.Module):
    """Two 3×3 conv–BN layers with an identity or 1×1-conv (projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: Callable[[int], nn.Module]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = norm(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(StridedPointwise(c_in, c_out, stride),
                                          norm(c_out))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


def resnet(*, blocks: Sequence[int], widths: Sequence[int], num_classes: int, in_channels: int,
           image_size: tuple[int, int], input_norm: nn.Module,
           norm: Callable[[int], nn.Module]) -> DeployNet:
    """A ResNet with ``blocks[i]`` basic blocks at width ``widths[i]``; stage i > 0 strides 2."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
                               norm(widths[0]), nn.ReLU(inplace=True)]
    c_in = widths[0]
    for stage, (n, c_out) in enumerate(zip(blocks, widths, strict=True)):
        for i in range(n):
            layers.append(BasicBlock(c_in, c_out, 2 if (i == 0 and stage > 0) else 1, norm))
            c_in = c_out
    features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return DeployNet(input_norm, features, nn.Linear(c_in, num_classes),
                     (in_channels, *image_size), num_classes)


def cifar_resnet(depth: int, width: int = 16, **kw) -> DeployNet:
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
    n = (depth - 2) // 6
    return resnet(blocks=(n, n, n), widths=(width, 2 * width, 4 * width), **kw)


def imagenet_style_resnet(blocks: Sequence[int], width: int = 64, **kw) -> DeployNet:
    return resnet(blocks=blocks, widths=tuple(width * 2**i for i in range(4)), **kw)
