"""Vectorised environments for training: SB3's Dummy/Subproc loops or an env's own batched one."""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import SubprocVecEnv, VecEnv

import envs  # noqa: F401  (registers the deploygym ids)

VEC_ENVS = ("batched", "dummy", "subproc")


def batched_vec_class(env_id: str) -> type[VecEnv] | None:
    """The SB3 ``VecEnv`` class an env id ships for one-forward batched stepping, if any.

    Convention: the module of the id's Gymnasium ``vector_entry_point`` names its SB3
    counterpart ``SB3_VEC_ENV``.
    """
    entry = gym.spec(env_id).vector_entry_point
    if not isinstance(entry, str):
        return None
    module = importlib.import_module(entry.split(":")[0])
    return getattr(module, "SB3_VEC_ENV", None)


def make_training_env(env_id: str, n_envs: int, seed: int, env_kwargs: dict[str, Any],
                      vec_env: str = "dummy") -> VecEnv:
    """``n_envs`` copies of ``env_id`` seeded ``seed, seed + 1, ...``."""
    if vec_env not in VEC_ENVS:
        raise ValueError(f"vec_env must be one of {VEC_ENVS}, got {vec_env!r}")
    gym.spec(env_id)  # raises a clear error for unknown ids
    if vec_env == "batched":
        cls = batched_vec_class(env_id)
        if cls is None:
            raise ValueError(f"{env_id} has no batched VecEnv; use --vec-env dummy or subproc")
        venv = cls(n_envs, **env_kwargs)
        venv.seed(seed)
        return venv
    if vec_env == "dummy":
        return make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs)
    if ":" not in env_id:
        # SubprocVecEnv workers (forkserver/spawn) never import envs, so they would not know
        # the deploygym ids: "module:id" makes gym.make import the registering package first.
        env_id = f"{str(gym.spec(env_id).entry_point).split(':')[0].split('.')[0]}:{env_id}"
    return make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs,
                        vec_env_cls=SubprocVecEnv)
