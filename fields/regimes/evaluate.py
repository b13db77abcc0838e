"""Measured validation/test sets under each condition, relative L2 of any predictor on them,
and gappy POD with rank and λ chosen on validation separately for every condition.

A *predictor* is any callable ``predict(measured, working) -> (B, H, W)`` that reads the
measured field of :func:`fields.regimes.noise.measure` at the ``working`` sensors only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from fields.classical.pod import LAMS, POD, RANKS, relative_l2_np
from fields.regimes.noise import Condition, condition_rng, measure

Predictor = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class Measured:
    """One layout's readings of a block under one condition, with the truth to score against."""

    measured: np.ndarray  # (B, H, W): readings at the working sensors, NaN elsewhere
    working: np.ndarray  # (K',) flat cells of the working sensors
    truth: np.ndarray  # (B, H, W)
    layout: int  # index of the layout this came from


def measured_sets(values: np.ndarray, layouts: Sequence[np.ndarray], conditions:
                  Sequence[Condition], sigma: float, seed: int, split: str
                  ) -> dict[str, list[Measured]]:
    """Per condition key: every layout's measured block, from the method-independent
    generator :func:`~fields.regimes.noise.condition_rng` of (seed, condition, K, split)."""
    out: dict[str, list[Measured]] = {}
    for cond in conditions:
        sets = []
        for i, sensors in enumerate(layouts):
            rng = condition_rng(seed, cond, len(sensors), split, i)
            m, working = measure(values, sensors, cond, sigma, rng)
            sets.append(Measured(m, working, values, i))
        out[cond.key] = sets
    return out


def score(predict: Predictor, sets: Sequence[Measured], valid: np.ndarray,
          weight: np.ndarray | None = None) -> float:
    """Mean relative L2 over layouts × snapshots."""
    errs = [relative_l2_np(predict(s.measured, s.working), s.truth, valid, weight) for s in sets]
    return float(np.mean(np.concatenate(errs)))


@dataclass
class GappyChoice:
    rank: int
    lam: float
    val_rel_l2: float


def tune_gappy(pod: POD, val_sets: Sequence[Measured], valid: np.ndarray,
               weight: np.ndarray | None = None, ranks: Sequence[int] = RANKS,
               lams: Sequence[float] = LAMS) -> GappyChoice:
    """Rank × λ with the lowest validation error under one condition (never test data)."""
    best = GappyChoice(0, 0.0, np.inf)
    for r in sorted({min(r, pod.max_rank) for r in ranks}):
        for lam in lams:
            e = score(gappy_predictor(pod, r, lam), val_sets, valid, weight)
            if e < best.val_rel_l2:
                best = GappyChoice(r, lam, e)
    return best


def gappy_predictor(pod: POD, rank: int, lam: float) -> Predictor:
    def predict(measured: np.ndarray, working: np.ndarray) -> np.ndarray:
        return pod.gappy(measured, working, rank, lam)

    return predict


def energy_modes(pod_values: np.ndarray, fractions: Sequence[float] = (0.9, 0.99)
                 ) -> dict[str, int]:
    """How many POD modes hold each fraction of the variance; ``pod_values``: ``POD.std``
    over all modes."""
    e = np.cumsum(pod_values ** 2) / np.sum(pod_values ** 2)
    return {f"{f:g}": int(np.searchsorted(e, f) + 1) for f in fractions}
