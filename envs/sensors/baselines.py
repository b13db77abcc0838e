"""Layout searches that compete with a learned placement policy on the env's own score.

QR pivoting and random layouts live in :mod:`fields.classical.placement`; here is the greedy search,
which adds one sensor at a time, each time trying candidate cells with the same scorer the
agent is rewarded by, under a stated number of scorer evaluations (so it can be given exactly
the budget a PPO run spends).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fields.classical.placement import qr_placement, random_placement

__all__ = ["greedy_placement", "qr_placement", "random_placement"]


def greedy_placement(score: Callable[[np.ndarray], float], valid: np.ndarray, k: int,
                     evaluations: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Greedy layout of ``k`` sensors under ``evaluations`` calls of ``score`` (lower = better).

    Step ``t`` tries ``evaluations // k`` free valid cells drawn with ``rng`` (every free cell
    if the budget allows) and keeps the best. Returns the layout (flat cell indices, in the
    order placed) and the number of evaluations spent.
    """
    cells = np.flatnonzero(np.asarray(valid, dtype=bool).reshape(-1))
    if not 0 < k <= len(cells):
        raise ValueError(f"cannot place {k} sensors on {len(cells)} valid cells")
    per_step = evaluations // k
    if per_step < 1:
        raise ValueError(f"{evaluations} evaluations are fewer than one per sensor (k={k})")
    chosen: list[int] = []
    spent = 0
    for _ in range(k):
        free = np.setdiff1d(cells, chosen, assume_unique=True)
        cand = free if len(free) <= per_step else rng.choice(free, size=per_step, replace=False)
        errors = [score(np.array([*chosen, c])) for c in cand]
        spent += len(cand)
        chosen.append(int(cand[int(np.argmin(errors))]))
    return np.array(chosen, dtype=np.int64), spent
