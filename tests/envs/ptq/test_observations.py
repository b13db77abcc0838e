"""DynamicPTQ's observation options: shapes, determinism, checkers, the probe against a
brute-force computation, vector envs and a pair whose policy reads the image."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs  # noqa: F401  (registers the ids)
from envs.ptq.env import DynamicPTQEnv
from models.quant import FP_BITS

KW = {"dataset": "digits", "bit_choices": (2, 4, 8), "budget_bits": 4.0, "progress": False}


def make(net, digits, **kw):
    return DynamicPTQEnv(net=net, data=digits, **KW, **kw)


@pytest.mark.parametrize("mode", ["joint", "sequential"])
@pytest.mark.parametrize("observation", ["stats", "probe", "query", "image"])
def test_observations_have_the_documented_shapes_and_pass_both_checkers(
        tiny_digits_net, digits, observation, mode):
    env = make(tiny_digits_net, digits, observation=observation, action_mode=mode)
    n_layers = env.n_layers
    base = 3 * n_layers + 2 if mode == "joint" else 4 + n_layers + 5
    obs, info = env.reset(seed=3)
    if observation == "image":
        assert isinstance(env.observation_space, spaces.Dict)
        assert obs["stats"].shape == (base,) and obs["image"].shape == (1, 8, 8)
        expected = digits.train.images[info["index"]].numpy()
        np.testing.assert_array_equal(obs["image"], np.clip(expected, -10, 10))
    else:
        extra = 3 * n_layers if observation in ("probe", "query") else 0
        assert env.observation_space.shape == obs.shape == (base + extra,)
    assert env.observation_space.contains(obs)
    with warnings.catch_warnings():  # SB3 warns that a float image is not a uint8 picture
        warnings.simplefilter("ignore", UserWarning)
        check_env(env, skip_render_check=True)
        sb3_check_env(make(tiny_digits_net, digits, observation=observation, action_mode=mode))


@pytest.mark.parametrize("observation", ["probe", "query", "image"])
def test_same_seed_same_observations(tiny_digits_net, digits, observation):
    def episode(seed):
        env = make(tiny_digits_net, digits, observation=observation, action_mode="joint")
        obs, _ = env.reset(seed=seed)
        return obs if observation != "image" else np.concatenate([obs["image"].ravel(),
                                                                  obs["stats"]])
    np.testing.assert_array_equal(episode(7), episode(7))
    assert not np.array_equal(episode(7), episode(8))


def test_probe_equals_one_layer_at_a_time_brute_force(tiny_digits_net, digits):
    env = make(tiny_digits_net, digits, observation="probe", action_mode="joint")
    probe = env.reset(options={"split": "val", "index": 5})[0][-3 * env.n_layers:]
    x = digits.val.images[5:6]
    qnet = env.res.qnet
    with torch.no_grad():
        p = torch.softmax(tiny_digits_net(x).double(), 1)[0]
        c = int(p.argmax())
        expected = []
        for layer in range(env.n_layers):
            plan = [FP_BITS] * env.n_layers
            plan[layer] = 2  # the lowest bit choice
            q = torch.softmax(qnet(x, plan).logits.double(), 1)[0]
            kl = float((p * (p.log() - q.log())).sum())
            expected += [np.log1p(max(kl, 0.0)), float(p[c] - q[c]), float(int(q.argmax()) != c)]
    np.testing.assert_allclose(probe, expected, atol=1e-5)
    from envs.ptq.observations.probe import layer_plans

    many = env.res.probe("val", np.arange(60), layer_plans(env.n_layers, 2)).numpy()
    assert many[..., 2].any() and not many[..., 2].all()  # some inputs flip, not all


def test_query_features_are_the_inputs_reaction_to_whole_plans_within_budget(
        tiny_digits_net, digits):
    env = make(tiny_digits_net, digits, observation="query", action_mode="joint",
               query_plans=5)
    plans = env.core.extras.plans
    assert plans.shape == (5, env.n_layers) and len({tuple(p) for p in plans.tolist()}) == 5
    assert (env.core.budget.cost(plans) >= 4.0 - 1e-9).all()  # each one a plan the agent may pick
    query = env.reset(options={"split": "test", "index": 3})[0][-15:]
    x = digits.test.images[3:4]
    with torch.no_grad():
        p = torch.softmax(tiny_digits_net(x).double(), 1)[0]
        c = int(p.argmax())
        flips = [float(int(env.res.qnet(x, plan).logits.argmax()) != c) for plan in plans]
    np.testing.assert_array_equal(query[2::3], flips)


def test_probe_cache_follows_in_place_network_updates(digits):
    from models.zoo import get_trained

    net = get_trained("digits", "cnn", progress=False, width=4, epochs=2)
    env = make(net, digits, observation="probe", action_mode="joint")
    before = env.reset(options={"split": "val", "index": 0})[0]
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(0.5)
    after = env.reset(options={"split": "val", "index": 0})[0]
    assert not np.allclose(before[-3 * env.n_layers:], after[-3 * env.n_layers:])


def test_vector_envs_with_image_observations_equal_single_envs(tiny_digits_net, digits):
    from agents.vec import PTQVecEnv

    kw = {**KW, "observation": "image", "action_mode": "joint"}
    singles = [DynamicPTQEnv(net=tiny_digits_net, data=digits, **kw) for _ in range(3)]
    vec = gym.make_vec("deploygym/DynamicPTQ-v0", num_envs=3, net=tiny_digits_net, data=digits,
                       **kw)
    sb3 = PTQVecEnv(3, net=tiny_digits_net, data=digits, **kw)
    sb3.seed(10)
    obs_v, _ = vec.reset(seed=10)
    obs_s = sb3.reset()
    for i, env in enumerate(singles):
        o, _ = env.reset(seed=10 + i)
        for key in ("image", "stats"):
            np.testing.assert_array_equal(obs_v[key][i], o[key])
            np.testing.assert_array_equal(obs_s[key][i], o[key])
    actions = np.zeros((3, singles[0].n_layers), dtype=np.int64)
    _, _, _, _, _ = vec.step(actions)
    nxt, _, dones, infos = sb3.step(actions)
    assert dones.all() and set(infos[0]["terminal_observation"]) == {"image", "stats"}
    assert nxt["image"].shape == (3, 1, 8, 8)


def test_a_pair_policy_reads_the_image_and_reloads(tmp_path):
    from agents.pairs.extractors import InputCNN
    from agents.pairs.trainer import load_pair, main
    from envs.ptq.rollout import env_parts, split_rollout

    out = tmp_path / "attack"
    main(["--dataset", "digits", "--model-kw", "width:4", "epochs:2", "--n-envs", "8",
          "--policy-steps", "64", "--round-eval", "20", "--eval-limit", "40", "--no-progress",
          "--attack", "standard", "--rounds", "1", "--observation", "image", "--out", str(out)])
    pair = load_pair(out)
    assert pair.env_kwargs["observation"] == "image"
    assert isinstance(pair.policy.policy.features_extractor, InputCNN)
    cfg, res = env_parts(pair.env_kwargs, pair.net, pair.data)
    first = split_rollout(cfg, res, pair.policy, "test", 40)
    again = split_rollout(cfg, res, load_pair(out).policy, "test", 40)
    np.testing.assert_array_equal(first["bits"], again["bits"])


def test_query_plans_given_as_plans_are_the_ones_probed_and_bad_ones_are_refused(
        tiny_digits_net, digits):
    base = make(tiny_digits_net, digits, observation="query", action_mode="joint",
                query_plans=3)
    chosen = base.core.extras.plans[::-1].tolist()  # a caller's own plans, as JSON gives them
    env = make(tiny_digits_net, digits, observation="query", action_mode="joint",
               query_plans=chosen)
    np.testing.assert_array_equal(env.core.extras.plans, chosen)
    a = base.reset(options={"split": "test", "index": 3})[0][-9:].reshape(3, 3)
    b = env.reset(options={"split": "test", "index": 3})[0][-9:].reshape(3, 3)
    np.testing.assert_array_equal(b, a[::-1])
    L = env.n_layers
    for bad, match in (([[4] * (L - 1)], "one bit-width per quantized layer"),
                       ([[3] * L], r"bit-widths \[3\] are not in bit_choices"),
                       ([[4] * L, [4] * (L - 1)], "equal length"), ([[4.5] * L], "equal length"),
                       (-1, "int ≥ 0"), ([], "int ≥ 0")):
        with pytest.raises(ValueError, match=match):
            make(tiny_digits_net, digits, observation="query", action_mode="joint",
                 query_plans=bad)
