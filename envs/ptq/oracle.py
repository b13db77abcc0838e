"""Per-input headroom of a DynamicPTQ network: what an oracle choosing one plan per input
would win over the best single static plan, on a stated candidate set.

:func:`candidate_plans` draws the candidates from the budget alone (distinct random plans on
the budget's frontier, plus the uniform plan at the budget), so nothing about the test split
enters them. :func:`plan_outcomes` scores every candidate on every example in batched forwards.
:func:`oracle_gain` then picks the best static plan on the **validation** split and reads the
test split once: the static drop of that plan, and the oracle's drop (an input counts as
failed when any candidate makes it wrong). ``oracle_gain`` is their difference: the most a
per-input detrimental policy restricted to these candidates could add over a static attack.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from envs.ptq.budget import Budget
from envs.ptq.resources import PTQResources
from envs.ptq.static_plans import frontier, random_frontier_plan


def candidate_plans(budget: Budget, n_layers: int, n: int = 300, seed: int = 0,
                    max_draws: int = 50_000) -> np.ndarray:
    """Up to ``n`` distinct plans meeting ``budget`` ``[P, L]``: the whole frontier when it
    has at most ``n`` plans, otherwise the uniform plan at the budget and random frontier
    plans (seeded)."""
    full = frontier(budget, n_layers)
    if full is not None and len(full) <= n:
        return full.astype(np.int64)
    rng = np.random.default_rng(seed)
    uniform = np.full(n_layers, budget.bits[np.searchsorted(budget.bits, budget.value - 1e-9)])
    seen = {tuple(uniform.tolist())} if (budget.cost(uniform[None]) >= budget.value - 1e-9)[0] \
        else set()
    plans = [uniform] if seen else []
    for _ in range(max_draws):
        if len(plans) >= n:
            break
        p = random_frontier_plan(budget, n_layers, rng)
        if tuple(p.tolist()) not in seen:
            seen.add(tuple(p.tolist()))
            plans.append(p)
    return np.stack(plans).astype(np.int64)


@torch.no_grad()
def plan_outcomes(res: PTQResources, plans: np.ndarray, split: str, limit: int | None = None,
                  rows_per_call: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """``(q_ok [P, N], fp_ok [N])``: whether each example is classified correctly under each
    plan, and in full precision."""
    labels = res.labels(split)
    n = len(labels) if limit is None else min(int(limit), len(labels))
    x, y = res.split(split).images[:n], labels[:n]
    fp_logits, _ = res.cache(split).get(np.arange(n))
    fp_ok = fp_logits.argmax(1).cpu().numpy() == y
    q_ok = np.empty((len(plans), n), dtype=bool)
    was = res.net.training
    res.net.eval()
    try:
        for s in range(0, n, rows_per_call):
            xs = x[s:s + rows_per_call].to(res.device)
            for p, plan in enumerate(plans):
                pred = res.qnet(xs, plan).logits.argmax(1).cpu().numpy()
                q_ok[p, s:s + len(xs)] = pred == y[s:s + len(xs)]
    finally:
        res.net.train(was)
    return q_ok, fp_ok


def oracle_gain(res: PTQResources, plans: np.ndarray, *, val_limit: int | None = None,
                test_limit: int | None = None) -> dict[str, Any]:
    """Best static plan (chosen on validation) vs the per-input oracle on test, in points."""
    q_val, fp_val = plan_outcomes(res, plans, "val", val_limit)
    val_drops = 100.0 * (fp_val.mean() - q_val.mean(1))
    best = int(np.argmax(val_drops))
    q_test, fp_test = plan_outcomes(res, plans, "test", test_limit)
    fp_acc = 100.0 * float(fp_test.mean())
    static_drop = fp_acc - 100.0 * float(q_test[best].mean())
    oracle_drop = fp_acc - 100.0 * float(q_test.all(0).mean())
    return {"n_plans": int(len(plans)), "best_static_plan": plans[best].tolist(),
            "best_static_val_drop": float(val_drops[best]), "static_drop": static_drop,
            "oracle_drop": oracle_drop, "oracle_gain": oracle_drop - static_drop,
            "fp_acc": fp_acc, "n_val": int(q_val.shape[1]), "n_test": int(q_test.shape[1])}
