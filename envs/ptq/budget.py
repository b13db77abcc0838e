"""The bit budget of DynamicPTQ: a (weighted) mean bit-width bound, enforced HAQ-style.

The cost of a plan is ``Σ_l w_l · bits_l`` with ``w`` uniform (``budget_cost='mean'``: the
plain mean bit-width) or proportional to each layer's multiply–accumulates (``'macs'``: the
mean bits per MAC, i.e. BitOps / MACs). Detrimental episodes need cost ≥ budget (otherwise
"all 2-bit" would trivially win); robust episodes need cost ≤ budget.
"""

from __future__ import annotations

import numpy as np

from envs.ptq.config import PTQConfig

_TOL = 1e-9


class Budget:
    def __init__(self, cfg: PTQConfig, macs: np.ndarray) -> None:
        n = len(macs)
        self.w = macs / macs.sum() if cfg.budget_cost == "macs" else np.full(n, 1.0 / n)
        self.kind = cfg.budget_kind
        self.value = float(cfg.budget_bits)
        self.bits = np.asarray(cfg.bit_choices, dtype=np.int64)
        self._tail = np.concatenate((np.cumsum(self.w[::-1])[::-1][1:], [0.0]))  # Σ_{j>k} w_j

    def cost(self, plan: np.ndarray) -> np.ndarray:
        """Weighted mean bits of each row of ``plan`` ``[B, L]``."""
        return plan @ self.w

    def _spent(self, plan: np.ndarray, k: np.ndarray) -> np.ndarray:
        chosen = np.arange(plan.shape[1])[None] < k[:, None]
        return (plan * chosen) @ self.w

    def remaining_mean(self, plan: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Mean bits the layers from ``k`` on must reach (min) / may use (max)."""
        kk = np.minimum(k, len(self.w) - 1)
        rest = self._tail[kk] + self.w[kk]
        return (self.value - self._spent(plan, k)) / rest * (k < len(self.w))

    def feasible(self, plan: np.ndarray, k: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """``[B, n_choices]``: choices for layer ``k`` after which the budget stays reachable."""
        kk = np.minimum(k, len(self.w) - 1)
        base = self._spent(plan, k)[:, None] + self.w[kk, None] * bits[None]
        if self.kind == "min":
            ok = base + self._tail[kk, None] * bits[-1] >= self.value - _TOL
        else:
            ok = base + self._tail[kk, None] * bits[0] <= self.value + _TOL
        ok[k >= len(self.w)] = True
        return ok

    def repair(self, plan: np.ndarray, bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Move bits one choice at a time until every row meets the budget (HAQ-style).

        min: raise the layer with the fewest bits (first such layer on ties);
        max: lower the layer with the most bits (largest cost weight on ties).
        Returns the repaired plans and the number of one-step moves per row.
        """
        moves = np.zeros(len(plan), dtype=np.int64)
        pos = np.searchsorted(bits, plan)
        tie = 0.5 * self.w / self.w.max()  # < 1: only breaks ties between equal bits
        while True:
            c = bits[pos] @ self.w
            bad = c < self.value - _TOL if self.kind == "min" else c > self.value + _TOL
            rows = np.flatnonzero(bad)
            if not len(rows):
                break
            p = pos[rows]
            if self.kind == "min":
                j = np.where(p < len(bits) - 1, p, np.inf).argmin(axis=1)
                pos[rows, j] += 1
            else:
                j = np.where(p > 0, p + tie, -np.inf).argmax(axis=1)
                pos[rows, j] -= 1
            moves[rows] += 1
        return bits[pos], moves
