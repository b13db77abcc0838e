"""The training-time twin of :class:`~models.quant.DynamicQuantizer`: same forward values,
gradients that reach each example's activation range.

:class:`~models.quant.DynamicQuantizer` measures each example's range on a *detached* tensor
and passes gradients straight through (STE). That is right for deployment-style QAT, but it
hides what separates dynamic PTQ from full precision: the step ``s = range / (2^b − 1)`` is
set by the example's own extreme activations. :class:`RangeAwareQuantizer` computes the same
forward values (same affine arithmetic, zero point and rounding, per tensor or per channel,
with the same static symmetric per-channel weight quantization; a test checks equality on a
whole network at every bit-width) but keeps ``s`` differentiable (LSQ-style:
``∂x̂/∂s = round(x/s) − x/s``), so a loss on the quantized logits can move activation
ranges. It also returns each layer's differentiable *step-to-signal ratio*
``ρ = s / mean |x|`` (quantization noise relative to the signal).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from models.quant.fake import FP_BITS, check_zero_point, fake_quant_weight, quant_options

_EPS = 1e-6


def _round_ste(v: torch.Tensor) -> torch.Tensor:
    return v + (torch.round(v) - v).detach()


def typical_magnitude(x: torch.Tensor) -> torch.Tensor:
    """``[B]``: the mean ``|x|`` of each example (never 0 for a live layer; a constant
    outlier channel raises it by at most its share of the elements)."""
    return x.abs().reshape(x.shape[0], -1).mean(dim=1)


def _grid(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, levels: torch.Tensor,
          zero_point: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x̂, step)`` of convention ``zero_point`` with gradients to ``lo``/``hi`` through the
    step (LSQ-style rounding); the same forward values as
    :func:`models.quant.fake.quantize_grid`."""
    if zero_point == "float":
        step = (hi - lo) / levels
        safe = torch.where(step > 0, step, torch.ones_like(step))
        q = torch.minimum(torch.clamp(_round_ste((x - lo) / safe), min=0), levels)
        return torch.lerp(lo.expand_as(x), hi.expand_as(x), q / levels), step
    if zero_point == "symmetric":
        m = (levels - 1) / 2
        step = torch.maximum(-lo, hi) / m
        safe = torch.where(step > 0, step, torch.ones_like(step))
        return torch.minimum(torch.maximum(_round_ste(x / safe), -m), m) * safe, step
    lo, hi = lo.clamp(max=0), hi.clamp(min=0)
    step = (hi - lo) / levels
    safe = torch.where(step > 0, step, torch.ones_like(step))
    zp = _round_ste(-lo / safe).clamp(min=0).minimum(levels)
    q = torch.minimum(torch.clamp(_round_ste(x / safe) + zp, min=0), levels)
    return (q - zp) * safe, step


def range_aware_fake_quant(x: torch.Tensor, bits: torch.Tensor, per_channel: bool = False,
                           zero_point: str = "integer") -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example fake quantization of ``x`` ``[B, ...]`` at ``bits`` ``[B]`` with gradients
    to the range; rows with ``bits == FP_BITS`` pass unchanged.

    ``per_channel``: one range per (example, channel) for inputs with spatial extent, as
    :func:`models.quant.fake.activation_range`; ``zero_point``: the grid convention
    (:data:`models.quant.fake.ZERO_POINTS`). Returns ``(x̂, ρ)`` with ``ρ`` the mean step
    over a row's ranges divided by the row's :func:`typical_magnitude` (0 for FP rows).
    """
    check_zero_point(zero_point)
    b = x.shape[0]
    if per_channel and x.ndim > 2:
        flat = x.flatten(2)
        shape = (b, x.shape[1]) + (1,) * (x.ndim - 2)
        lo, hi = flat.amin(dim=2), flat.amax(dim=2)
    else:
        flat = x.reshape(b, -1)
        shape = (b,) + (1,) * (x.ndim - 1)
        lo, hi = flat.amin(dim=1), flat.amax(dim=1)
    row = (b,) + (1,) * (x.ndim - 1)
    levels = torch.exp2(bits.clamp(max=16).to(x.dtype)).sub(1).reshape(row)
    xq, scale = _grid(x, lo.reshape(shape), hi.reshape(shape), levels, zero_point)
    fp = (bits >= FP_BITS).reshape(row)
    xq = torch.where(fp, x, xq)
    typical = typical_magnitude(x)
    step = scale.reshape(b, -1).mean(dim=1)
    rho = torch.where(fp.reshape(b), torch.zeros_like(typical), step / (typical + _EPS))
    return xq, rho


class RangeAwareQuantizer:
    """Forward ``net`` with each quantizable layer's input quantized by
    :func:`range_aware_fake_quant` at ``plan[:, j]``; hooks are active only inside
    :meth:`__call__`.

    Args:
        per_channel: activation ranges per (example, channel), as the deployment quantizer.
        weight_bits: static symmetric per-channel weights (straight-through gradients) for
            every row whose plan quantizes something; all-FP rows run the float network.
        zero_point: the activation grid convention (:data:`models.quant.fake.ZERO_POINTS`),
            the same as the deployment quantizer's.
    """

    def __init__(self, net: nn.Module, *, per_channel: bool = False,
                 weight_bits: int | None = None, zero_point: str = "integer") -> None:
        self.net = net
        self.per_channel, self.weight_bits, self.zero_point = quant_options(
            per_channel, weight_bits, zero_point)
        self.layers = net.quantizable_layers()
        self._plan: torch.Tensor | None = None
        self._rho: list[torch.Tensor] = []
        self._handles = [m.register_forward_pre_hook(self._hook(j))
                         for j, (_, m) in enumerate(self.layers)]

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def _hook(self, j: int):
        def hook(_m: nn.Module, args: tuple) -> tuple | None:
            if self._plan is None:
                return None
            xq, rho = range_aware_fake_quant(args[0], self._plan[:, j], self.per_channel,
                                             self.zero_point)
            self._rho.append(rho)
            return (xq, *args[1:])
        return hook

    def _forward(self, x: torch.Tensor, plan: torch.Tensor, quant_weights: bool
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        self._plan, self._rho = plan, []
        try:
            if quant_weights:
                params = {f"{n}.weight": fake_quant_weight(m.weight, int(self.weight_bits))
                          for n, m in self.layers}
                logits = functional_call(self.net, params, (x,))
            else:
                logits = self.net(x)
        finally:
            self._plan = None
        return logits, torch.stack(self._rho, dim=1)

    def __call__(self, x: torch.Tensor, plan: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantized logits ``[B, classes]`` and step-to-signal ratios ``ρ`` ``[B, layers]``."""
        if plan.shape != (x.shape[0], self.n_layers):
            raise ValueError(f"plan must be [{x.shape[0]}, {self.n_layers}], got {tuple(plan.shape)}")
        plan = plan.to(x.device)
        if self.weight_bits is None:
            return self._forward(x, plan, False)
        fp_rows = (plan >= FP_BITS).all(dim=1)
        if not fp_rows.any():
            return self._forward(x, plan, True)
        if fp_rows.all():
            return self._forward(x, plan, False)
        (la, ra), (lb, rb) = (self._forward(x[r], plan[r], q)
                              for r, q in ((fp_rows, False), (~fp_rows, True)))
        logits, rho = la.new_empty((len(x), *la.shape[1:])), ra.new_empty((len(x), ra.shape[1]))
        logits[fp_rows], logits[~fp_rows], rho[fp_rows], rho[~fp_rows] = la, lb, ra, rb
        return logits, rho

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
