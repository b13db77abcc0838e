"""Per-input headroom: the batched oracle computation equals a brute-force loop."""

from __future__ import annotations

import numpy as np
import torch

from envs.ptq.budget import Budget
from envs.ptq.oracle import candidate_plans, oracle_gain, plan_outcomes
from envs.ptq.rollout import env_parts


def test_oracle_and_static_drops_equal_a_brute_force_loop(tiny_digits_net, digits):
    kw = {"dataset": "digits", "bit_choices": (2, 3, 4), "budget_bits": 3.0, "progress": False}
    cfg, res = env_parts(kw, tiny_digits_net, digits)
    budget = Budget(cfg, res.qnet.layer_macs())
    plans = candidate_plans(budget, res.qnet.n_layers, n=8, seed=1)
    assert len({tuple(p) for p in plans.tolist()}) == len(plans) <= 8
    assert (budget.cost(plans) >= 3.0 - 1e-9).all()
    out = oracle_gain(res, plans, val_limit=40, test_limit=50)

    def brute(split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = res.split(split).images[:n], res.labels(split)[:n]
        ok = np.zeros((len(plans), n), dtype=bool)
        with torch.no_grad():
            fp = np.array([int(tiny_digits_net(x[i:i + 1]).argmax()) == y[i] for i in range(n)])
            for p, plan in enumerate(plans):
                for i in range(n):
                    ok[p, i] = int(res.qnet(x[i:i + 1], plan).logits.argmax()) == y[i]
        return ok, fp

    q_val, fp_val = brute("val", 40)
    best = int(np.argmax(fp_val.mean() - q_val.mean(1)))
    q_test, fp_test = brute("test", 50)
    np.testing.assert_array_equal(plan_outcomes(res, plans, "test", 50)[0], q_test)
    assert out["best_static_plan"] == plans[best].tolist()
    assert np.isclose(out["static_drop"], 100 * (fp_test.mean() - q_test[best].mean()))
    oracle = 100 * (fp_test.mean() - np.mean([q_test[:, i].all() for i in range(50)]))
    assert np.isclose(out["oracle_drop"], oracle)
    assert np.isclose(out["oracle_gain"], oracle - out["static_drop"]) and out["oracle_gain"] >= 0


def test_robust_side_oracle_equals_a_brute_force_loop(tiny_digits_net, digits):
    from envs.ptq.oracle import robust_candidates, robust_oracle

    kw = {"dataset": "digits", "reward": "robust", "bit_choices": (2, 3, 4), "budget_bits": 3.0,
          "progress": False}
    cfg, res = env_parts(kw, tiny_digits_net, digits)
    budget = Budget(cfg, res.qnet.layer_macs())
    plans = robust_candidates(budget, res.qnet.n_layers, n=12, seed=2)
    assert len({tuple(p) for p in plans.tolist()}) == len(plans) == 12
    assert (budget.cost(plans) <= 3.0 + 1e-9).all() and [2] * res.qnet.n_layers in plans.tolist()
    out = robust_oracle(res, plans, budget, val_limit=40, test_limit=50)
    cost = budget.cost(plans)
    with torch.no_grad():
        def correct(split, n):
            x, y = res.split(split).images[:n], res.labels(split)[:n]
            return np.array([[int(res.qnet(x[i:i + 1], p).logits.argmax()) == y[i]
                              for i in range(n)] for p in plans])
        val, test = correct("val", 40), correct("test", 50)
    acc = val.mean(1)
    best = min(range(len(plans)), key=lambda p: (-acc[p], cost[p]))
    assert out["best_static_plan"] == plans[best].tolist()
    assert np.isclose(out["static_acc"], 100 * test[best].mean())
    per_input = []
    for i in range(50):
        ok = [p for p in range(len(plans)) if test[p, i]]
        per_input.append(min(cost[ok]) if ok else min(cost))
    assert np.isclose(out["oracle_cost_bits"], np.mean(per_input))
    assert np.isclose(out["oracle_acc"], 100 * test.any(0).mean())
    assert out["oracle_acc_gain"] >= 0


def test_learned_selector_finds_the_failing_plan_when_the_observation_shows_it():
    from envs.ptq.oracle import learned_selector

    rng = np.random.default_rng(0)
    n_plans, n = 4, 400

    def outcomes(which):  # input i fails only under plan which[i]; FP is always right
        q = np.ones((n_plans, n), dtype=bool)
        q[which, np.arange(n)] = False
        return q, np.ones(n, dtype=bool)

    w_val, w_test = rng.integers(n_plans, size=n), rng.integers(n_plans, size=n)
    onehot = np.eye(n_plans)
    seen = learned_selector(outcomes(w_val), outcomes(w_test), onehot[w_val], onehot[w_test])
    assert seen["drop"] == 100.0 and seen["distinct_plans"] == n_plans
    blind = learned_selector(outcomes(w_val), outcomes(w_test), rng.normal(size=(n, 3)),
                             rng.normal(size=(n, 3)))
    assert blind["drop"] < 50.0  # without the information, about one input in four


def test_query_attack_covers_validation_failures_greedily_and_reads_test_once():
    from envs.ptq.oracle import query_attack

    # plan 0 fails inputs 0-3, plan 1 inputs 3-5, plan 2 input 6, plan 3 nothing
    q = np.ones((4, 8), dtype=bool)
    q[0, :4] = q[1, 3:6] = q[2, 6] = False
    fp = np.ones(8, dtype=bool)
    one, two = query_attack((q, fp), (q, fp), 1), query_attack((q, fp), (q, fp), 2)
    assert one["plans"] == [0] and one["drop"] == 50.0
    assert two["plans"] == [0, 1] and two["drop"] == 75.0
    every = query_attack((q, fp), (q, fp), 10)
    assert every["plans"] == [0, 1, 2] and every["drop"] == 87.5  # plan 3 adds nothing


def test_query_rule_attacks_confident_inputs_and_spares_unsure_ones():
    from envs.ptq.baselines import QueryArgmaxAgent

    plans = np.array([[4, 8], [8, 4]])
    agent = QueryArgmaxAgent(plans, (4, 8), confident=0.8)
    n_layers = 2
    stats = np.zeros((2, 3 * n_layers + 2))
    stats[:, 3 * n_layers] = [0.95, 0.6]            # FP top-1 probability
    query = np.array([[0.1, 0.05, 0.0, 0.3, 0.2, 1.0]] * 2)  # plan 1 flips both inputs
    act, _ = agent.predict(np.concatenate([stats, query], axis=1))
    np.testing.assert_array_equal(act, [[1, 0], [0, 1]])  # confident: plan 1; unsure: plan 0
