"""Static bit plans (one plan for every input) on a DynamicPTQ network: evaluate, search.

A learned policy may choose a different plan per input; :func:`best_static_plan` is the
baseline it has to beat: the single plan under the same budget that hurts the network most
(detrimental direction), found by a real search on the **validation** split:

* ``exhaustive`` — every plan on the budget's frontier (for a plain mean-bits budget: the plans
  whose bits sum to exactly the least total the budget allows; lowering bits never helps a
  detrimental budget beyond it), when there are at most ``max_evals`` of them;
* otherwise ``greedy + restarts`` — greedy descent from the all-highest plan (lower the layer
  whose one-step lowering hurts most, while the budget holds), then ``restarts`` random
  frontier plans, each improved by local search (lower one layer / raise another, first
  improvement), until ``max_evals`` plan evaluations are spent.

Known plans can be given as ``candidates`` (e.g. the plans a learned policy emits on the same
validation examples): after the search (which they do not change) they are scored on top of
its budget and compete on validation with its best plan, so a policy that emits one plan
cannot show a "dynamic gain" over a search that merely missed that plan.

Several plans are evaluated in one batched forward (rows = plans × examples). The test split
is then read once, for the winning plan (:func:`evaluate_static`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from envs.ptq.budget import Budget
from envs.ptq.resources import PTQResources

_TOL = 1e-9


@dataclass
class StaticSearch:
    """The outcome of :func:`best_static_plan` (accuracies in points on the search split)."""

    plan: list[int]
    drop: float
    method: str
    n_evals: int
    split: str
    n_examples: int


def _batch(res: PTQResources, split: str, limit: int | None) -> tuple[torch.Tensor, np.ndarray,
                                                                         np.ndarray]:
    labels = res.labels(split)
    n = len(labels) if limit is None else min(int(limit), len(labels))
    idx = np.arange(n)
    fp_logits, _ = res.cache(split).get(idx)
    fp_ok = fp_logits.argmax(1).cpu().numpy() == labels[:n]
    return res.split(split).images[:n], labels[:n], fp_ok


@torch.no_grad()
def _drops(res: PTQResources, plans: np.ndarray, x: torch.Tensor, y: np.ndarray,
           fp_ok: np.ndarray, rows_per_call: int = 4096) -> np.ndarray:
    """Accuracy drop (points) of each plan ``[P, L]`` on the examples ``x``."""
    n = len(y)
    per = max(1, rows_per_call // n)
    out = np.empty(len(plans))
    fp_acc = fp_ok.mean()
    net = res.net
    was = net.training
    net.eval()
    try:
        for s in range(0, len(plans), per):
            chunk = plans[s:s + per]
            xs = x.repeat(len(chunk), *([1] * (x.ndim - 1))).to(res.device)
            rows = np.repeat(chunk, n, axis=0)
            pred = res.qnet(xs, rows).logits.argmax(1).cpu().numpy().reshape(len(chunk), n)
            q_ok = pred == y[None]
            out[s:s + len(chunk)] = 100.0 * (fp_acc - q_ok.mean(1))
    finally:
        net.train(was)
    return out


def evaluate_static(res: PTQResources, plan: np.ndarray | list[int], split: str = "test",
                    limit: int | None = None) -> dict[str, float]:
    """FP accuracy, quantized accuracy, drop (points) and mean bits of one static ``plan``."""
    x, y, fp_ok = _batch(res, split, limit)
    drop = float(_drops(res, np.asarray([plan], dtype=np.int64), x, y, fp_ok)[0])
    fp = 100.0 * float(fp_ok.mean())
    return {"fp_acc": fp, "dptq_acc": fp - drop, "drop": drop,
            "mean_bits": float(np.mean(plan)), "n": len(y)}


def frontier(budget: Budget, n_layers: int) -> np.ndarray | None:
    """Every plan meeting a plain mean-bits minimum budget with the least total bits, or
    ``None`` when the budget is not of that kind (MAC-weighted or maximum)."""
    if budget.kind != "min" or not np.allclose(budget.w, budget.w[0]):
        return None
    bits = budget.bits
    need = int(np.ceil(budget.value * n_layers - _TOL))
    extra = need - n_layers * int(bits[0])
    if extra <= 0:
        return np.full((1, n_layers), bits[0], dtype=np.int64)
    top = len(bits) - 1
    rows = [c for c in itertools.product(range(top + 1), repeat=n_layers)
            if sum(bits[list(c)] - bits[0]) == extra] if len(bits) ** n_layers <= 2e6 else None
    return None if not rows else bits[np.asarray(rows)]  # none at that exact total: search


def _feasible(budget: Budget, plans: np.ndarray) -> np.ndarray:
    c = budget.cost(plans)
    return c >= budget.value - _TOL if budget.kind == "min" else c <= budget.value + _TOL


def random_frontier_plan(budget: Budget, n_layers: int, rng: np.random.Generator) -> np.ndarray:
    """A random feasible plan pushed down until no single layer can be lowered."""
    pos = rng.integers(len(budget.bits), size=n_layers)
    while not _feasible(budget, budget.bits[pos][None])[0]:
        pos[rng.choice(np.flatnonzero(pos < len(budget.bits) - 1))] += 1
    for j in rng.permutation(np.repeat(np.arange(n_layers), len(budget.bits))):
        if pos[j] > 0:
            pos[j] -= 1
            if not _feasible(budget, budget.bits[pos][None])[0]:
                pos[j] += 1
    return budget.bits[pos]


def _neighbours(budget: Budget, plan: np.ndarray) -> np.ndarray:
    """Feasible plans one move away: lower one layer, or lower one and raise another."""
    pos = np.searchsorted(budget.bits, plan)
    top, n = len(budget.bits) - 1, len(plan)
    out = []
    for i in range(n):
        if pos[i] == 0:
            continue
        down = pos.copy()
        down[i] -= 1
        out.append(down)
        for j in range(n):
            if j != i and down[j] < top:
                swap = down.copy()
                swap[j] += 1
                out.append(swap)
    if not out:
        return np.zeros((0, n), dtype=np.int64)
    cand = np.unique(budget.bits[np.asarray(out)], axis=0)
    return cand[_feasible(budget, cand)]


def best_static_plan(res: PTQResources, budget: Budget, *, split: str = "val",
                     limit: int | None = 1000, max_evals: int = 600, restarts: int = 4,
                     seed: int = 0, candidates: np.ndarray | None = None) -> StaticSearch:
    """The static plan under ``budget`` with the largest accuracy drop on ``split``.

    Args:
        budget: the env's :class:`~envs.ptq.budget.Budget` (its bit choices and bound).
        limit: examples of ``split`` scored per plan (the first ``limit``).
        max_evals: plan evaluations the search may spend.
        restarts: random restarts after the greedy descent (each followed by local search).
        candidates: plans ``[P, L]`` compared with the search's best after it, in addition to
            ``max_evals`` (infeasible ones are dropped; :func:`with_candidates`); ``method``
            gets ``+ candidates`` when one of them wins.
    """
    x, y, fp_ok = _batch(res, split, limit)
    n_layers = res.qnet.n_layers
    seen: dict[tuple[int, ...], float] = {}

    def score(plans: np.ndarray) -> np.ndarray:
        new = [p for p in map(tuple, plans) if p not in seen]
        new = list(dict.fromkeys(new))[: max(max_evals - len(seen), 0)]
        if new:
            for p, d in zip(new, _drops(res, np.asarray(new), x, y, fp_ok), strict=True):
                seen[p] = float(d)
        return np.asarray([seen.get(tuple(p), -np.inf) for p in plans])

    front = frontier(budget, n_layers)
    if front is not None and len(front) <= max_evals:
        score(front)
        method = "exhaustive"
    else:
        method = "greedy + restarts"
        rng = np.random.default_rng(seed)
        starts = [np.full(n_layers, budget.bits[-1], dtype=np.int64)]
        starts += [random_frontier_plan(budget, n_layers, rng) for _ in range(restarts)]
        for k, plan in enumerate(starts):
            cur, cur_d = plan, float(score(plan[None])[0])
            while len(seen) < max_evals:
                cand = _neighbours(budget, cur)
                if k == 0:  # greedy descent: take the best lowering move while one is feasible
                    cand = cand[cand.sum(axis=1) < cur.sum()]
                if not len(cand):
                    break
                d = score(cand)
                if k > 0 and d.max() <= cur_d:  # local search: stop at a local optimum
                    break
                cur, cur_d = cand[int(d.argmax())], float(d.max())
            if len(seen) >= max_evals:
                break
    best = max(seen, key=seen.get)
    found = StaticSearch(plan=[int(b) for b in best], drop=seen[best], method=method,
                         n_evals=len(seen), split=split, n_examples=len(y))
    return found if candidates is None else with_candidates(res, budget, found, candidates,
                                                            limit, seen)


def with_candidates(res: PTQResources, budget: Budget, found: StaticSearch,
                    candidates: np.ndarray, limit: int | None,
                    seen: dict[tuple[int, ...], float] | None = None) -> StaticSearch:
    """``found`` (a search's outcome) against the feasible ``candidates`` on the same
    examples: the best of them (ties keep ``found``), with the extra evaluations counted."""
    seen = dict(seen or {})
    cand = np.asarray(candidates, dtype=np.int64).reshape(-1, res.qnet.n_layers)
    cand = np.unique(cand[_feasible(budget, cand)], axis=0) if len(cand) else cand
    new = [p for p in map(tuple, cand) if p not in seen and list(p) != found.plan]
    if new:
        x, y, fp_ok = _batch(res, found.split, limit)
        for p, d in zip(new, _drops(res, np.asarray(new), x, y, fp_ok), strict=True):
            seen[p] = float(d)
    scored = {p: seen[p] for p in map(tuple, cand) if p in seen}
    if not scored or max(scored.values()) <= found.drop:
        return StaticSearch(found.plan, found.drop, found.method, found.n_evals + len(new),
                            found.split, found.n_examples)
    best = max(scored, key=scored.get)
    return StaticSearch([int(b) for b in best], scored[best], found.method + " + candidates",
                        found.n_evals + len(new), found.split, found.n_examples)
