"""The base class shared by every network of the suite."""

from __future__ import annotations

import torch
from torch import nn

QUANTIZABLE_TYPES = (nn.Conv2d, nn.Linear)


class DeployNet(nn.Module):
    """A classifier ``input_norm → features → head`` that knows its quantizable layers.

    Attributes:
        input_shape: ``(C, H, W)`` the network was built for.
        num_classes: number of output logits.
    """

    def __init__(self, input_norm: nn.Module, features: nn.Module, head: nn.Module,
                 input_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        self.input_norm = input_norm
        self.features = features
        self.head = head
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self._quant_names: list[str] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.input_norm(x)))

    def quantizable_layers(self) -> list[tuple[str, nn.Module]]:
        """``(name, module)`` of every Conv2d/Linear whose *input* activation can be quantized,
        in the order the forward pass runs them (found once by tracing a dummy input)."""
        if self._quant_names is None:
            order: list[str] = []
            names = {m: n for n, m in self.named_modules()}
            hooks = [m.register_forward_pre_hook(lambda mod, _inp: order.append(names[mod]))
                     for m in self.modules() if isinstance(m, QUANTIZABLE_TYPES)]
            was_training = self.training
            try:
                self.eval()
                p = next(self.parameters())
                with torch.no_grad():
                    self(torch.zeros(1, *self.input_shape, device=p.device, dtype=p.dtype))
            finally:
                self.train(was_training)
                for h in hooks:
                    h.remove()
            self._quant_names = list(dict.fromkeys(order))
        modules = dict(self.named_modules())
        return [(n, modules[n]) for n in self._quant_names]

    def segments(self) -> list[tuple[str, nn.Module]]:
        """``(name, module)`` pieces whose chained application is :meth:`forward`: the input
        normalisation, each child of ``features`` (a block of a ResNet, a layer of the CNN)
        and the head. A forward can stop between two of them and continue later from the
        activation it kept (:meth:`models.quant.DynamicQuantizer.resume`)."""
        feats = (list(self.features.named_children())
                 if isinstance(self.features, nn.Sequential) else [("", self.features)])
        return [("input_norm", self.input_norm),
                *((f"features.{n}" if n else "features", m) for n, m in feats),
                ("head", self.head)]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
