"""One network under every attack of P1's hard protocol, on the whole test split.

For a frozen network (the standard one, a detrimental pair's or a robust pair's) and the
detrimental attack budget it measures, on the same test examples:

* ``own_policy`` — the pair's own policy under the pair's own env (its own budget);
* ``fresh_attacker`` — a detrimental policy trained from scratch against the frozen network
  (``python -m agents.pairs --attack``);
* ``best_static`` — the best single plan under the attack budget, searched on the validation
  split (:func:`envs.ptq.static_plans.best_static_plan`), read once on the test split; the
  plans the detrimental policies emit on the same validation examples compete as candidates
  (``CANDIDATES_PER_POLICY`` most frequent each), so ``dynamic_gain`` measures what per-input
  choice adds, not what the search missed;
* ``uniform4`` (below the attack budget: a reference) and ``uniform5`` (at it);
* ``random_budget`` — per-input random plans under the attack budget;
* ``dynamic_gain`` of each detrimental policy: its drop minus the best static plan's under
  the same budget, next to the number of distinct plans it emits (``distinct_plans``);
* ``transfer`` — ordinary static PTQ calibrated on 1024 training images: activations at 4 and
  8 bits, and 8-bit weights with 8-bit activations (report only).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from agents.pairs.artifact import Pair
from envs.ptq.baselines import BaselineAgent, RandomBudgetPolicy
from envs.ptq.budget import Budget
from envs.ptq.rollout import env_parts, headline, split_rollout
from envs.ptq.static_plans import (
    StaticSearch,
    best_static_plan,
    evaluate_static,
    with_candidates,
)
from models.datasets import DatasetSplits
from models.quant.static import static_accuracy

CALIBRATION_IMAGES = 1024
CANDIDATES_PER_POLICY = 8


def policy_row(pair: Pair, net: nn.Module, data: DatasetSplits, split: str = "test",
               limit: int | None = None) -> dict[str, Any]:
    """The headline of ``pair``'s policy on ``net`` under ``pair``'s own env options."""
    cfg, res = env_parts(pair.env_kwargs, net, data)
    return headline(split_rollout(cfg, res, pair.policy, split, limit))


def policy_plans(pairs: list[Pair | None], net: nn.Module, data: DatasetSplits, split: str,
                 limit: int | None, per_policy: int = CANDIDATES_PER_POLICY) -> np.ndarray:
    """The ``per_policy`` most frequent plans each detrimental policy emits on ``split``."""
    plans = []
    for pair in pairs:
        if pair is None or pair.env_kwargs["reward"] != "detrimental":
            continue
        cfg, res = env_parts(pair.env_kwargs, net, data)
        bits = split_rollout(cfg, res, pair.policy, split, limit)["bits"]
        uniq, counts = np.unique(bits, axis=0, return_counts=True)
        plans.append(uniq[np.argsort(-counts, kind="stable")[:per_policy]])
    return np.concatenate(plans) if plans else np.zeros((0, 0), dtype=np.int64)


def transfer(net: nn.Module, data: DatasetSplits, zero_point: str = "integer"
             ) -> dict[str, float]:
    """Test accuracy (points) under calibrated static PTQ: A4, A8 and W8A8, and FP."""
    calib = data.train.images[:CALIBRATION_IMAGES]
    x, y = data.test.images, data.test.labels
    kw = {"zero_point": zero_point}
    return {"static_a4": static_accuracy(net, calib, x, y, 4, **kw),
            "static_a8": static_accuracy(net, calib, x, y, 8, **kw),
            "static_w8a8": static_accuracy(net, calib, x, y, 8, weight_bits=8, **kw)}


def network_matrix(net: nn.Module, data: DatasetSplits, attack_env: dict[str, Any], *,
                   own: Pair | None = None, attacker: Pair | None = None,
                   static_evals: int = 300, static_limit: int = 500, seed: int = 0,
                   limit: int | None = None) -> dict[str, Any]:
    """Every row of the matrix for ``net`` (see the module docstring); accuracies in points.

    Args:
        attack_env: DynamicPTQ options of the detrimental attack (bit choices, budget, weight
            bits) — the ones the fresh attacker was trained with.
        own, attacker: the pair whose network this is, and the fresh attacker (either may
            be ``None``).
        static_evals, static_limit: the static search's budget: plan evaluations, and
            validation examples per evaluation.
        limit: test examples (``None``: the whole split).
    """
    cfg, res = env_parts(attack_env, net, data)
    budget = Budget(cfg, res.qnet.layer_macs())
    candidates = policy_plans([own, attacker], net, data, "val", static_limit)
    search = best_static_plan(res, budget, split="val", limit=static_limit,
                              max_evals=static_evals, seed=seed, candidates=candidates)
    rows: dict[str, Any] = {
        "best_static": _static_row(res, search, len(candidates), limit),
        "uniform4": evaluate_static(res, [4] * res.qnet.n_layers, "test", limit),
        "uniform5": evaluate_static(res, [5] * res.qnet.n_layers, "test", limit),
        "random_budget": headline(split_rollout(
            cfg, res, None, "test", limit,
            make_agent=lambda env: BaselineAgent(RandomBudgetPolicy(), env, seed=seed))),
    }
    for name, pair in (("own_policy", own), ("fresh_attacker", attacker)):
        if pair is not None:
            rows[name] = policy_row(pair, net, data, "test", limit)
    _dynamic_gain(rows, own, attacker)
    rows["transfer"] = transfer(net, data, attack_env.get("zero_point", "integer"))
    return rows


def _static_row(res: Any, search: StaticSearch, n_candidates: int,
                limit: int | None) -> dict[str, Any]:
    """The best static plan read once on the test split, with how it was found."""
    return {**evaluate_static(res, search.plan, "test", limit), "plan": search.plan,
            "search": {"method": search.method, "n_evals": search.n_evals,
                       "n_candidates": n_candidates, "val_drop": search.drop,
                       "val_examples": search.n_examples}}


def _dynamic_gain(rows: dict[str, Any], own: Pair | None, attacker: Pair | None) -> None:
    """Each detrimental policy's drop minus the best static plan's (same budget)."""
    for name, pair in (("own_policy", own), ("fresh_attacker", attacker)):
        if pair is not None and name in rows and pair.env_kwargs["reward"] == "detrimental":
            rows[name]["dynamic_gain"] = rows[name]["drop"] - rows["best_static"]["drop"]


def add_policy_candidates(rows: dict[str, Any], net: nn.Module, data: DatasetSplits,
                          attack_env: dict[str, Any], *, own: Pair | None = None,
                          attacker: Pair | None = None, limit: int | None = None
                          ) -> dict[str, Any]:
    """Upgrade a matrix computed before policy plans competed in the static search.

    The search itself is unchanged and deterministic, so its recorded best plan and
    validation drop stand in for re-running it; the policies' plans are then compared with it
    exactly as :func:`network_matrix` does (:func:`envs.ptq.static_plans.with_candidates`),
    and the best static row and the dynamic gains are updated. Other rows are kept.
    """
    old = rows["best_static"]
    cfg, res = env_parts(attack_env, net, data)
    budget = Budget(cfg, res.qnet.layer_macs())
    srch = old["search"]
    found = StaticSearch(plan=list(old["plan"]), drop=srch["val_drop"], method=srch["method"],
                         n_evals=srch["n_evals"], split="val", n_examples=srch["val_examples"])
    candidates = policy_plans([own, attacker], net, data, "val", srch["val_examples"])
    search = with_candidates(res, budget, found, candidates, srch["val_examples"])
    out = {**rows}
    if search.plan == found.plan:
        out["best_static"] = {**old, "search": {**srch, "n_evals": search.n_evals,
                                                "n_candidates": len(candidates)}}
    else:
        out["best_static"] = _static_row(res, search, len(candidates), limit)
    _dynamic_gain(out, own, attacker)
    return out
