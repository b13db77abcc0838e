"""How one input's prediction reacts to a set of probe plans: the ``probe`` and ``query``
observations of DynamicPTQ.

For an input ``x`` with FP probabilities ``p`` and predicted class ``c = argmax p``, each
probe plan ``j`` runs the network once, giving ``q_j``; the features of plan ``j`` are
``log(1 + KL(p‖q_j))``, ``p_c − q_j[c]`` (confidence lost on the FP prediction) and
``1[argmax q_j ≠ c]``. They use no label. Plans sharing leading bit-widths share that part
of the forward (:func:`models.quant.plans.plan_logits`).

* ``probe`` (:func:`layer_plans`): ``L`` plans, plan ``l`` quantizes layer ``l`` alone at the
  lowest bit choice (every other layer in FP) — how sensitive this input is, layer by layer.
* ``query`` (:func:`envs.ptq.oracle.candidate_plans`): ``K`` whole plans that meet the
  detrimental budget, drawn from the budget alone (seeded) — whether this input breaks under
  each of them.

:class:`ProbeCache` keeps the features of every example of a split for one plan set, filled
lazily in fixed chunks like the FP cache (values never depend on the order examples were
asked for) and dropped when the network's parameters change in place.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from envs.ptq.observations.chunks import ChunkCache
from models.datasets import Split
from models.quant import FP_BITS, DynamicQuantizer
from models.quant.plans import plan_logits

N_FEATURES = 3


def layer_plans(n_layers: int, bits: int) -> np.ndarray:
    """``[L, L]``: plan ``l`` has layer ``l`` at ``bits`` and the others in FP."""
    plans = np.full((n_layers, n_layers), FP_BITS, dtype=np.int64)
    np.fill_diagonal(plans, int(bits))
    return plans


@torch.no_grad()
def probe_features(qnet: DynamicQuantizer, x: torch.Tensor, fp_logits: torch.Tensor,
                   plans: np.ndarray) -> torch.Tensor:
    """``[B, K, 3]`` features of inputs ``x`` under each of ``plans`` ``[K, L]`` (module
    docstring); ``fp_logits`` are the FP logits of ``x``."""
    k = len(plans)
    lq = torch.log_softmax(plan_logits(qnet, x, plans).double(), -1).transpose(0, 1)  # [B, K, C]
    lp = torch.log_softmax(fp_logits.double(), 1).unsqueeze(1)              # [B, 1, C]
    kl = (lp.exp() * (lp - lq)).sum(-1).clamp_min(0.0)
    c = lp.argmax(-1).expand(-1, k).unsqueeze(-1)                           # [B, K, 1]
    lost = lp.exp().expand_as(lq).gather(-1, c).squeeze(-1) - lq.exp().gather(-1, c).squeeze(-1)
    flipped = (lq.argmax(-1) != c.squeeze(-1)).double()
    return torch.stack((torch.log1p(kl), lost, flipped), dim=-1).to(fp_logits.dtype)


class ProbeCache(ChunkCache):
    """The features ``[N, K, 3]`` of every example of one split under one plan set; FP logits
    come from ``fp_logits_of(rows)``."""

    def __init__(self, qnet: DynamicQuantizer, split: Split, device: torch.device,
                 plans: np.ndarray, fp_logits_of: Callable[[np.ndarray], torch.Tensor]) -> None:
        self.plans = np.asarray(plans, dtype=np.int64)
        self.fp_logits_of = fp_logits_of
        super().__init__(qnet, split, device)

    def _allocate(self, n: int, dtype: torch.dtype) -> None:
        self.values = torch.zeros(n, len(self.plans), N_FEATURES, dtype=dtype, device=self.device)

    def _fill(self, rows: np.ndarray) -> None:
        x = self.split.images[torch.as_tensor(rows)].to(self.device)
        self.values[torch.as_tensor(rows, device=self.device)] = probe_features(
            self.qnet, x, self.fp_logits_of(rows), self.plans)

    def get(self, idx: np.ndarray) -> torch.Tensor:
        """Features of examples ``idx`` (computed now if missing)."""
        t = self._ready(idx)  # first: it may replace ``self.values``
        return self.values[t]
