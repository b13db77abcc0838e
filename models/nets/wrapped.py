"""Any ``nn.Module`` classifier as a :class:`~models.nets.base.DeployNet`.

>>> import torchvision
>>> m = torchvision.models.resnet18(num_classes=10)
>>> m.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)      # 1-channel stem
>>> net = as_deploy_net(m, input_shape=(1, 28, 28), num_classes=10)
>>> len(net.quantizable_layers())                               # 20 convs + fc
21

The quantizable layers are found by tracing: a forward of one zero input with a forward
pre-hook on every ``Conv2d`` / ``Linear`` records the order in which their inputs arrive (a
layer called twice is one layer, quantized at the same bits both times; arithmetic done with
``torch.nn.functional`` directly is not quantized). The module is kept as it is, in
``net.features``: layer names read ``features.<the module's own name>``, and
``net.features.state_dict()`` is the module's own state dict.

The DynamicPTQ environment applies this wrapper itself when ``net=`` is a plain module,
with the input shape and class count of its data.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from models.nets.base import DeployNet


class WrappedNet(DeployNet):
    """A user's classifier ``module`` (no input normalisation or head of its own added)."""

    def __init__(self, module: nn.Module, input_shape: tuple[int, int, int],
                 num_classes: int) -> None:
        super().__init__(nn.Identity(), module, nn.Identity(), input_shape, num_classes)

    @property
    def module(self) -> nn.Module:
        """The wrapped module itself."""
        return self.features


def _check_shape(input_shape: Sequence[int], num_classes: int) -> tuple[tuple[int, int, int], int]:
    try:
        shape = tuple(int(v) for v in input_shape)
        classes = int(num_classes)
    except (TypeError, ValueError):
        raise TypeError(f"input_shape must be (C, H, W) integers and num_classes an integer, got "
                        f"{input_shape!r} and {num_classes!r}") from None
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W) with positive sizes, got {input_shape!r}")
    if classes < 2:
        raise ValueError(f"num_classes must be ≥ 2, got {num_classes!r}")
    return shape, classes  # type: ignore[return-value]


def as_deploy_net(module: nn.Module, input_shape: Sequence[int], num_classes: int) -> DeployNet:
    """``module`` (a classifier ``[B, C, H, W] → [B, num_classes]`` logits) as a network the
    quantizers and environments accept; a :class:`DeployNet` is returned as it is (after
    checking that it matches ``input_shape`` and ``num_classes``).

    Raises ``TypeError`` for a non-module, ``ValueError`` when the module has no parameters,
    fails on a zero input of ``input_shape``, returns logits of another shape, or runs no
    ``Conv2d`` / ``Linear`` layer (nothing to quantize). The module is put in eval mode.
    """
    shape, classes = _check_shape(input_shape, num_classes)
    if not isinstance(module, nn.Module):
        raise TypeError(f"net must be a torch.nn.Module classifier, got {type(module).__name__}")
    if isinstance(module, DeployNet):
        if tuple(module.input_shape) != shape or module.num_classes != classes:
            raise ValueError(f"the network takes {tuple(module.input_shape)} inputs with "
                             f"{module.num_classes} classes, but the data has {shape} inputs "
                             f"with {classes} classes")
        return module
    what = type(module).__name__
    p = next(module.parameters(), None)
    if p is None:
        raise ValueError(f"{what} has no parameters: nothing to quantize")
    module.eval()
    try:
        with torch.no_grad():
            out = module(torch.zeros(1, *shape, device=p.device, dtype=p.dtype))
    except Exception as e:  # noqa: BLE001 - the user's forward: any failure is one line
        raise ValueError(f"{what} fails on an input of shape [1, {', '.join(map(str, shape))}] "
                         f"(the data's image shape): {type(e).__name__}: {e}") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{what} must return logits [batch, {classes}] (the data has {classes} "
                         f"classes), got {got}")
    net = WrappedNet(module, shape, classes).eval()
    if not net.quantizable_layers():
        raise ValueError(f"{what} runs no Conv2d or Linear layer in its forward: nothing to "
                         f"quantize")
    return net


__all__ = ["WrappedNet", "as_deploy_net"]
