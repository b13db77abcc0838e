"""Logits of a batch under many bit plans, sharing the forward over the plans' common prefixes.

Plans that agree on their leading layers compute the same activations up to the first layer
where they differ, so a set of ``P`` plans costs a walk over its prefix tree (sorted
lexicographically, plans sharing a prefix are adjacent) rather than ``P`` whole forwards.
Quantization is per example, so each input's logits are those of its own forward.
"""

from __future__ import annotations

import numpy as np
import torch

from models.quant.wrapper import DynamicQuantizer, Prefix


@torch.no_grad()
def plan_logits(qnet: DynamicQuantizer, x: torch.Tensor, plans: np.ndarray) -> torch.Tensor:
    """``[P, B, C]``: the logits of inputs ``x`` ``[B, ...]`` under each of ``plans``
    ``[P, L]``; equal to ``qnet(x, plan).logits`` for every plan."""
    plans = np.asarray(plans, dtype=np.int64)
    out: list[torch.Tensor | None] = [None] * len(plans)
    order = np.lexsort(plans.T[::-1])
    _walk(qnet, Prefix(0, x), plans, order, 0, out)
    return torch.stack(out)  # type: ignore[arg-type]


def _walk(qnet: DynamicQuantizer, prefix: Prefix, plans: np.ndarray, group: np.ndarray,
          k: int, out: list[torch.Tensor | None]) -> None:
    """Logits of plans ``group`` (they agree on layers ``< k``) from ``prefix`` into ``out``."""
    if k == qnet.n_layers - 1 or len(group) == 1:
        for p in group:
            out[p] = qnet.resume(prefix, plans[p])[0].logits
        return
    for value in np.unique(plans[group, k]):
        sub = group[plans[group, k] == value]
        _, nxt = qnet.resume(prefix, plans[sub[0]], stop_at=k + 1)
        _walk(qnet, nxt, plans, sub, k + 1, out)
