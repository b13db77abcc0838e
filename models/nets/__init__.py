"""Network builders selected by name, torchvision-style.

>>> net = build_model("resnet20", num_classes=10, in_channels=1, image_size=(28, 28),
...                   bn="revisited", input_norm="bn")
>>> [name for name, _ in net.quantizable_layers()][:2]
['features.0', 'features.3.conv1']

Any other classifier module becomes one with :func:`as_deploy_net` (layers found by tracing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from models.bn import make_input_norm, make_norm
from models.nets.base import QUANTIZABLE_TYPES, DeployNet
from models.nets.cnn import plain_cnn
from models.nets.resnet import cifar_resnet, imagenet_style_resnet
from models.nets.wrapped import WrappedNet, as_deploy_net

# name -> (builder, default width)
_BUILDERS: dict[str, tuple[Callable[..., DeployNet], int]] = {
    "cnn": (plain_cnn, 16),
    "resnet8": (partial(cifar_resnet, 8), 16),
    "resnet20": (partial(cifar_resnet, 20), 16),
    "resnet56": (partial(cifar_resnet, 56), 16),
    "resnet18": (partial(imagenet_style_resnet, (2, 2, 2, 2)), 64),
    "resnet34": (partial(imagenet_style_resnet, (3, 4, 6, 3)), 64),
}
MODELS = tuple(_BUILDERS)


def build_model(name: str, *, num_classes: int, in_channels: int, image_size: Sequence[int],
                width: int | None = None, bn: str = "standard", input_norm: str = "dataset",
                mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                gamma_init: float = 0.1, **kwargs) -> DeployNet:
    """Build the network ``name`` (one of :data:`MODELS`).

    Args:
        width: base channel width (default per architecture: 16 for ``cnn``/ResNet-8/20/56,
            64 for ResNet-18/34).
        bn: ``'standard'`` or ``'revisited'`` batch norm (:mod:`models.bn`).
        input_norm: ``'dataset'`` (fixed ``mean``/``std``) or ``'bn'`` (online input BN).
        gamma_init: ``c_γ`` of revisited BN and of the input BN.
        kwargs: architecture-specific options (``depth`` for ``cnn``).
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose one of {MODELS}")
    builder, default_width = _BUILDERS[name]
    width = default_width if width is None else int(width)
    if width < 1:
        raise ValueError(f"width must be positive, got {width}")
    return builder(width=width, num_classes=num_classes, in_channels=in_channels,
                   image_size=tuple(image_size),
                   input_norm=make_input_norm(input_norm, in_channels, mean, std, gamma_init),
                   norm=make_norm(bn, gamma_init), **kwargs)


__all__ = ["MODELS", "QUANTIZABLE_TYPES", "DeployNet", "WrappedNet", "as_deploy_net",
           "build_model"]
