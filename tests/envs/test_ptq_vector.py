"""Batched vector envs reproduce N single envs; baseline policies."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import SyncVectorEnv
from stable_baselines3.common.vec_env import DummyVecEnv

import envs  # noqa: F401  (registers the ids)
from agents.vec import PTQVecEnv
from envs.ptq.baselines import (
    BaselineAgent,
    GreedySensitivityPolicy,
    RandomBudgetPolicy,
    UniformPolicy,
)
from envs.ptq.env import DynamicPTQEnv
from envs.ptq.vector import PTQVectorEnv
from models.quant import FP_BITS, kl_fp_q

KW = dict(dataset="digits", width=4, epochs=8, progress=False)
N = 6
OUTCOME = ("fp_pred", "q_pred", "label", "index", "fp_correct", "q_correct")


def _actions(space, steps, seed):
    space.seed(seed)
    return [np.stack([space.sample() for _ in range(N)]) for _ in range(steps)]


def _same_info(a, b):
    assert set(a) == set(b)
    for k in OUTCOME:
        assert a[k] == b[k], k
    assert np.array_equal(a["bits"], b["bits"])
    assert a["kl"] == pytest.approx(b["kl"], rel=1e-3, abs=1e-5)


@pytest.mark.parametrize("mode", ["sequential", "joint", "continuous"])
def test_sb3_batched_vec_env_matches_dummy_vec_env(mode):
    batched = PTQVecEnv(N, action_mode=mode, **KW)
    ref = DummyVecEnv([lambda: DynamicPTQEnv(action_mode=mode, **KW) for _ in range(N)])
    for v in (batched, ref):
        v.seed(123)
    np.testing.assert_array_equal(batched.reset(), ref.reset())
    assert batched.reset_infos == ref.reset_infos
    steps = 3 * batched.get_attr("n_layers")[0] if mode == "sequential" else 3
    finished = 0
    for a in _actions(ref.action_space, steps, seed=5):
        o1, r1, d1, i1 = batched.step(a)
        o2, r2, d2, i2 = ref.step(a)
        np.testing.assert_allclose(o1, o2, atol=1e-4)
        np.testing.assert_allclose(r1, r2, atol=1e-4)
        np.testing.assert_array_equal(d1, d2)
        for x, y, done in zip(i1, i2, d1, strict=True):
            if done:
                finished += 1
                _same_info(x, y)
                np.testing.assert_allclose(x["terminal_observation"], y["terminal_observation"],
                                           atol=1e-4)
        assert batched.reset_infos == ref.reset_infos
    assert finished == 3 * N


@pytest.mark.parametrize("autoreset", ["NextStep", "SameStep"])
def test_gymnasium_vector_env_matches_sync_vector_env(autoreset):
    kw = dict(action_mode="joint", **KW)
    batched = gym.make_vec("deploygym/DynamicPTQ-v0", num_envs=N, autoreset_mode=autoreset,
                           vectorization_mode="vector_entry_point", **kw)
    assert isinstance(batched, PTQVectorEnv)
    ref = SyncVectorEnv([lambda: DynamicPTQEnv(**kw) for _ in range(N)], autoreset_mode=autoreset)
    o1, i1 = batched.reset(seed=9)
    o2, i2 = ref.reset(seed=9)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(i1["index"], i2["index"])
    for a in _actions(ref.single_action_space, 5, seed=1):
        o1, r1, t1, _, i1 = batched.step(a)
        o2, r2, t2, _, i2 = ref.step(a)
        np.testing.assert_allclose(o1, o2, atol=1e-4)
        np.testing.assert_allclose(r1, r2, atol=1e-4)
        np.testing.assert_array_equal(t1, t2)
        assert set(i1) == set(i2)
        for key in ("q_pred", "fp_pred", "index", "_q_pred", "_index"):
            if key in i2:
                np.testing.assert_array_equal(i1[key], i2[key])
        if autoreset == "SameStep" and t2.any():
            np.testing.assert_array_equal(i1["final_info"]["q_pred"], i2["final_info"]["q_pred"])


def test_vec_env_masks_and_ppo_training():
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks

    venv = PTQVecEnv(4, **KW)
    venv.seed(0)
    venv.reset()
    for _ in range(6):
        venv.step(np.zeros(4, dtype=np.int64))
    masks = get_action_masks(venv)
    assert masks.shape == (4, 7) and not masks[:, 0].any() and masks[:, -1].all()
    model = MaskablePPO("MlpPolicy", PTQVecEnv(4, **KW), n_steps=16, batch_size=32,
                        n_epochs=1, seed=0, device="cpu")
    model.learn(64)
    assert model.num_timesteps == 64


def test_uniform_and_random_baselines_respect_their_contracts():
    venv = PTQVecEnv(16, **KW)
    venv.seed(0)
    infos = []
    for policy in (UniformPolicy(5), RandomBudgetPolicy()):
        agent = BaselineAgent(policy, venv, seed=0)
        obs = venv.reset()
        for _ in range(7):
            action, _ = agent.predict(obs)
            obs, _, dones, step_infos = venv.step(action)
        assert dones.all()
        infos.append(step_infos)
    assert all((i["bits"] == 5).all() and i["n_repaired"] == 0 for i in infos[0])
    random_bits = np.stack([i["bits"] for i in infos[1]])
    assert (random_bits.mean(1) >= 4 - 1e-9).all() and len(np.unique(random_bits)) > 3
    assert all(i["n_repaired"] == 0 for i in infos[1])  # it only picks feasible choices


def test_greedy_sensitivity_uses_true_per_layer_kl_and_beats_uniform():
    env = DynamicPTQEnv(reward="robust", **KW)
    res, budget = env.res, env.core.budget
    x = res.split("val").images[:48]
    policy = GreedySensitivityPolicy()
    bits = np.arange(2, 9)
    sens = policy.sensitivity(res.qnet, x, bits)
    plan = np.full((1, res.qnet.n_layers), FP_BITS)
    plan[0, 2] = 3
    with torch.no_grad():
        out = res.qnet(x[5:6], plan, return_fp=True)
    assert sens[5, 2, 1] == pytest.approx(float(kl_fp_q(out.fp_logits, out.logits)[0]),
                                          rel=1e-3, abs=1e-6)
    plans = policy.plans(res.qnet, x, budget, np.random.default_rng(0))
    cost = budget.cost(plans)
    assert (cost <= 4 + 1e-9).all() and (cost > 3.5).all()
    with torch.no_grad():
        fp = res.qnet(x, FP_BITS).logits
        kl_greedy = kl_fp_q(fp, res.qnet(x, plans).logits).mean()
        kl_random = kl_fp_q(fp, res.qnet(x, RandomBudgetPolicy().plans(
            res.qnet, x, budget, np.random.default_rng(0))).logits).mean()
    assert kl_greedy < kl_random
    harmful = GreedySensitivityPolicy("most").plans(res.qnet, x, budget, np.random.default_rng(0))
    with torch.no_grad():
        assert kl_fp_q(fp, res.qnet(x, harmful).logits).mean() > kl_greedy


@pytest.mark.parametrize(("arch", "weight_bits"), [("cnn", None), ("resnet8", 8)])
def test_sequential_prefix_reuse_equals_rerunning_the_prefix(arch, weight_bits):
    """Episodes at different layers in one core (some stepped more often than others):
    continuing from the kept activation gives the observations, rewards and outcomes of
    re-running the whole prefix each step."""
    from envs.ptq.core import PTQCore
    from envs.ptq.rollout import env_parts

    kw = dict(KW, arch=arch, epochs=2, weight_bits=weight_bits, bit_choices=(4, 5, 6, 8),
              budget_bits=5.0, action_mode="sequential")
    runs = []
    for reuse in (True, False):
        cfg, res = env_parts({**kw, "prefix_reuse": reuse})
        core = PTQCore(cfg, res, 4)
        rng = np.random.default_rng(0)
        obs, _ = core.reset(np.arange(4), [np.random.default_rng(i) for i in range(4)], [None] * 4)
        log = [obs]
        for t in range(4 * core.L):
            ids = np.flatnonzero(core.k < core.L)
            ids = ids[rng.random(len(ids)) < 0.7] if t % 3 else ids  # desynchronise
            if not len(ids):
                continue
            o, r, done, infos = core.step(rng.integers(0, 4, size=len(ids)), ids)
            log += [ids, o, r, done, [i.get("kl", 0.0) for i in infos],
                    [i.get("q_pred", -1) for i in infos]]
        runs.append(log)
    assert len(runs[0]) == len(runs[1]) > 10
    for a, b in zip(*runs, strict=True):
        np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float),
                                   rtol=1e-4, atol=1e-5)
