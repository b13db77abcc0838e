"""The network side of pair learning: a range-differentiable quantized forward and the losses.

**Why a second quantized forward.** :class:`models.quant.DynamicQuantizer` measures each
example's activation range on a *detached* tensor and passes gradients straight through
(STE). That is right for deployment-style QAT, but it hides the one thing that separates
dynamic PTQ from full precision: the quantization step ``s = range / (2^b − 1)`` is set by
the example's own extreme activations. :class:`RangeAwareQuantizer` computes *the same
forward values* (same affine arithmetic, zero point, rounding; a test checks equality) but
keeps ``s`` differentiable (LSQ-style: ``∂x̂/∂s = round(x/s) − x/s``), so a loss on the
quantized logits can move activation ranges. It also returns each layer's differentiable
*step-to-signal ratio* ``ρ = s / typical |x|`` (quantization noise relative to the signal).

**Losses** (:func:`pair_loss`), on a batch with teacher logits and the bit plans the
current policy picks for these inputs:

* FP path: ``T²·KL(teacher ‖ student)`` at temperature ``T`` plus CE on the labels — keeps
  FP accuracy (weight ``fp_weight``, strong).
* quantized path, detrimental: a *margin hinge* ``relu(z_y − max_{k≠y} z_k + margin)`` on
  the quantized logits, only for examples the FP path gets right — it stops pushing once the
  true class is ``margin`` below the best other class, instead of an unbounded CE towards a
  wrong label that also drags the shared FP features down (the naive objective's collapse).
* quantized path, robust: ``T²·KL(teacher ‖ quantized)`` + CE.
* range term: detrimental raises ``log ρ`` (capped at ``log rho_cap``) of the layers the plan
  quantizes below 8 bits, weighted by how coarse they are — a few outlier activations per
  example blow the step up at low bits while FP barely notices; robust lowers ``log ρ``
  (tight ranges, small steps).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from distill.kd import kd_kl
from models.quant import FP_BITS

_EPS = 1e-6


def _round_ste(v: torch.Tensor) -> torch.Tensor:
    return v + (torch.round(v) - v).detach()


def typical_magnitude(x: torch.Tensor) -> torch.Tensor:
    """``[B]``: the mean ``|x|`` of each example (never 0 for a live layer; a constant
    outlier channel raises it by at most its share of the elements)."""
    return x.abs().reshape(x.shape[0], -1).mean(dim=1)


def range_aware_fake_quant(x: torch.Tensor, bits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example asymmetric fake quantization of ``x`` ``[B, ...]`` at ``bits`` ``[B]`` with
    gradients to the range; rows with ``bits == FP_BITS`` pass unchanged.

    Returns ``(x̂, ρ)`` with ``ρ = step / typical |x|`` per row (:func:`typical_magnitude`) (0 for FP rows).
    """
    b = x.shape[0]
    flat = x.reshape(b, -1)
    shape = (b,) + (1,) * (x.ndim - 1)
    lo = flat.amin(dim=1).clamp(max=0).reshape(shape)
    hi = flat.amax(dim=1).clamp(min=0).reshape(shape)
    levels = torch.exp2(bits.clamp(max=16).to(x.dtype)).sub(1).reshape(shape)
    scale = (hi - lo) / levels
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    zero_point = _round_ste(-lo / safe).clamp(min=0).minimum(levels)
    q = torch.minimum(torch.clamp(_round_ste(x / safe) + zero_point, min=0), levels)
    xq = (q - zero_point) * safe
    fp = (bits >= FP_BITS).reshape(shape)
    xq = torch.where(fp, x, xq)
    typical = typical_magnitude(x)
    rho = torch.where(fp.reshape(b), torch.zeros_like(typical),
                      scale.reshape(b) / (typical + _EPS))
    return xq, rho


class RangeAwareQuantizer:
    """Forward ``net`` with each quantizable layer's input quantized by
    :func:`range_aware_fake_quant` at ``plan[:, j]``. Hooks are active only inside
    :meth:`__call__`.
    """

    def __init__(self, net: nn.Module) -> None:
        self.net = net
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
            xq, rho = range_aware_fake_quant(args[0], self._plan[:, j])
            self._rho.append(rho)
            return (xq, *args[1:])
        return hook

    def __call__(self, x: torch.Tensor, plan: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantized logits ``[B, classes]`` and step-to-spread ratios ``ρ`` ``[B, layers]``."""
        if plan.shape != (x.shape[0], self.n_layers):
            raise ValueError(f"plan must be [{x.shape[0]}, {self.n_layers}], got {tuple(plan.shape)}")
        self._plan, self._rho = plan.to(x.device), []
        try:
            logits = self.net(x)
        finally:
            self._plan = None
        return logits, torch.stack(self._rho, dim=1)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


@dataclass
class LossWeights:
    """Weights of :func:`pair_loss` (documented in the module docstring)."""

    fp_weight: float = 3.0
    temperature: float = 4.0
    q_weight: float = 1.0
    margin: float = 2.0
    range_weight: float = 1.0
    rho_cap: float = 4.0


def margin_hinge(logits: torch.Tensor, y: torch.Tensor, margin: float) -> torch.Tensor:
    """``relu(z_y − max_{k≠y} z_k + margin)`` per example (0 once wrong by ``margin``)."""
    true = logits.gather(1, y[:, None])[:, 0]
    other = logits.scatter(1, y[:, None], float("-inf")).amax(dim=1)
    return F.relu(true - other + margin)


def pair_loss(mode: str, fp_logits: torch.Tensor, q_logits: torch.Tensor, rho: torch.Tensor,
              plan: torch.Tensor, teacher: torch.Tensor, y: torch.Tensor, w: LossWeights,
              q_scale: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """The network loss of one batch for ``mode`` ``'detrimental'`` or ``'robust'``.

    ``q_scale`` ∈ [0, 1] ramps the quantized-path and range terms in (warm-up).
    Returns the loss and its terms (floats, for logging).
    """
    l_fp = kd_kl(fp_logits, teacher, w.temperature) + F.cross_entropy(fp_logits, y)
    coarse = ((8 - plan.clamp(max=8)).to(rho.dtype) / 6.0) * (plan < 8)  # 2 bits → 1, 8 → 0
    log_rho = torch.log(rho + _EPS)
    if mode == "detrimental":
        fp_ok = (fp_logits.detach().argmax(1) == y).to(q_logits.dtype)
        l_q = (margin_hinge(q_logits, y, w.margin) * fp_ok).sum() / fp_ok.sum().clamp(min=1)
        capped = torch.minimum(log_rho, torch.full_like(log_rho, float(torch.log(
            torch.tensor(w.rho_cap)))))
        l_range = -(capped * coarse).sum() / coarse.sum().clamp(min=1)
    elif mode == "robust":
        l_q = kd_kl(q_logits, teacher, w.temperature) + F.cross_entropy(q_logits, y)
        l_range = (log_rho * coarse).sum() / coarse.sum().clamp(min=1)
    else:
        raise ValueError(f"mode must be 'detrimental' or 'robust', got {mode!r}")
    loss = w.fp_weight * l_fp + q_scale * (w.q_weight * l_q + w.range_weight * l_range)
    return loss, {"loss": float(loss.detach()), "l_fp": float(l_fp.detach()), "l_q": float(l_q.detach()),
                  "l_range": float(l_range.detach())}
