"""Vectorised environments for training: SB3's Dummy/Subproc loops or an env's own batched one.

:class:`PTQVecEnv` is the Stable-Baselines3 ``VecEnv`` of DynamicPTQ with the semantics of
``DummyVecEnv([lambda: DynamicPTQEnv(**kw)] * N)``: same seeds (``seed + i``), same auto-reset
(in the same step, ``terminal_observation`` in ``info``), same trajectories, but one batched
forward per step. :class:`agents.vec_distill.DistillSourceVecEnv` does the same for
DistillSource with grouped students. They live here, not in ``envs``, so that ``envs`` does not
import SB3.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import SubprocVecEnv, VecEnv, VecMonitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn
from torch import nn

import envs  # registers the deploygym ids
from agents.vec_distill import DistillSourceVecEnv
from envs.ptq.vector import BatchedPTQ
from envs.registry import env_options
from models.datasets import DatasetSplits

VEC_ENVS = ("batched", "dummy", "subproc")


class PTQVecEnv(BatchedPTQ, VecEnv):
    """SB3 ``VecEnv`` of ``num_envs`` DynamicPTQ episodes (keyword arguments as
    :class:`envs.ptq.DynamicPTQEnv`)."""

    def __init__(self, num_envs: int, *, net: nn.Module | None = None,
                 data: DatasetSplits | None = None, **kwargs: Any) -> None:
        self._setup(num_envs, net, data, kwargs)
        self.render_mode = self.cfg.render_mode
        VecEnv.__init__(self, int(num_envs), self.single_obs_space, self.single_act_space)
        self.metadata = {"render_modes": ["rgb_array"], "render_fps": 4}
        self._actions: Any = None

    def reset(self) -> np.ndarray:
        obs, infos = self._reset_ids(self.all_ids, self._seeds,
                                     [o or None for o in self._options])
        self.reset_infos = infos
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.core.step(self._actions, self.all_ids)
        for info in infos:
            info["TimeLimit.truncated"] = False
        done_ids = np.flatnonzero(dones)
        if len(done_ids):
            for i in done_ids:
                infos[i]["terminal_observation"] = obs[i]
            new_obs, reset_infos = self._reset_ids(done_ids, [None] * len(done_ids),
                                                   [None] * len(done_ids))
            obs = obs.copy()
            obs[done_ids] = new_obs
            for i, ri in zip(done_ids, reset_infos, strict=True):
                self.reset_infos[i] = ri
        return obs, rewards.astype(np.float32), dones.copy(), infos

    def close(self) -> None:
        pass

    def _indices(self, indices: None | int | Iterable[int]) -> list[int]:
        return list(self._get_indices(indices))

    def get_attr(self, attr_name: str, indices: None | int | Iterable[int] = None) -> list[Any]:
        target = self.cfg if hasattr(self.cfg, attr_name) else self
        return [getattr(target, attr_name) for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: None | int | Iterable[int] = None) -> None:
        raise AttributeError(f"PTQVecEnv shares one configuration across its episodes; "
                             f"cannot set {attr_name!r} per episode")

    def env_method(self, method_name: str, *method_args: Any,
                   indices: None | int | Iterable[int] = None, **method_kwargs: Any) -> list[Any]:
        idx = self._indices(indices)
        if method_name == "action_masks":
            return list(self.core.action_masks(np.asarray(idx)))
        if method_name == "render":
            return [self._frame(i) for i in idx]
        raise AttributeError(f"PTQVecEnv supports env_method('action_masks'|'render'), "
                             f"not {method_name!r}")

    def env_is_wrapped(self, wrapper_class: type, indices: None | int | Iterable[int] = None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        if self.render_mode != "rgb_array":
            return [None for _ in self.all_ids]
        return [self._frame(i) for i in self.all_ids]


#: The SB3 ``VecEnv`` that steps N episodes of an env together, by the env's entry point.
BATCHED_VEC_ENVS: dict[str, type[VecEnv]] = {
    "envs.ptq:DynamicPTQEnv": PTQVecEnv,
    "envs.distill_source:DistillSourceEnv": DistillSourceVecEnv,
}
#: Entry points whose batched VecEnv is the default (measured much faster than N env loops);
#: DistillSource's grouped students are not (``kd_source_batched.json``), so it is opt-in.
DEFAULT_BATCHED = frozenset({"envs.ptq:DynamicPTQEnv"})


def batched_vec_class(env_id: str) -> type[VecEnv] | None:
    """The SB3 ``VecEnv`` class that steps ``env_id``'s episodes together, if any."""
    return BATCHED_VEC_ENVS.get(str(envs.check_id(env_id).entry_point))


def default_vec_env(env_id: str) -> str:
    """``batched`` where the batched VecEnv is the faster one (DynamicPTQ), else ``dummy``."""
    return "batched" if str(envs.check_id(env_id).entry_point) in DEFAULT_BATCHED else "dummy"


def make_training_env(env_id: str, n_envs: int, seed: int, env_kwargs: dict[str, Any],
                      vec_env: str | None = None) -> VecEnv:
    """``n_envs`` copies of ``env_id`` seeded ``seed, seed + 1, ...``, with episode
    statistics (``Monitor`` per env, ``VecMonitor`` around a batched env) so SB3 logs
    ``rollout/ep_rew_mean``. ``vec_env`` ``None``: :func:`default_vec_env`."""
    envs.check_id(env_id)
    vec_env = vec_env or default_vec_env(env_id)
    if vec_env not in VEC_ENVS:
        raise ValueError(f"vec_env must be one of {VEC_ENVS}, got {vec_env!r}")
    if vec_env == "batched":
        cls = batched_vec_class(env_id)
        if cls is None:
            raise ValueError(f"{env_id} has no batched VecEnv; use --vec-env dummy or subproc")
        venv = cls(n_envs, **env_options(env_id, env_kwargs))  # the variant's options too
        venv.seed(seed)
        return VecMonitor(venv)
    if vec_env == "dummy":
        return make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs)
    if ":" not in env_id:
        # SubprocVecEnv workers (forkserver/spawn) never import envs, so they would not know
        # the deploygym ids: "module:id" makes gym.make import the registering package first.
        env_id = f"{str(gym.spec(env_id).entry_point).split(':')[0].split('.')[0]}:{env_id}"
    return make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs,
                        vec_env_cls=SubprocVecEnv)
