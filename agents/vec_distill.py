"""SB3 ``VecEnv`` of DistillSource whose students train as one grouped network.

:class:`DistillSourceVecEnv` has the semantics of
``DummyVecEnv([lambda: DistillSourceEnv(**kw)] * N)`` seeded ``seed + i``: every episode
keeps its own env (generator, probe, reward), only the phase's student updates run as one
grouped forward/backward (:class:`envs.distill_source.vector.BatchedDistillSource`). Episodes
have a fixed number of phases, so all of them end, and are reset, in the same step
(``terminal_observation`` in ``info`` as SB3 expects). Opt in with ``--vec-env batched``;
on 2 CPU cores it is barely faster than one-by-one episodes
(``benchmarks/results/kd_source_batched.json``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn
from torch import nn

from envs.distill_source.vector import BatchedDistillSource
from models.datasets import DatasetSplits


class DistillSourceVecEnv(VecEnv):
    """``num_envs`` DistillSource episodes with grouped students (keyword arguments as
    :class:`envs.distill_source.DistillSourceEnv`; the student must be the plain CNN)."""

    def __init__(self, num_envs: int, *, teacher: nn.Module | None = None,
                 data: DatasetSplits | None = None, **kwargs: Any) -> None:
        self.batched = BatchedDistillSource(int(num_envs), teacher=teacher, data=data, **kwargs)
        self.render_mode = self.batched.cfg.render_mode
        super().__init__(int(num_envs), self.batched.observation_space,
                         self.batched.action_space)
        self.metadata = self.batched.envs[0].metadata
        self._actions: Any = None

    def reset(self) -> np.ndarray:
        obs, infos = self.batched.reset(list(self._seeds))
        self.reset_infos = infos
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.batched.step(self._actions)
        for info in infos:
            info["TimeLimit.truncated"] = False
        if dones.any():  # every episode has `phases` steps: they end together
            for i, info in enumerate(infos):
                info["terminal_observation"] = obs[i]
            obs, self.reset_infos = self.batched.reset([None] * self.num_envs)
        return obs, rewards.astype(np.float32), dones.copy(), infos

    def close(self) -> None:
        self.batched.close()

    def _targets(self, indices: None | int | Iterable[int]) -> list[Any]:
        return [self.batched.envs[i] for i in self._get_indices(indices)]

    def get_attr(self, attr_name: str, indices: None | int | Iterable[int] = None) -> list[Any]:
        return [getattr(env, attr_name) for env in self._targets(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: None | int | Iterable[int] = None
                 ) -> None:
        for env in self._targets(indices):
            setattr(env, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any,
                   indices: None | int | Iterable[int] = None, **method_kwargs: Any) -> list[Any]:
        if method_name in ("reset", "step"):
            raise AttributeError(f"DistillSourceVecEnv steps its episodes together; call "
                                 f"the VecEnv's own {method_name}() instead")
        return [getattr(env, method_name)(*method_args, **method_kwargs)
                for env in self._targets(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: None | int | Iterable[int] = None
                       ) -> list[bool]:
        return [isinstance(env, wrapper_class) for env in self._targets(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        if self.render_mode != "rgb_array":
            return [None for _ in range(self.num_envs)]
        return [env.render() for env in self.batched.envs]


__all__ = ["DistillSourceVecEnv"]
