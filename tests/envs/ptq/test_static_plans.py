"""Static plans on a DynamicPTQ network: evaluation, the budget frontier, the search, the floor."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from envs.ptq.baselines import BaselineAgent, UniformPolicy
from envs.ptq.budget import Budget
from envs.ptq.rollout import env_parts, split_rollout
from envs.ptq.static_plans import best_static_plan, evaluate_static, frontier
from models.quant import evaluate_plan

KW = dict(dataset="digits", width=4, epochs=8, progress=False, action_mode="joint",
          bit_choices=(4, 5, 6), budget_bits=5.0)


@pytest.fixture(scope="module")
def parts():
    return env_parts(KW)


def test_evaluate_static_matches_an_independent_evaluation(parts):
    cfg, res = parts
    plan = [4, 5, 6, 4, 6, 5, 5]
    got = evaluate_static(res, plan, "val")
    split = res.split("val")
    ref = evaluate_plan(res.qnet, split.images, split.labels, np.asarray(plan))
    assert got["n"] == len(split.labels)
    assert got["fp_acc"] == pytest.approx(100 * ref["fp_acc"])
    assert got["drop"] == pytest.approx(100 * ref["drop"])


def test_frontier_is_every_plan_with_the_least_total_the_budget_allows(parts):
    cfg, res = parts
    budget = Budget(cfg, res.qnet.layer_macs())
    front = frontier(budget, 7)
    brute = [p for p in itertools.product((4, 5, 6), repeat=7) if sum(p) == 35]
    assert sorted(map(tuple, front)) == sorted(brute)
    assert (front.mean(axis=1) >= 5 - 1e-9).all()


def test_search_is_exhaustive_on_a_small_frontier_and_bounded_otherwise(parts):
    cfg, res = parts
    budget = Budget(cfg, res.qnet.layer_macs())
    best = best_static_plan(res, budget, split="val", limit=60, max_evals=400)
    assert best.method == "exhaustive" and best.n_evals == len(frontier(budget, 7))
    drops = [evaluate_static(res, p, "val", 60)["drop"] for p in frontier(budget, 7)]
    assert best.drop == pytest.approx(max(drops))
    small = best_static_plan(res, budget, split="val", limit=60, max_evals=25, seed=1)
    assert small.method == "greedy + restarts" and small.n_evals <= 25
    assert np.mean(small.plan) >= 5 - 1e-9 and set(small.plan) <= {4, 5, 6}
    assert small.drop == pytest.approx(evaluate_static(res, small.plan, "val", 60)["drop"])
    assert small.drop >= evaluate_static(res, [6] * 7, "val", 60)["drop"]  # its start


def test_candidate_plans_compete_with_the_search_and_infeasible_ones_are_dropped(parts):
    cfg, res = parts
    budget = Budget(cfg, res.qnet.layer_macs())
    small = best_static_plan(res, budget, split="val", limit=60, max_evals=3, seed=1)
    front = frontier(budget, 7)
    drops = np.asarray([evaluate_static(res, p, "val", 60)["drop"] for p in front])
    winner = front[int(drops.argmax())]
    assert drops.max() > small.drop  # a 3-evaluation search misses the best frontier plan
    got = best_static_plan(res, budget, split="val", limit=60, max_evals=3, seed=1,
                           candidates=np.stack([winner, np.full(7, 4)]))  # all-4 breaks budget
    assert got.plan == winner.tolist() and got.method.endswith("+ candidates")
    assert got.drop == pytest.approx(drops.max())
    assert got.n_evals <= 3 + 1  # the search's budget plus the one feasible candidate


def test_a_plan_below_the_floor_is_rejected_with_a_clear_error(parts):
    cfg, res = parts
    with pytest.raises(ValueError, match="floor 4 bits"):
        split_rollout(cfg, res, None, "val", 10,
                      make_agent=lambda env: BaselineAgent(UniformPolicy(2), env))
