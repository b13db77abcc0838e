"""DynamicPTQ's ``menu`` action: one of the query plans per input, in one step."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from envs.ptq.baselines import BaselineAgent, QueryArgmaxAgent, UniformPolicy
from envs.ptq.env import DynamicPTQEnv

KW = {"dataset": "digits", "bit_choices": (2, 4, 8), "budget_bits": 4.0, "progress": False}
MENU = ((4, 4, 4), (2, 8, 8), (8, 2, 8), (8, 8, 2), (2, 2, 2))  # the last is under the budget


def make(net, digits, **kw):
    return DynamicPTQEnv(net=net, data=digits, **KW, **kw)


def test_menu_plays_the_chosen_query_plan_and_passes_both_checkers(tiny_digits_net, digits):
    n_layers = make(tiny_digits_net, digits).n_layers
    menu = tuple(p[:1] * (n_layers - 3) + p for p in MENU)
    env = make(tiny_digits_net, digits, observation="query", query_plans=menu,
               action_mode="menu")
    assert env.action_space == spaces.Discrete(len(menu))
    obs, _ = env.reset(seed=1)
    assert obs.shape == (3 * n_layers + 2 + 3 * len(menu),)
    np.testing.assert_array_equal(env.unwrapped.core.action_masks(np.arange(1)),
                                  np.ones((1, len(menu)), dtype=bool))
    joint = make(tiny_digits_net, digits, observation="query", query_plans=menu,
                 action_mode="joint")
    for a in range(len(menu)):
        env.reset(seed=5)
        joint.reset(seed=5)
        _, r, done, _, info = env.step(a)
        choice = np.searchsorted(KW["bit_choices"], menu[a])
        _, r_joint, _, _, info_joint = joint.step(choice)
        assert done and r == r_joint
        np.testing.assert_array_equal(info["bits"], info_joint["bits"])
        np.testing.assert_array_equal(info["requested_bits"], menu[a])
    assert info["n_repaired"] > 0 and info["mean_bits"] >= KW["budget_bits"]  # repaired
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=False)


def test_the_query_rule_acts_in_menu_mode_as_in_joint_mode(tiny_digits_net, digits):
    kw = {"observation": "query", "query_plans": 4}
    menu = make(tiny_digits_net, digits, action_mode="menu", **kw)
    joint = make(tiny_digits_net, digits, action_mode="joint", **kw)
    plans = menu.unwrapped.core.extras.plans
    by_index = QueryArgmaxAgent(plans, KW["bit_choices"], menu=True)
    by_bits = QueryArgmaxAgent(plans, KW["bit_choices"])
    for i in range(6):
        obs, _ = menu.reset(options={"split": "val", "index": i})
        obs_joint, _ = joint.reset(options={"split": "val", "index": i})
        a, _ = by_index.predict(obs)
        b, _ = by_bits.predict(obs_joint)
        np.testing.assert_array_equal(menu.step(a)[4]["bits"], joint.step(b)[4]["bits"])


def test_menu_refuses_other_observations_bad_actions_and_free_plan_baselines(
        tiny_digits_net, digits):
    with pytest.raises(ValueError, match="observation='query'"):
        make(tiny_digits_net, digits, action_mode="menu")
    env = make(tiny_digits_net, digits, observation="query", query_plans=3, action_mode="menu")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        env.step(3)
    with pytest.raises(TypeError, match="integer"):
        env.step(0.5)
    with pytest.raises(ValueError, match="action_mode='joint'"):
        BaselineAgent(UniformPolicy(4), env)
