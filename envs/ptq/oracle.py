"""Per-input headroom of a DynamicPTQ network: what an oracle choosing one plan per input
would win over the best single static plan, on a stated candidate set.

:func:`candidate_plans` draws the candidates from the budget alone (distinct random plans on
the budget's frontier, plus the uniform plan at the budget), so nothing about the test split
enters them. :func:`plan_outcomes` scores every candidate on every example in batched forwards.
:func:`oracle_gain` then picks the best static plan on the **validation** split and reads the
test split once: the static drop of that plan, and the oracle's drop (an input counts as
failed when any candidate makes it wrong). ``oracle_gain`` is their difference: the most a
per-input detrimental policy restricted to these candidates could add over a static attack.

The robust side (:func:`robust_candidates`, :func:`robust_oracle`) asks the mirror question
under a maximum-cost budget: how much accuracy, and how many bits, a policy that gives each
input the cheapest plan keeping it correct could win over the most accurate static plan.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from envs.ptq.budget import Budget
from envs.ptq.resources import PTQResources
from envs.ptq.static_plans import frontier, random_frontier_plan
from models.quant.plans import plan_logits


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
                  rows_per_call: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """``(q_ok [P, N], fp_ok [N])``: whether each example is classified correctly under each
    plan, and in full precision (plans sharing leading bits share that part of the forward)."""
    labels = res.labels(split)
    n = len(labels) if limit is None else min(int(limit), len(labels))
    x, y = res.split(split).images[:n], labels[:n]
    fp_logits, _ = res.cache(split).get(np.arange(n))
    fp_ok = fp_logits.argmax(1).cpu().numpy() == y
    q_ok = np.empty((len(plans), n), dtype=bool)
    was = res.net.training
    res.net.eval()
    try:
        for s in tqdm(range(0, n, rows_per_call), desc=f"{len(plans)} plans on {split}",
                      leave=False, mininterval=5):
            xs = x[s:s + rows_per_call].to(res.device)
            pred = plan_logits(res.qnet, xs, plans).argmax(-1).cpu().numpy()
            q_ok[:, s:s + len(xs)] = pred == y[s:s + len(xs)]
    finally:
        res.net.train(was)
    return q_ok, fp_ok


Outcomes = tuple[np.ndarray, np.ndarray]  # (q_ok [P, N], fp_ok [N]) of plan_outcomes


def oracle_gain(res: PTQResources, plans: np.ndarray, *, val_limit: int | None = None,
                test_limit: int | None = None) -> dict[str, Any]:
    """Best static plan (chosen on validation) vs the per-input oracle on test, in points."""
    return oracle_from(plans, plan_outcomes(res, plans, "val", val_limit),
                       plan_outcomes(res, plans, "test", test_limit))


def oracle_from(plans: np.ndarray, val: Outcomes, test: Outcomes) -> dict[str, Any]:
    """:func:`oracle_gain` from already computed validation and test outcomes."""
    (q_val, fp_val), (q_test, fp_test) = val, test
    val_drops = 100.0 * (fp_val.mean() - q_val.mean(1))
    best = int(np.argmax(val_drops))
    fp_acc = 100.0 * float(fp_test.mean())
    static_drop = fp_acc - 100.0 * float(q_test[best].mean())
    oracle_drop = fp_acc - 100.0 * float(q_test.all(0).mean())
    return {"n_plans": int(len(plans)), "best_static_plan": plans[best].tolist(),
            "best_static_val_drop": float(val_drops[best]), "static_drop": static_drop,
            "oracle_drop": oracle_drop, "oracle_gain": oracle_drop - static_drop,
            "fp_acc": fp_acc, "n_val": int(q_val.shape[1]), "n_test": int(q_test.shape[1])}


def query_attack(val: Outcomes, test: Outcomes, k: int) -> dict[str, Any]:
    """An attacker that may run ``k`` quantized forwards per input and keeps a plan under
    which the input fails: its ``k`` plans are chosen on validation greedily (the best static
    plan first, then each time the plan failing the most inputs not yet failed), and on test
    an input counts as failed when any of them fails it (``k = 1``: the best static plan). It
    stops early when no candidate fails a validation input the chosen ones do not."""
    (q_val, fp_val), (q_test, fp_test) = val, test
    fail = fp_val[None] & ~q_val
    chosen, covered = [], np.zeros(q_val.shape[1], dtype=bool)
    for _ in range(min(int(k), len(q_val))):
        gain = (fail & ~covered).sum(1)
        if chosen and gain.max() == 0:
            break  # no candidate fails a validation input not yet failed
        p = int(np.argmax(gain))
        chosen.append(p)
        covered |= fail[p]
    correct = q_test[chosen].all(0)
    return {"k": len(chosen), "plans": chosen,
            "drop": 100.0 * float(fp_test.mean() - correct.mean())}


def learned_selector(val: Outcomes, test: Outcomes, x_val: np.ndarray, x_test: np.ndarray,
                     c: float = 1.0) -> dict[str, Any]:
    """A per-input attacker learned on validation: for every candidate plan a logistic
    regression (``C = c``, standardised features) predicts from an input's observation
    ``x`` whether the plan makes it fail; each test input gets the plan with the highest
    predicted probability. Returns its test drop (points) and how many plans it used."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    (q_val, fp_val), (q_test, fp_test) = val, test
    scaler = StandardScaler().fit(x_val)
    zv, zt = scaler.transform(x_val), scaler.transform(x_test)
    fail = fp_val[None] & ~q_val
    prob = np.empty(q_test.shape)
    for p in range(len(q_val)):
        if fail[p].all() or not fail[p].any():
            prob[p] = fail[p].mean()
            continue
        prob[p] = LogisticRegression(C=c, max_iter=2000).fit(zv, fail[p]).predict_proba(zt)[:, 1]
    choice = prob.argmax(0)
    correct = q_test[choice, np.arange(q_test.shape[1])]
    return {"drop": 100.0 * float(fp_test.mean() - correct.mean()),
            "distinct_plans": int(len(np.unique(choice))), "n_features": int(x_val.shape[1])}


def robust_candidates(budget: Budget, n_layers: int, n: int = 300, seed: int = 0,
                      max_draws: int = 50_000) -> np.ndarray:
    """Up to ``n`` distinct plans under a maximum-cost ``budget`` (robust side) ``[P, L]``:
    the uniform plans that fit, then (seeded) alternately a random plan raised one layer at a
    time until no layer can be raised (it spends the budget) and a uniformly random plan that
    fits (it may spend less)."""
    bits = budget.bits
    fits = lambda p: budget.cost(p[None])[0] <= budget.value + 1e-9  # noqa: E731
    plans = [np.full(n_layers, b) for b in bits if fits(np.full(n_layers, b))]
    seen = {tuple(p.tolist()) for p in plans}
    rng = np.random.default_rng(seed)
    for draw in range(max_draws):
        if len(plans) >= n:
            break
        if draw % 2:
            p = bits[rng.integers(len(bits), size=n_layers)]
            if not fits(p):
                continue
        else:
            pos = np.zeros(n_layers, dtype=np.int64)
            for j in rng.permutation(np.repeat(np.arange(n_layers), len(bits))):
                if pos[j] < len(bits) - 1:
                    pos[j] += 1
                    if not fits(bits[pos]):
                        pos[j] -= 1
            p = bits[pos]
        if tuple(p.tolist()) not in seen:
            seen.add(tuple(p.tolist()))
            plans.append(p)
    return np.stack(plans).astype(np.int64)


def robust_oracle(res: PTQResources, plans: np.ndarray, budget: Budget, *,
                  val_limit: int | None = None, test_limit: int | None = None) -> dict[str, Any]:
    """Robust-side headroom, in points and bits: the oracle gives each input the cheapest
    candidate that keeps it correct (the cheapest candidate when none does); the static plan
    is the candidate most accurate on validation (ties: the cheapest). Both read on test."""
    cost = budget.cost(plans)
    q_val, _ = plan_outcomes(res, plans, "val", val_limit)
    val_acc = q_val.mean(1)
    best = int(np.lexsort((cost, -val_acc))[0])
    q_test, fp_test = plan_outcomes(res, plans, "test", test_limit)
    order = np.argsort(cost, kind="stable")
    ok = q_test[order]                                  # cheapest first
    first = np.where(ok.any(0), ok.argmax(0), 0)        # cheapest correct (or cheapest)
    oracle_cost = float(cost[order][first].mean())
    oracle_acc = 100.0 * float(ok.any(0).mean())
    static_acc = 100.0 * float(q_test[best].mean())
    return {"n_plans": int(len(plans)), "best_static_plan": plans[best].tolist(),
            "static_acc": static_acc, "static_cost_bits": float(cost[best]),
            "oracle_acc": oracle_acc, "oracle_cost_bits": oracle_cost,
            "oracle_acc_gain": oracle_acc - static_acc,
            "oracle_bits_saved": float(cost[best]) - oracle_cost,
            "fp_acc": 100.0 * float(fp_test.mean()), "n_val": int(q_val.shape[1]),
            "n_test": int(q_test.shape[1])}
