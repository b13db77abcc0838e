"""Every path that builds a DynamicPTQ id builds the same env: its registered variant options.

gym.make, the whole-split rollouts of the analysis (envs.ptq.rollout.env_parts), the batched
training VecEnv, the picklable EnvFactory of agents.episodes and the analysis hook agree on
reward mode, budget and spaces for every variant id.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs
from agents.analysis.hooks import HookContext
from agents.analysis.ptq import ptq_analysis
from agents.episodes import EnvFactory
from agents.vec import make_training_env
from envs.ptq.core import PTQCore
from envs.ptq.env import make_spaces
from envs.ptq.rollout import env_parts
from envs.registry import accepts_option, env_options, family_of

TINY = dict(dataset="digits", width=4, epochs=8, progress=False)
CFG_KEYS = ("reward", "action_mode", "dense", "budget_bits", "budget_cost", "budget_kind",
            "bit_choices")


def test_env_options_merge_the_variant_with_the_callers_options():
    assert env_options("deploygym/DynamicPTQRobust-v0", {"budget_bits": 3}) == {
        "reward": "robust", "budget_bits": 3}
    assert env_options("deploygym/DynamicPTQRobust-v0", {"reward": "detrimental"}) == {
        "reward": "detrimental"}  # the caller wins
    assert env_options("deploygym/DynamicPTQJoint-v0") == {"action_mode": "joint"}
    with pytest.raises(ValueError, match="unknown environment id"):
        env_options("deploygym/NoSuchEnv-v0")
    assert family_of("deploygym/DynamicPTQJoint-v0") == "DynamicPTQ"
    assert family_of("CartPole-v1") is None
    assert accepts_option("deploygym/DynamicPTQ-v0", "device")
    assert accepts_option("deploygym/DynamicPTQ-v0", "split")
    assert not accepts_option("deploygym/DistillSource-v0", "split")
    assert not accepts_option("CartPole-v1", "device")
    with pytest.raises(ValueError, match="not a DynamicPTQ id"):
        env_parts(TINY, env_id="deploygym/DistillSource-v0")


def _cfg(cfg) -> dict:
    return {k: getattr(cfg, k) for k in CFG_KEYS}


@pytest.mark.parametrize("env_id", envs.PTQ_IDS)
def test_every_path_builds_the_ids_variant(env_id):
    made = gym.make(env_id, **TINY).unwrapped
    want = _cfg(made.cfg)
    for k, v in gym.spec(env_id).kwargs.items():  # the variant's options reached the env
        assert want[k] == v
    cfg, res = env_parts(TINY, env_id=env_id)
    spaces = make_spaces(cfg, PTQCore(cfg, res, 1))
    venv = make_training_env(env_id, 2, 0, TINY, "batched").venv
    factory = EnvFactory(env_id, TINY)().unwrapped
    for name, c, (obs, act) in (("env_parts", cfg, spaces),
                                ("batched VecEnv", venv.cfg,
                                 (venv.observation_space, venv.action_space)),
                                ("EnvFactory", factory.cfg,
                                 (factory.observation_space, factory.action_space))):
        assert _cfg(c) == want, name
        assert obs == made.observation_space and act == made.action_space, name


class _JointProbe:
    """A 'trained' joint agent: checks it is shown joint observations, asks for 8 bits."""

    policy = "probe"

    def __init__(self, obs_dim: int, n_layers: int, top: int) -> None:
        self.obs_dim, self.n_layers, self.top = obs_dim, n_layers, top

    def predict(self, obs, deterministic=True, action_masks=None):
        assert obs.shape[1] == self.obs_dim, f"got observations of shape {obs.shape}"
        return np.full((len(obs), self.n_layers), self.top), None


def test_analysis_hook_builds_the_variant(tmp_path):
    joint = gym.make("deploygym/DynamicPTQJoint-v0", **TINY).unwrapped
    probe = _JointProbe(joint.observation_space.shape[0], joint.n_layers, 6)
    ctx = HookContext("deploygym/DynamicPTQJoint-v0", dict(TINY), probe, tmp_path,
                      options={"limit": 20, "baselines": False}, progress=False)
    assert ptq_analysis(ctx)["policy"]["mean_bits"] == 8.0
    # a robust id is analysed with its maximum budget: the uniform baselines stay under it
    ctx = HookContext("deploygym/DynamicPTQRobust-v0", dict(TINY), None, tmp_path,
                      options={"limit": 20, "greedy_limit": 4}, progress=False)
    base = ptq_analysis(ctx)["baselines"]
    assert {k for k in base if k.startswith("uniform")} == {"uniform2", "uniform4"}
