"""Vectorised environments for training: SB3's Dummy/Subproc loops or an env's own batched one.

:class:`PTQVecEnv` is the Stable-Baselines3 ``VecEnv`` of DynamicPTQ with the semantics of
``DummyVecEnv([lambda: DynamicPTQEnv(**kw)] * N)``: same seeds (``seed + i``), same auto-reset
(in the same step, ``terminal_observation`` in ``info``), same trajectories, but one batched
forward per step. :class:`DistillSourceVecEnv` does the same for DistillSource with grouped
students. Both are a :class:`BatchedVecEnv`, the ``VecEnv`` contract around a batch that
resets and steps all its episodes together. They live here, not in ``envs``, so that ``envs``
does not import SB3.
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
from envs.distill_source.vector import BatchedDistillSource
from envs.ptq.observations.extras import copy_obs, put_rows, take_rows
from envs.ptq.vector import BatchedPTQ
from envs.registry import env_options
from models.datasets import DatasetSplits

VEC_ENVS = ("batched", "dummy", "subproc")


class BatchedVecEnv(VecEnv):
    """SB3 ``VecEnv`` over a batch that resets and steps all its episodes together."""

    _actions: Any = None

    # ------------------------------------------------------------------ what a subclass gives
    def _reset_all(self) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Reset every episode with ``self._seeds`` / ``self._options``: observations, infos."""
        raise NotImplementedError

    def _step_all(self, actions: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """One step of every episode: observations, rewards, dones, infos."""
        raise NotImplementedError

    def _reset_done(self, done_ids: np.ndarray) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Reset the episodes ``done_ids`` (unseeded): their observations and infos."""
        raise NotImplementedError

    def _frame(self, i: int) -> np.ndarray:
        """The RGB frame of episode ``i``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the VecEnv contract
    def reset(self) -> np.ndarray:
        obs, infos = self._reset_all()
        self.reset_infos = infos
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self._step_all(self._actions)
        for info in infos:
            info["TimeLimit.truncated"] = False
        done_ids = np.flatnonzero(dones)
        if len(done_ids):
            for i in done_ids:
                infos[i]["terminal_observation"] = take_rows(obs, i)
            new_obs, reset_infos = self._reset_done(done_ids)
            obs = copy_obs(obs)
            put_rows(obs, done_ids, new_obs)
            for i, ri in zip(done_ids, reset_infos, strict=True):
                self.reset_infos[i] = ri
        return obs, rewards.astype(np.float32), dones.copy(), infos

    def _indices(self, indices: None | int | Iterable[int]) -> list[int]:
        return list(self._get_indices(indices))

    def get_images(self) -> Sequence[np.ndarray | None]:
        if self.render_mode != "rgb_array":
            return [None for _ in range(self.num_envs)]
        return [self._frame(i) for i in range(self.num_envs)]


class PTQVecEnv(BatchedPTQ, BatchedVecEnv):
    """SB3 ``VecEnv`` of ``num_envs`` DynamicPTQ episodes (keyword arguments as
    :class:`envs.ptq.DynamicPTQEnv`)."""

    def __init__(self, num_envs: int, *, net: nn.Module | None = None,
                 data: DatasetSplits | None = None, **kwargs: Any) -> None:
        self._setup(num_envs, net, data, kwargs)
        self.render_mode = self.cfg.render_mode
        VecEnv.__init__(self, int(num_envs), self.single_obs_space, self.single_act_space)
        self.metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def _reset_all(self) -> tuple[np.ndarray, list[dict[str, Any]]]:
        return self._reset_ids(self.all_ids, self._seeds, [o or None for o in self._options])

    def _step_all(self, actions: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        return self.core.step(actions, self.all_ids)

    def _reset_done(self, done_ids: np.ndarray) -> tuple[np.ndarray, list[dict[str, Any]]]:
        return self._reset_ids(done_ids, [None] * len(done_ids), [None] * len(done_ids))

    def close(self) -> None:
        pass

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


class DistillSourceVecEnv(BatchedVecEnv):
    """``num_envs`` DistillSource episodes with grouped students (keyword arguments as
    :class:`envs.distill_source.DistillSourceEnv`; the student must be the plain CNN).

    Every episode keeps its own env (generator, probe, reward); only the phase's student
    updates run as one grouped forward/backward
    (:class:`envs.distill_source.vector.BatchedDistillSource`). Episodes have a fixed number
    of phases, so all of them end, and are reset, in the same step. Opt in with
    ``--vec-env batched``; on 2 CPU cores it is barely faster than one-by-one episodes
    (``benchmarks/results/kd_source_batched.json``).
    """

    def __init__(self, num_envs: int, *, teacher: nn.Module | None = None,
                 data: DatasetSplits | None = None, **kwargs: Any) -> None:
        self.batched = BatchedDistillSource(int(num_envs), teacher=teacher, data=data, **kwargs)
        self.render_mode = self.batched.cfg.render_mode
        super().__init__(int(num_envs), self.batched.observation_space,
                         self.batched.action_space)
        self.metadata = self.batched.envs[0].metadata

    def _reset_all(self) -> tuple[np.ndarray, list[dict[str, Any]]]:
        return self.batched.reset(list(self._seeds))

    def _step_all(self, actions: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        return self.batched.step(actions)

    def _reset_done(self, done_ids: np.ndarray) -> tuple[np.ndarray, list[dict[str, Any]]]:
        if len(done_ids) != self.num_envs:  # every episode has `phases` steps
            raise RuntimeError(f"DistillSource episodes end together; {len(done_ids)} of "
                               f"{self.num_envs} ended")
        return self.batched.reset([None] * self.num_envs)

    def _frame(self, i: int) -> np.ndarray:
        return self.batched.envs[i].render()

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
