"""The DynamicPTQ environment: API checks, budget, rewards, observations, errors."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from envs.ptq.env import DynamicPTQEnv
from models.quant import FP_BITS, kl_fp_q

# a tiny digits CNN, trained once per test session through the model cache (seconds)
KW = dict(dataset="digits", width=4, epochs=8, progress=False)


def make(env_id="deploygym/DynamicPTQ-v0", **kw):
    return gym.make(env_id, **{**KW, **kw})


def play(env, actions, seed=0, options=None):
    obs, info = env.reset(seed=seed, options=options)
    traj = [obs]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        traj.append(obs)
        if term:
            return traj, r, info
    raise AssertionError("episode did not end")


@pytest.mark.parametrize("env_id", envs.PTQ_IDS)
def test_gymnasium_and_sb3_checkers_pass_on_every_id(env_id):
    env = make(env_id, render_mode="rgb_array")
    check_env(env.unwrapped)
    sb3_check_env(env.unwrapped)
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3


def test_registration_is_idempotent():
    before = len(gym.registry)
    assert envs.register_ptq() == envs.PTQ_IDS
    assert envs.register_all() == envs.ALL_IDS
    assert len(gym.registry) == before
    assert gym.spec("deploygym/DynamicPTQJoint-v0").kwargs == {"action_mode": "joint"}


@pytest.mark.parametrize("mode", ["sequential", "joint", "continuous"])
def test_same_seed_same_episode(mode):
    env = make(action_mode=mode)
    acts = [env.action_space.sample() for _ in range(env.unwrapped.n_layers)]
    a, ra, ia = play(env, acts, seed=7)
    b, rb, ib = play(env, acts, seed=7)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)) and ra == rb
    assert ia["index"] == ib["index"] and np.array_equal(ia["bits"], ib["bits"])
    _, _, ic = play(env, acts, seed=8)
    assert ic["index"] != ia["index"]


def test_episode_outcome_matches_an_independent_computation():
    env = make()
    core = env.unwrapped.core
    qnet = env.unwrapped.res.qnet
    _, reward, info = play(env, [0, 6, 1, 5, 2, 4, 3], seed=3)
    assert reward == pytest.approx(info["r_fail"] + info["r_kl"] + info["r_drop"])
    x = env.unwrapped.res.split("train").images[info["index"]][None]
    with torch.no_grad():
        out = qnet(x, info["bits"][None], return_fp=True)
    kl = float(kl_fp_q(out.fp_logits, out.logits)[0])
    assert info["kl"] == pytest.approx(kl, rel=1e-4, abs=1e-6)
    assert info["fp_pred"] == int(out.fp_logits.argmax()) and info["q_pred"] == int(out.logits.argmax())
    assert info["label"] == int(env.unwrapped.res.split("train").labels[info["index"]])
    assert info["fp_correct"] == (info["fp_pred"] == info["label"])
    assert info["r_fail"] == float(info["fp_correct"] and not info["q_correct"])
    assert info["r_kl"] == pytest.approx(0.25 * min(kl, 5.0) / 5.0, rel=1e-4, abs=1e-7)
    assert info["mean_bits"] == pytest.approx(np.mean(info["bits"]))
    assert core.k[0] == core.L


def test_sparse_reward_is_the_failure_indicator():
    env = make("deploygym/DynamicPTQSparse-v0")
    for seed in range(5):
        _, r, info = play(env, [0] * 7, seed=seed)
        assert r == float(info["failure"]) and info["r_kl"] == 0 and info["r_drop"] == 0


def test_sequential_observation_holds_stats_under_the_bits_chosen_so_far():
    env = make()
    base = env.unwrapped
    obs, info = env.reset(seed=11)
    x = base.res.split("train").images[info["index"]][None]
    chosen = [2, 7, 3]
    for k, bits in enumerate(chosen):
        obs, *_ = env.step(base.cfg.bit_choices.index(bits))
        plan = np.full((1, base.n_layers), FP_BITS)
        plan[0, :k + 1] = chosen[:k + 1]
        with torch.no_grad():
            st = base.res.qnet(x, plan, return_stats=True).stats[0, k + 1].double().numpy()
        assert obs[0] == pytest.approx(np.log1p(st[1] - st[0]), rel=1e-4)
        assert obs[1] == pytest.approx(np.log1p(st[2]), rel=1e-4)
        assert obs[4 + k + 1] == 1.0 and obs[4:4 + base.n_layers].sum() == 1.0


def test_detrimental_budget_is_enforced_and_masked():
    env = make()
    base = env.unwrapped
    env.reset(seed=0)
    masks = []
    for _ in range(base.n_layers):
        masks.append(base.action_masks())
        *_, term, _, info = env.step(0)  # always ask for 2 bits
    assert info["mean_bits"] >= 4.0 and info["n_repaired"] > 0
    assert (info["requested_bits"] == 2).all()
    assert masks[0].all() and not masks[-1][0]  # the last layer cannot take 2 bits any more
    for mode in ("joint", "continuous"):
        e = make(action_mode=mode)
        e.reset(seed=0)
        low = np.zeros(7, dtype=np.int64) if mode == "joint" else -np.ones(7, np.float32)
        info = e.step(low)[-1]
        assert info["mean_bits"] == pytest.approx(4.0) and info["n_repaired"] == 14


def test_robust_budget_caps_the_mac_weighted_bits():
    env = make("deploygym/DynamicPTQRobust-v0")
    _, r, info = play(env, [6] * 7, seed=0)
    macs = env.unwrapped.res.qnet.layer_macs()
    assert info["cost_bits"] == pytest.approx(info["bits"] @ (macs / macs.sum()))
    assert info["cost_bits"] <= 4.0 + 1e-9 and info["n_repaired"] > 0
    assert r == pytest.approx(info["r_correct"] + info["r_bits"] + info["r_kl"])
    assert -0.1 <= info["r_bits"] <= 0


def test_reset_options_choose_the_example():
    env = make()
    _, info = env.reset(options={"split": "test", "index": 5})
    assert info["index"] == 5 and info["split"] == "test"
    with pytest.raises(ValueError, match="index"):
        env.reset(options={"index": 10**6})
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"idx": 1})


@pytest.mark.parametrize("mode,bad,err", [
    ("sequential", 7, ValueError), ("sequential", -1, ValueError),
    ("sequential", 1.0, TypeError), ("sequential", float("nan"), ValueError),
    ("sequential", np.array([1, 2]), ValueError),
    ("joint", np.zeros(6, dtype=np.int64), ValueError),
    ("joint", np.full(7, 7), ValueError), ("joint", np.zeros(7, np.float32), TypeError),
    ("continuous", np.full(7, 1.5, np.float32), ValueError),
    ("continuous", np.full(7, np.nan, np.float32), ValueError),
    ("continuous", np.zeros(3, np.float32), ValueError),
])
def test_invalid_actions_raise_clear_errors(mode, bad, err):
    env = DynamicPTQEnv(action_mode=mode, **KW)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(env.action_space.sample())
    env.reset(seed=0)
    with pytest.raises(err, match="action"):
        env.step(bad)


@pytest.mark.parametrize("kwargs,err,match", [
    ({"bit_width": 4}, TypeError, "unknown options"),
    ({"action_mode": "both"}, ValueError, "action_mode"),
    ({"split": "dev"}, ValueError, "split"),
    ({"budget_bits": 9}, ValueError, "budget_bits"),
    ({"reward": "robust", "budget_bits": 1}, ValueError, "budget_bits"),
    ({"bit_choices": (2, 2, 4)}, ValueError, "bit_choices"),
    ({"bit_choices": (1, 4)}, ValueError, "bit_choices"),
    ({"kl_clip": 0}, ValueError, "kl_clip"),
    ({"weight_bits": 16}, ValueError, "weight_bits"),
])
def test_unknown_or_inconsistent_kwargs_raise(kwargs, err, match):
    with pytest.raises(err, match=match):
        DynamicPTQEnv(**{**KW, **kwargs})


def test_prebuilt_network_and_its_errors():
    base = DynamicPTQEnv(**KW)
    net, data = base.res.net, base.res.data
    env = DynamicPTQEnv(net=net, data=data, dataset="digits")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="cannot be combined with net"):
        DynamicPTQEnv(net=net, data=data, width=8)
    from models.nets import build_model

    other = build_model("cnn", num_classes=10, in_channels=1, image_size=(28, 28), width=2)
    with pytest.raises(ValueError, match="expects inputs"):
        DynamicPTQEnv(net=other, data=data)


def test_fp_cache_follows_in_place_network_updates():
    env = make()
    base = env.unwrapped
    obs0, info = env.reset(seed=4)
    with torch.no_grad():
        base.res.net.head.bias.add_(5.0 * torch.eye(base.res.net.num_classes)[0])
    obs1, _ = env.reset(seed=4)
    assert not np.allclose(obs0[-2:], obs1[-2:])  # FP confidence/margin recomputed
    with torch.no_grad():
        base.res.net.head.bias.sub_(5.0 * torch.eye(base.res.net.num_classes)[0])
    obs2, _ = env.reset(seed=4)
    np.testing.assert_allclose(obs0, obs2, atol=1e-6)


def test_maskable_ppo_trains_on_the_env():
    from sb3_contrib import MaskablePPO

    env = make()
    model = MaskablePPO("MlpPolicy", env, n_steps=32, batch_size=16, n_epochs=1, seed=0,
                        device="cpu")
    model.learn(64)
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, action_masks=env.unwrapped.action_masks())
    assert env.action_space.contains(np.int64(action))


def test_released_resources_are_rebuilt():
    from envs.ptq.resources import release_resources

    env = DynamicPTQEnv(**KW)
    net = env.res.net
    hooked = DynamicPTQEnv(net=net, data=env.res.data)
    assert DynamicPTQEnv(net=net, data=env.res.data).res is hooked.res  # shared, one quantizer
    release_resources(net)
    assert all(len(m._forward_pre_hooks) == 1 for _, m in net.quantizable_layers())  # env's own
    again = DynamicPTQEnv(net=net, data=env.res.data)
    assert again.res is not hooked.res
    _, _, info = play(again, [0] * 7, seed=1)
    assert info["mean_bits"] >= 4


@pytest.mark.parametrize(("kw", "message"), [
    ({"budget_bits": "abc"}, "budget_bits must be a number"),
    ({"kl_weight": "abc"}, "kl_weight must be a number"),
    ({"dense": "abc"}, "dense must be a boolean"),
    ({"per_channel": "maybe"}, "per_channel must be a boolean"),
    ({"width": 2.5}, "width must be an integer"),
    ({"budget_bits": -3}, r"must lie between the smallest and largest bit choice"),
    ({"budget_bits": 9, "reward": "robust"}, r"must lie between"),
])
def test_bad_option_values_name_the_option(kw, message):
    from envs.ptq.config import make_config

    with pytest.raises((TypeError, ValueError), match=message):
        make_config(kw, has_net=False)


def test_boolean_options_parse_words_and_never_keep_strings():
    from envs.ptq.config import make_config

    assert make_config({"per_channel": "no", "dense": "YES"}, has_net=False).per_channel is False
    assert make_config({"per_channel": "no", "dense": "YES"}, has_net=False).dense is True
    assert make_config({"budget_bits": "5"}, has_net=False).budget_bits == 5.0
