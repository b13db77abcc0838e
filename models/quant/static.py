"""Static (calibrated) post-training quantization: the deployment most networks actually get.

Unlike dynamic PTQ, every activation range is fixed ahead of time: :func:`calibrate` records
the min/max of each quantizable layer's input over calibration images (per tensor), and
:class:`StaticQuantizer` then quantizes every input with those ranges (asymmetric, values
outside the range clipped), optionally with static symmetric per-channel weights. Used to ask
whether a network trained to fail under *dynamic* PTQ also fails under ordinary static PTQ.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from models.quant.fake import (
    FP_BITS,
    check_bits,
    check_zero_point,
    fake_quant_weight,
    quantize_grid,
)


@torch.no_grad()
def calibrate(net: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """``[n_layers, 2]``: min and max of each quantizable layer's input over ``images``."""
    layers = net.quantizable_layers()
    lo = torch.full((len(layers),), float("inf"))
    hi = torch.full((len(layers),), float("-inf"))

    def record(j: int):
        def hook(_m: nn.Module, args: tuple) -> None:
            lo[j] = min(lo[j], float(args[0].min()))
            hi[j] = max(hi[j], float(args[0].max()))
        return hook

    handles = [m.register_forward_pre_hook(record(j)) for j, (_, m) in enumerate(layers)]
    was = net.training
    net.eval()
    dev = next(net.parameters()).device
    try:
        for s in range(0, len(images), batch_size):
            net(images[s:s + batch_size].to(dev))
    finally:
        net.train(was)
        for h in handles:
            h.remove()
    return torch.stack((lo, hi), dim=1)


def _quant_fixed(x: torch.Tensor, bits: int, lo: float, hi: float,
                 zero_point: str = "integer") -> torch.Tensor:
    """``x`` on the ``bits`` grid of the fixed range ``[lo, hi]`` under ``zero_point``."""
    if zero_point != "integer":
        t = x.new_tensor
        return quantize_grid(x, t(2.0 ** bits - 1), t(lo), t(hi), None, zero_point)
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    levels = 2 ** bits - 1
    scale = (hi - lo) / levels if hi > lo else 1.0
    zero_point = min(max(round(-lo / scale), 0), levels)
    q = torch.clamp(torch.round(x / scale) + zero_point, 0, levels)
    return (q - zero_point) * scale


class StaticQuantizer:
    """``net`` with every quantizable layer's input quantized at ``act_bits`` with the fixed
    ``ranges`` from :func:`calibrate`, and weights at ``weight_bits`` (``None``: float)."""

    def __init__(self, net: nn.Module, ranges: torch.Tensor, act_bits: int,
                 weight_bits: int | None = None, zero_point: str = "integer") -> None:
        check_bits(int(act_bits))
        self.zero_point = check_zero_point(zero_point)
        if weight_bits is not None:
            check_bits(int(weight_bits))
        self.net, self.ranges = net, ranges
        self.act_bits, self.weight_bits = int(act_bits), weight_bits
        self.layers = net.quantizable_layers()
        if len(ranges) != len(self.layers):
            raise ValueError(f"ranges cover {len(ranges)} layers, the network has "
                             f"{len(self.layers)}")

    def _hook(self, j: int):
        lo, hi = float(self.ranges[j, 0]), float(self.ranges[j, 1])

        def hook(_m: nn.Module, args: tuple) -> tuple:
            return (_quant_fixed(args[0], self.act_bits, lo, hi, self.zero_point), *args[1:])
        return hook

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        handles = ([m.register_forward_pre_hook(self._hook(j))
                    for j, (_, m) in enumerate(self.layers)] if self.act_bits < FP_BITS else [])
        try:
            if self.weight_bits is None:
                return self.net(x)
            params = {f"{n}.weight": fake_quant_weight(m.weight, int(self.weight_bits))
                      for n, m in self.layers}
            return functional_call(self.net, params, (x,))
        finally:
            for h in handles:
                h.remove()


@torch.no_grad()
def static_accuracy(net: nn.Module, calib: torch.Tensor, images: torch.Tensor,
                    labels: torch.Tensor, act_bits: int, weight_bits: int | None = None,
                    batch_size: int = 1000, zero_point: str = "integer") -> float:
    """Accuracy (points) of ``net`` under static PTQ calibrated on ``calib``."""
    was = net.training
    net.eval()
    try:
        q = StaticQuantizer(net, calibrate(net, calib), act_bits, weight_bits, zero_point)
        dev = next(net.parameters()).device
        ok = 0
        for s in range(0, len(labels), batch_size):
            pred = q(images[s:s + batch_size].to(dev)).argmax(1).cpu()
            ok += int((pred == labels[s:s + batch_size]).sum())
    finally:
        net.train(was)
    return 100.0 * ok / len(labels)
