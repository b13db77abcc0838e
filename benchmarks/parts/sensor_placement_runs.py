"""The runs behind ``benchmarks/sensor_placement.py``: every layout method on one field and
sensor count, and a trained policy's layouts, each scored by the same gappy POD on the test
block (rank and λ chosen on validation with random layouts, per K).

Layouts are chosen without test data: QR and max-det greedy from the training block's modes,
greedy forward selection and annealing on the validation block, the policy with observations
from the validation block. Only ``oracle_search`` (annealing on the test block itself) reads
test data: it bounds the headroom, it is not a method.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from fields.classical.placement import qr_placement, random_placement
from fields.classical.pod import POD, GappyPODChoice, cell_weights
from fields.classical.scorer import GappyScorer, choose_rank_lam
from fields.classical.search import anneal, det_greedy, greedy_forward
from fields.pretrained import FieldBlocks, get_blocks

NON_LEARNED = ("qr", "det_greedy", "greedy", "annealing")


@dataclass
class FieldSetup:
    """A field's blocks, training POD and the validation/test scorers."""

    dataset: str
    blocks: FieldBlocks
    pod: POD
    val: GappyScorer
    test: GappyScorer

    @classmethod
    def load(cls, dataset: str, **model: Any) -> FieldSetup:
        blocks = get_blocks(dataset, progress=False, **model)
        pod = POD(blocks.train, blocks.grid.valid_np)
        w = cell_weights(blocks.data) if blocks.data.spherical else None
        return cls(dataset, blocks, pod, GappyScorer(pod, blocks.val.values, w),
                   GappyScorer(pod, blocks.test.values, w))

    def choice(self, k: int) -> GappyPODChoice:
        return choose_rank_lam(self.pod, self.blocks.val.values, self.blocks.grid.valid_np, k,
                               self.val.weight)

    def score(self, rows: np.ndarray, ch: GappyPODChoice) -> dict[str, Any]:
        """A layout's cells, test errors per snapshot and mean validation error."""
        rows = np.asarray(rows, dtype=np.int64)
        return {"cells": self.pod.cells[rows].tolist(),
                "test": self.test.errors(rows[None], ch.rank, ch.lam)[0].tolist(),
                "val": float(self.val.errors(rows[None], ch.rank, ch.lam)[0].mean())}


def _timed(fn: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _det_greedy_on_val(s: FieldSetup, k: int, ch: GappyPODChoice) -> tuple[np.ndarray, int]:
    """Max-det greedy with its number of modes chosen on validation (from 1 to max(K, r))."""
    top = min(max(k, ch.rank), s.pod.max_rank)
    cands = sorted({r for r in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, k, ch.rank) if r <= top})
    lays = np.stack([det_greedy(s.pod, k, r) for r in cands])
    val = s.val.mean_errors(lays, ch.rank, ch.lam)
    return lays[int(np.argmin(val))], cands[int(np.argmin(val))]


def run_baselines(s: FieldSetup, k: int, n_random: int, anneal_budget: int,
                  seeds: list[int]) -> dict[str, Any]:
    """Every non-learned method (and random layouts) at ``k`` sensors, scored on test."""
    ch = s.choice(k)
    valid = s.blocks.grid.valid_np
    methods: dict[str, dict[str, Any]] = {}

    def add(name: str, rows: np.ndarray, evals: int, secs: float, **extra: Any) -> None:
        m = methods.setdefault(name, {"layouts": [], "evaluations": [], "seconds": []})
        m["layouts"].append(s.score(rows, ch) | extra)
        m["evaluations"].append(int(evals))
        m["seconds"].append(float(secs))

    qr_placement(s.pod, valid, 1)  # import PySensors outside the timing
    cells, t = _timed(lambda: qr_placement(s.pod, valid, k))
    add("qr", s.val.rows(cells), 0, t)
    (rows, r_det), t = _timed(lambda: _det_greedy_on_val(s, k, ch))
    add("det_greedy", rows, 0, t, modes=int(r_det))
    (rows, spent), t = _timed(lambda: greedy_forward(s.val, k, ch.rank, ch.lam))
    add("greedy", rows, spent, t)
    starts = {m: np.asarray(s.val.rows(methods[m]["layouts"][0]["cells"]))
              for m in ("qr", "det_greedy", "greedy")}
    best_start = min(starts, key=lambda m: methods[m]["layouts"][0]["val"])
    for seed in seeds:
        (rows, _, spent), t = _timed(lambda seed=seed: anneal(
            s.val, starts[best_start], ch.rank, ch.lam, anneal_budget,
            np.random.default_rng([seed, 17, k])))
        add("annealing", rows, spent, t, seed=seed, start=best_start)
    rng = np.random.default_rng([k, 7])
    for _ in range(n_random):
        cells, t = _timed(lambda: random_placement(valid, k, rng))
        add("random", s.val.rows(cells), 0, t)
    best = min((lay["val"], m, i) for m in NON_LEARNED
               for i, lay in enumerate(methods[m]["layouts"]))
    start = np.asarray(s.test.rows(methods[best[1]]["layouts"][best[2]]["cells"]))
    (rows, _, spent), t = _timed(lambda: anneal(s.test, start, ch.rank, ch.lam, anneal_budget,
                                                np.random.default_rng([99, k])))
    add("oracle_search", rows, spent, t, start=best[1])
    mean_field = s.test.empty_errors(np.arange(len(s.test))).tolist()
    return {"dataset": s.dataset, "k": k, "rank": ch.rank, "lam": ch.lam,
            "val_choice_rel_l2": ch.val_rel_l2, "grid": list(s.blocks.grid.shape),
            "snapshots": {"train": len(s.blocks.train), "val": len(s.blocks.val),
                          "test": len(s.blocks.test)},
            "mean_field": mean_field, "anneal_budget": anneal_budget, "methods": methods}


def run_policy(s: FieldSetup, policy: Any, k: int, placer: Any) -> dict[str, Any]:
    """A policy's deterministic layout at ``k`` (observations from validation), scored on
    test, with the seconds per placement of the whole episode and of the policy forwards."""
    from agents.placement.policy import greedy_actions, use_grid

    ch = s.choice(k)
    placer.core(k).choice(k)  # set up outside the timing
    (cells, _), t = _timed(lambda: placer.layout(policy, k))
    core = placer.core(k)
    obs = core.observations()
    masks = core.action_masks()
    with use_grid(policy, core.grid.shape):
        _, t_fwd = _timed(lambda: [greedy_actions(policy, obs, masks) for _ in range(k)])
    return s.score(s.val.rows(np.asarray(cells)), ch) | {
        "seconds_per_placement": t / k, "policy_forward_seconds_per_placement": t_fwd / k}


def run_sampled(s: FieldSetup, policy: Any, k: int, placer: Any, n: int, seed: int
                ) -> dict[str, Any]:
    """Best-of-``n`` decoding: ``n`` layouts drawn from the policy (observations from
    validation), the one with the lowest validation error under the chosen rank and λ, scored
    on test; ``evaluations`` counts the validation scorings."""
    ch = s.choice(k)
    placer.core(k, n).choice(k)  # set up outside the timing

    def pick() -> np.ndarray:
        lays, _ = placer.samples(policy, k, n, seed)
        return lays[int(np.argmin(s.val.mean_errors(s.val.rows(lays), ch.rank, ch.lam)))]

    cells, t = _timed(pick)
    return s.score(s.val.rows(cells), ch) | {"seconds_per_placement": t / k,
                                             "evaluations": int(n), "samples": int(n)}
