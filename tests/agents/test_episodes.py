"""Episodes in worker processes equal the same episodes run here; saved agents act as loaded;
the black-box search runs its trials in the pool."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from agents.blackbox import episode_return, static_mixture_search
from agents.episodes import (
    Constant,
    EnvFactory,
    SavedAgent,
    UniformRandom,
    episode_pool,
    run_episodes,
)

KW = dict(sources=["opengl", "noise"], pool_size=64, probe_size=32, eval_size=64, phases=3,
          updates_per_phase=2, student_width=8, student_depth=1, progress=False)


@pytest.fixture(scope="module")
def pool():
    with episode_pool(2) as ex:
        yield ex


@pytest.fixture(scope="module")
def kw(tmp_path_factory):
    kw = {**KW, "cache_dir": str(tmp_path_factory.mktemp("cache"))}
    gym.make("deploygym/DistillSourceMixture-v0", **kw).close()  # pools cached before workers
    return kw


def test_worker_episodes_equal_local_episodes(kw, pool):
    for env_id, policy in (("deploygym/DistillSource-v0", UniformRandom()),
                           ("deploygym/DistillSourceMixture-v0", Constant((0.5, -0.5)))):
        make = EnvFactory(env_id, kw)
        keys = dict(step_keys=("weights",), final_keys=("final_accuracy", "schedule"))
        seen_here, seen_there = [], []
        here = run_episodes(make, policy, [3, 4], on_done=seen_here.append, **keys)
        there = run_episodes(make, policy, [3, 4], pool, on_done=seen_there.append, **keys)
        assert seen_here == here  # every finished episode is handed over once
        assert sorted(seen_there, key=lambda e: e["seed"]) == there
        for a, b in zip(here, there, strict=True):
            assert a["seed"] == b["seed"] and a["steps"] == b["steps"]
            assert a["return"] == pytest.approx(b["return"], abs=1e-6)
            assert a["final"] == b["final"]
    # the random policy draws from the episode's own rng: seeds differ, schedules differ
    rand = run_episodes(EnvFactory("deploygym/DistillSource-v0", kw), UniformRandom(), range(6),
                        final_keys=("schedule",))
    assert len({tuple(e["final"]["schedule"]) for e in rand}) > 1


def test_saved_agent_acts_like_the_model_it_was_saved_from(kw, tmp_path):
    from stable_baselines3 import PPO

    from agents.policy_io import save_policy

    env = gym.make("deploygym/DistillSourceMixture-v0", **kw)
    model = PPO("MlpPolicy", env, n_steps=8, batch_size=8, seed=0, device="cpu")
    save_policy(model, "ppo", tmp_path)
    agent = SavedAgent(str(tmp_path))
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        want = model.predict(obs, deterministic=True)[0]
        got = agent(obs, np.random.default_rng(0), env)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
        obs, *_ = env.step(got)
    discrete = gym.make("deploygym/DistillSource-v0", **kw)
    save_policy(PPO("MlpPolicy", discrete, n_steps=8, batch_size=8, seed=0), "ppo", tmp_path / "d")
    assert isinstance(SavedAgent(str(tmp_path / "d"))(discrete.reset(seed=0)[0], None, discrete),
                      int)


def test_blackbox_trials_run_in_the_pool_and_score_their_own_episodes(kw, pool):
    make = EnvFactory("deploygym/DistillSourceMixture-v0", kw)
    out = static_mixture_search(make, n_trials=4, seed=1, episode_seed_base=50, executor=pool,
                                batch=2)
    assert len(out["history"]) == 4 and out["batch"] == 2
    assert len({tuple(h["action"]) for h in out["history"]}) == 4
    k = 2
    again, _ = episode_return(make(), np.array(out["history"][k]["action"], dtype=np.float32),
                              50 + k)
    assert again == pytest.approx(out["history"][k]["return"], abs=1e-6)
    assert out["best_return"] == max(h["return"] for h in out["history"])


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="workers"):
        episode_pool(0)
    with pytest.raises(ValueError, match="batch"):
        static_mixture_search(EnvFactory("deploygym/DistillSourceMixture-v0", KW), 1, batch=0)
