"""The network side of pair learning: a range-differentiable quantized forward and the losses.

The training-time quantizer is :class:`models.quant.RangeAwareQuantizer` (same forward
values as deployment, gradients to each example's activation range, step-to-signal ratios ρ).

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
  quantizes below the largest bit choice, weighted by how coarse they are within the env's
  bit range (:func:`coarseness`) — a few outlier activations per
  example blow the step up at low bits while FP barely notices; robust lowers ``log ρ``
  (tight ranges, small steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from distill.kd import kd_kl

_EPS = 1e-6


@dataclass
class LossWeights:
    """Weights of :func:`pair_loss` (documented in the module docstring)."""

    fp_weight: float = 3.0
    temperature: float = 4.0
    q_weight: float = 1.0
    margin: float = 2.0
    range_weight: float = 1.0
    rho_cap: float = 4.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"--{f.name.replace('_', '-')} must be a finite number, "
                                 f"got {v!r}")


def margin_hinge(logits: torch.Tensor, y: torch.Tensor, margin: float) -> torch.Tensor:
    """``relu(z_y − max_{k≠y} z_k + margin)`` per example (0 once wrong by ``margin``)."""
    true = logits.gather(1, y[:, None])[:, 0]
    other = logits.scatter(1, y[:, None], float("-inf")).amax(dim=1)
    return F.relu(true - other + margin)


def coarseness(plan: torch.Tensor, bit_range: tuple[int, int]) -> torch.Tensor:
    """``[B, L]`` in [0, 1]: 1 at the fewest bits of ``bit_range = (lo, hi)``, 0 at ``hi``
    and above (full precision included)."""
    lo, hi = bit_range
    return (hi - plan.clamp(max=hi)).float() / max(hi - lo, 1)


def pair_loss(mode: str, fp_logits: torch.Tensor, q_logits: torch.Tensor, rho: torch.Tensor,
              plan: torch.Tensor, teacher: torch.Tensor, y: torch.Tensor, w: LossWeights,
              q_scale: float = 1.0, bit_range: tuple[int, int] = (2, 8)
              ) -> tuple[torch.Tensor, dict[str, float]]:
    """The network loss of one batch for ``mode`` ``'detrimental'`` or ``'robust'``.

    ``q_scale`` ∈ [0, 1] ramps the quantized-path and range terms in (warm-up);
    ``bit_range`` is the smallest and largest bit choice of the env (the range term weighs a
    layer by :func:`coarseness`). Returns the loss and its terms (floats, for logging).
    """
    l_fp = kd_kl(fp_logits, teacher, w.temperature) + F.cross_entropy(fp_logits, y)
    coarse = coarseness(plan, bit_range).to(rho.dtype)
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
