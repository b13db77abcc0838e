"""The verdict of agents.evaluate: paired comparisons in words, on the same seeded episodes."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401
from agents.analysis.baselines import FAMILIES, fixed_source_action
from agents.episodes import rollout
from agents.verdict import compare, format_table, judge, mean_ci

TINY = dict(dataset="digits", width=4, epochs=8, progress=False)


def test_compare_says_who_won_in_words():
    rng = np.random.default_rng(0)
    base = rng.normal(size=40)
    noise = 0.1 * rng.normal(size=40)
    assert compare(base + 1 + noise, base, higher_is_better=True)["verdict"] == "beats"
    assert compare(base - 1 + noise, base, higher_is_better=True)["verdict"] == "does not beat"
    # lower is better (an error): a smaller error beats the baseline
    assert compare(base - 1 + noise, base, higher_is_better=False)["verdict"] == "beats"
    tie = compare(base + rng.normal(size=40), base, higher_is_better=True)
    assert tie["verdict"] == "not significant" and tie["p_value"] > 0.05
    same = compare(base, base, higher_is_better=True)
    assert same["identical"] and same["p_value"] == 1.0 and same["verdict"] == "not significant"
    shifted = compare(base + 0.5, base, higher_is_better=True)  # same gap on every episode
    assert shifted["p_value"] == 0.0 and shifted["verdict"] == "beats"
    assert shifted["gap"] == pytest.approx(0.5) and shifted["gap_ci95"][0] <= 0.5
    m, (lo, hi) = mean_ci(np.array([1.0, 2.0, 3.0]))
    assert m == 2.0 and lo < 2.0 < hi and hi - 2.0 == pytest.approx(2.0 - lo)
    with pytest.raises(ValueError, match="differ in length"):
        compare(base[:3], base, True)


class _PlayLayout:
    """An agent placing sensors at fixed cells in order (repaired by the env if taken)."""

    def __init__(self, cells):
        self.cells = list(cells)
        self.k = 0

    def reseed(self, seed):
        self.k = 0

    def predict(self, obs, deterministic=True):
        cell = self.cells[self.k % len(self.cells)]
        self.k += 1
        return np.int64(cell), None


@pytest.fixture(scope="module")
def sensor_env():
    from envs.sensors.env import SensorPlacementEnv
    from fields.netcdf import load_ferret
    from fields.pretrained import get_blocks

    blocks = get_blocks("coads-sst", data=load_ferret("coads-sst"), progress=False, coarsen=3)
    return SensorPlacementEnv(pretrained=blocks, estimator="gappy_pod", n_sensors=6, batch=2,
                              split="test")


def test_sensor_verdict_bad_layout_loses_and_qr_layout_ties(sensor_env):
    env, fam, seed = sensor_env, FAMILIES["SensorPlacement"], 7
    # every sensor pushed into one corner: clustered, far worse than QR or random layouts
    bad = rollout(env, _PlayLayout([0]), 12, seed, progress=False)
    v = judge(env, fam, bad["scalars"], seed, split="test", progress=False)
    assert v["metric"]["key"] == "rel_l2" and v["metric"]["direction"] == "lower is better"
    assert set(v["baselines"]) == {"random_layout", "qr_layout"}  # gappy POD: QR row once
    for name in ("random_layout", "qr_layout"):
        assert v["baselines"][name]["verdict"] == "does not beat", format_table(v)
        assert v["baselines"][name]["gap"] > 0  # the agent's error is larger
    assert "loses to random_layout, qr_layout" in format_table(v)
    # the agent that plays the QR layout is the QR baseline: identical episodes
    qr = rollout(env, _PlayLayout(env.qr_layout()), 12, seed, progress=False)
    v = judge(env, fam, qr["scalars"], seed, split="test", progress=False)
    row = v["baselines"]["qr_layout"]
    assert row["identical"] and row["verdict"] == "not significant" and row["gap"] == 0


def test_ptq_verdict_baselines_follow_the_ids_budget_and_agent_equal_to_one_ties():
    from envs.ptq.baselines import BaselineAgent, UniformPolicy

    env = gym.make("deploygym/DynamicPTQRobust-v0", **TINY, split="test")
    fam = FAMILIES["DynamicPTQ"]
    agent = BaselineAgent(UniformPolicy(4), env)  # uniform at the robust budget (≤ 4 bits)
    r = rollout(env, agent, 6, 11, progress=False)
    v = judge(env, fam, r["scalars"], 11, split="test", progress=False)
    assert v["metric"]["key"] == "return"  # robust: the env's return, higher is better
    # a maximum budget: uniform at the lowest bits and at the budget, no best static plan
    assert list(v["baselines"]) == ["uniform2", "uniform4", "random_budget", "greedy"]
    row = v["baselines"]["uniform4"]
    assert row["identical"] and row["verdict"] == "not significant" and row["p_value"] == 1.0
    assert v["series"]["uniform4"] == v["series"]["agent"]
    det = gym.make("deploygym/DynamicPTQ-v0", **TINY, split="test", budget_bits=5)
    r = rollout(det, BaselineAgent(UniformPolicy(8), det), 4, 11, progress=False)
    v = judge(det, fam, r["scalars"], 11, split="test", progress=False,
              options={"static_evals": 10, "static_limit": 30})
    assert v["metric"]["key"] == "drop" and v["series"]["agent"] == [0.0] * 4
    assert list(v["baselines"]) == ["uniform5", "random_budget", "greedy", "best_static"]
    assert "validation" in v["baselines"]["best_static"]["description"]


def test_fixed_source_actions_pick_one_source_in_every_action_space():
    from envs.distill_source.actions import decode_action, make_action_space
    from envs.distill_source.config import make_config

    for kw in ({}, {"action_mode": "mixture"}, {"control_augment": True, "control_attack": True},
               {"action_mode": "mixture", "control_augment": True, "attack": True,
                "control_attack": True}):
        cfg = make_config({"progress": False, **kw}, has_teacher=True)
        space = make_action_space(cfg)
        for k in range(cfg.n_sources):
            a = fixed_source_action(space, cfg, k)
            act = np.asarray(a, dtype=np.int64 if not isinstance(space, gym.spaces.Box)
                             else np.float32)
            assert space.contains(act if np.ndim(act) else np.int64(a))
            d = decode_action(act, cfg)
            assert d.source == k and d.weights[k] > 0.99
            assert d.augment == cfg.augment and d.attack == cfg.attack


def test_any_other_env_is_judged_on_its_return_without_baselines(tmp_path):
    from agents import evaluate

    rec = evaluate.main(["--env", "CartPole-v1", "--random", "--episodes", "3",
                         "--render-every", "0", "--no-progress", "--out", str(tmp_path)])
    v = rec["verdict"]
    assert v["metric"]["key"] == "return" and v["baselines"] == {}
    assert "no baseline definitions" in v["skipped"]
    assert v["agent"]["mean"] == pytest.approx(rec["summary"]["return"]["mean"])
    assert rec["split"] == "n/a"


def test_expensive_families_skip_baselines_unless_asked():
    from argparse import Namespace

    from agents.analysis.baselines import Family, key_metric
    from agents.evaluate import run_verdict

    played = []
    fam = Family("toy", lambda env: key_metric("return", "return", True),
                 lambda env, opts: played.append(opts) or [], expensive=True)
    env = gym.make("CartPole-v1")
    scalars = {"return": [1.0, 2.0, 3.0]}
    args = Namespace(baselines="auto", verdict_opts=None, seed=5, baseline_episodes=None,
                     no_progress=True)
    v = run_verdict(args, env, fam, scalars, "test")
    assert not played and "--baselines all" in v["skipped"] and v["agent"]["mean"] == 2.0
    args.baselines, args.baseline_episodes = "all", 2
    v = run_verdict(args, env, fam, scalars, "test")
    assert played == [{"seed": 5}] and v["skipped"] is None and v["episodes"] == 2


def test_distill_source_verdict_replays_each_fixed_source_on_the_agents_seeds(tmp_path):
    from agents import evaluate

    kw = ["pool_size:256", "probe_size:96", "stats_size:32", "eval_size:300", "phases:2",
          "updates_per_phase:3", "batch_size:32", "progress:false", "student_width:8",
          "student_depth:1", "sources:noise,leaves"]
    rec = evaluate.main(["--env", "deploygym/DistillSourceMixture-v0", "--env-kwargs", *kw,
                         "--random", "--episodes", "3", "--render-every", "0", "--no-progress",
                         "--baselines", "all", "--baseline-episodes", "2", "--out", str(tmp_path)])
    v = rec["verdict"]
    assert v["metric"]["key"] == "final_accuracy" and v["split"].startswith("test")
    assert list(v["baselines"]) == ["only_noise", "only_leaves", "uniform_mixture"]
    assert v["episodes"] == 2 and all(len(s) == 2 for s in v["series"].values())
    # the noise baseline is "noise every phase" played from the agent's episode seeds
    from agents.episodes import Constant, EnvFactory, run_episodes
    from models.cli import parse_kv

    make = EnvFactory("deploygym/DistillSourceMixture-v0", parse_kv(kw, "kw"))
    env = make()
    act = fixed_source_action(env.action_space, env.unwrapped.cfg, 0)
    eps = run_episodes(make, Constant(act), [1_000_000, 1_000_001], final_keys=["final_accuracy"])
    assert [e["final"]["final_accuracy"] for e in eps] == v["series"]["only_noise"]
