"""A plain VGG-style CNN: three stages of 3×3 conv–BN–ReLU, max-pool between stages."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from models.nets.base import DeployNet


def plain_cnn(*, num_classes: int, in_channels: int, image_size: tuple[int, int],
              input_norm: nn.Module, norm: Callable[[int], nn.Module], width: int = 16,
              depth: int = 2) -> DeployNet:
    """Stages of widths ``(w, 2w, 4w)``, ``depth`` convs each, global average pool, linear head.

    ``width=16, depth=2`` is a 6-conv, ~73k-parameter network.
    """
    layers: list[nn.Module] = []
    c_in = in_channels
    for stage, c_out in enumerate((width, 2 * width, 4 * width)):
        for _ in range(depth):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), norm(c_out),
                       nn.ReLU(inplace=True)]
            c_in = c_out
        if stage < 2:
            layers.append(nn.MaxPool2d(2))
    features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return DeployNet(input_norm, features, nn.Linear(c_in, num_classes),
                     (in_channels, *image_size), num_classes)
