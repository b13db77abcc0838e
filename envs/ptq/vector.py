"""Batched vector environment for DynamicPTQ: N episodes, one batched forward per step.

* :class:`BatchedPTQ` — the state every batched DynamicPTQ vector env shares (config,
  resources, core, per-episode RNGs); Stable-Baselines3's counterpart,
  :class:`agents.vec.PTQVecEnv`, builds on it.
* :class:`PTQVectorEnv` — a Gymnasium ``VectorEnv`` equivalent to ``SyncVectorEnv`` of N
  single environments, in ``NextStep`` (Gymnasium's default) or ``SameStep`` autoreset mode.
  It is the ``vector_entry_point`` of every DynamicPTQ id (``gym.make_vec``).

Both drive one :class:`envs.ptq.core.PTQCore`; per-episode randomness comes from one
``np.random.Generator`` per sub-environment, seeded exactly as a single env's ``reset(seed=)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from copy import deepcopy
from typing import Any

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from torch import nn

from envs.ptq.config import make_config
from envs.ptq.core import PTQCore
from envs.ptq.env import make_spaces
from envs.ptq.observations.extras import copy_obs, put_rows, take_rows
from envs.ptq.render import render_frame
from envs.ptq.resources import get_resources
from models.datasets import DatasetSplits


class BatchedPTQ:
    """State shared by the batched vector envs: config, resources, core and per-episode RNGs."""

    def _setup(self, num_envs: int, net: nn.Module | None, data: DatasetSplits | None,
               kwargs: dict[str, Any]) -> None:
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be ≥ 1, got {num_envs}")
        self.cfg = make_config(kwargs, has_net=net is not None)
        self.res = get_resources(self.cfg, net, data)
        self.core = PTQCore(self.cfg, self.res, int(num_envs))
        self.single_obs_space, self.single_act_space = make_spaces(self.cfg, self.core)
        self.rngs: list[np.random.Generator | None] = [None] * int(num_envs)
        self.all_ids = np.arange(int(num_envs))

    def _reset_ids(self, ids: np.ndarray, seeds: Sequence[int | None],
                   options: Sequence[dict | None]) -> tuple[np.ndarray, list[dict]]:
        rngs = []
        for i, s in zip(ids, seeds, strict=True):
            if s is not None or self.rngs[i] is None:
                self.rngs[i] = seeding.np_random(s)[0]
            rngs.append(self.rngs[i])
        return self.core.reset(ids, rngs, list(options))

    @property
    def n_layers(self) -> int:
        return self.core.L

    def action_masks(self) -> np.ndarray:
        """``[num_envs, n_choices]`` feasible choices (sb3-contrib MaskablePPO)."""
        return self.core.action_masks(self.all_ids)

    def _frame(self, i: int) -> np.ndarray:
        c = self.core
        finished = c.k[i] >= c.L
        return render_frame(self.res.split(c.split[i]).images[c.idx[i]], c.plan[i], int(c.k[i]),
                            self.cfg.bit_choices, self.res.data.info.class_names,
                            int(c.labels[i]), int(c.fp_logits[i].argmax()),
                            c.last_info[i] if finished else None)


class PTQVectorEnv(BatchedPTQ, VectorEnv):
    """Gymnasium ``VectorEnv`` of ``num_envs`` DynamicPTQ episodes.

    Args:
        num_envs: number of sub-environments.
        autoreset_mode: ``"NextStep"`` (default, like ``SyncVectorEnv``) or ``"SameStep"``.
        kwargs: as :class:`envs.ptq.DynamicPTQEnv`.
    """

    def __init__(self, num_envs: int = 1, *, autoreset_mode: str | AutoresetMode = "NextStep",
                 net: nn.Module | None = None, data: DatasetSplits | None = None,
                 **kwargs: Any) -> None:
        self._setup(num_envs, net, data, kwargs)
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        if self.autoreset_mode == AutoresetMode.DISABLED:
            raise ValueError("autoreset_mode must be 'NextStep' or 'SameStep'")
        self.num_envs = int(num_envs)
        self.render_mode = self.cfg.render_mode
        self.metadata = {"render_modes": ["rgb_array"], "render_fps": 4,
                         "autoreset_mode": self.autoreset_mode}
        self.single_observation_space = self.single_obs_space
        self.single_action_space = self.single_act_space
        self.observation_space = batch_space(self.single_obs_space, self.num_envs)
        self.action_space = batch_space(self.single_act_space, self.num_envs)
        self._autoreset = np.zeros(self.num_envs, dtype=bool)
        self._obs: Any = None
        self._started = False

    def _infos(self, rows: np.ndarray, infos: list[dict], out: dict | None = None) -> dict:
        out = {} if out is None else out
        for i, info in zip(rows, infos, strict=True):
            out = self._add_info(out, info, int(i))
        return out

    def reset(self, *, seed: int | list[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is None or isinstance(seed, int):
            seeds = [None if seed is None else seed + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"seed list must have length num_envs={self.num_envs}, got {len(seeds)}")
        self._autoreset[:] = False
        obs, infos = self._reset_ids(self.all_ids, seeds, [options] * self.num_envs)
        self._obs = obs
        self._started = True
        return copy_obs(obs), self._infos(self.all_ids, infos)

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        if not self._started:
            raise RuntimeError("call reset() before step()")
        rewards = np.zeros(self.num_envs)
        terminated = np.zeros(self.num_envs, dtype=bool)
        obs = copy_obs(self._obs)
        infos: dict[str, Any] = {}
        acting = np.flatnonzero(~self._autoreset)
        resetting = np.flatnonzero(self._autoreset)
        if len(resetting):  # NextStep: finished episodes restart and ignore their action
            new_obs, r_infos = self._reset_ids(resetting, [None] * len(resetting),
                                               [None] * len(resetting))
            put_rows(obs, resetting, new_obs)
            infos = self._infos(resetting, r_infos, infos)
        if len(acting):
            a = np.asarray(actions)
            if a.ndim == 0 or a.shape[0] != self.num_envs:
                raise ValueError(f"actions must have a leading axis of num_envs={self.num_envs}, "
                                 f"got shape {a.shape}")
            o, r, d, step_infos = self.core.step(a[acting], acting)
            put_rows(obs, acting, o)
            rewards[acting], terminated[acting] = r, d
            done_ids = acting[d]
            if self.autoreset_mode == AutoresetMode.SAME_STEP and len(done_ids):
                final = {"final_obs": None, "final_info": None}
                for i, row in zip(done_ids, np.flatnonzero(d), strict=True):
                    infos = self._add_info(infos, {**final, "final_obs": take_rows(o, row),
                                                   "final_info": step_infos[row]}, int(i))
                new_obs, r_infos = self._reset_ids(done_ids, [None] * len(done_ids),
                                                   [None] * len(done_ids))
                put_rows(obs, done_ids, new_obs)
                infos = self._infos(done_ids, r_infos, infos)
                keep = ~d
                infos = self._infos(acting[keep], [s for s, k in zip(step_infos, keep,
                                                                     strict=True) if k], infos)
            else:
                infos = self._infos(acting, step_infos, infos)
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            self._autoreset = terminated.copy()
        self._obs = obs
        return (copy_obs(obs), rewards, terminated, np.zeros(self.num_envs, dtype=bool),
                deepcopy(infos))

    def render(self) -> tuple[np.ndarray, ...] | None:
        if self.render_mode != "rgb_array":
            return None
        return tuple(self._frame(i) for i in self.all_ids)
