"""The SB3 ``VecEnv`` of :class:`envs.sensors.vector.BatchedSensorPlacement`: N placement
episodes stepped (and scored) together, auto-reset like ``DummyVecEnv``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv

from agents.vec import BatchedVecEnv
from envs.sensors.vector import BatchedSensorPlacement


class PlacementVecEnv(BatchedVecEnv):
    """``num_envs`` gappy-POD placement episodes (keyword arguments as
    :class:`~envs.sensors.vector.BatchedSensorPlacement`); ``action_masks`` for MaskablePPO."""

    def __init__(self, num_envs: int, **kwargs: Any) -> None:
        self.core = BatchedSensorPlacement(num_envs, **kwargs)
        self.render_mode = None
        obs = spaces.Box(0.0, 1.0, (self.core.obs_dim,), dtype=np.float32)
        VecEnv.__init__(self, int(num_envs), obs, spaces.Discrete(self.core.n_cells))

    def _reset_all(self) -> tuple[np.ndarray, list[dict[str, Any]]]:
        return self.core.reset_ids(np.arange(self.num_envs), list(self._seeds),
                                   [o or None for o in self._options])

    def _step_all(self, actions: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        return self.core.step(np.asarray(actions, dtype=np.int64))

    def _reset_done(self, done_ids: np.ndarray) -> tuple[np.ndarray, list[dict[str, Any]]]:
        return self.core.reset_ids(done_ids)

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: None | int | Iterable[int] = None) -> list[Any]:
        idx = self._indices(indices)
        if attr_name == "action_masks":
            return [lambda i=i: self.core.action_masks(np.array([i]))[0] for i in idx]
        target = self.core if hasattr(self.core, attr_name) else self
        return [getattr(target, attr_name) for _ in idx]

    def set_attr(self, attr_name: str, value: Any, indices: None | int | Iterable[int] = None
                 ) -> None:
        raise AttributeError(f"PlacementVecEnv shares one configuration across its episodes; "
                             f"cannot set {attr_name!r} per episode")

    def env_method(self, method_name: str, *method_args: Any,
                   indices: None | int | Iterable[int] = None, **method_kwargs: Any) -> list[Any]:
        if method_name != "action_masks":
            raise AttributeError(f"PlacementVecEnv supports env_method('action_masks'), not "
                                 f"{method_name!r}")
        return list(self.core.action_masks(np.asarray(self._indices(indices))))

    def env_is_wrapped(self, wrapper_class: type, indices: None | int | Iterable[int] = None
                       ) -> list[bool]:
        return [False for _ in self._indices(indices)]
