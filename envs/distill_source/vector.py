"""N DistillSource episodes whose students train together: one grouped forward/backward per
update (:class:`models.nets.grouped.GroupedNet`) instead of N.

Each episode keeps its own env (student, generator, probe, observation, reward); only the
phase's updates are batched. Every episode draws its batch with its own generator, in the same
order as the one-by-one env, the teacher labels all N batches in one call, and one Adam over
the grouped parameters is N per-student Adams, so episode ``i`` equals ``DistillSourceEnv``
with the same seed and actions, to float tolerance. Episodes run in lockstep (every episode
has ``phases`` steps), so they end, and are reset, together.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from distill.guided import teacher_logits
from distill.kd import kd_loss
from envs.distill_source.actions import decode_action
from envs.distill_source.env import DistillSourceEnv
from envs.distill_source.phase import PhaseTimes
from models.datasets import DatasetSplits, as_splits
from models.device import intra_op_threads
from models.guards import check_loss
from models.nets.grouped import GroupedNet


class BatchedDistillSource:
    """``num_envs`` DistillSource episodes stepped together (keyword arguments as
    :class:`DistillSourceEnv`; the students must be plain CNNs)."""

    def __init__(self, num_envs: int, *, teacher: nn.Module | None = None,
                 data: DatasetSplits | Any = None, **kwargs: Any) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be ≥ 1, got {num_envs}")
        data = as_splits(data) if data is not None else None  # once: the envs share it
        self.envs = [DistillSourceEnv(teacher=teacher, data=data, **kwargs)
                     for _ in range(num_envs)]
        self.cfg = self.envs[0].cfg
        if self.cfg.student_arch != "cnn" or self.envs[0].student_builder is not None:
            raise ValueError("batched students need student_arch='cnn' (grouped convolutions); "
                             "use DistillSourceEnv one by one for other students")
        self.num_envs = num_envs
        self.observation_space = self.envs[0].observation_space
        self.action_space = self.envs[0].action_space
        self.group: GroupedNet | None = None
        self.opt: torch.optim.Optimizer | None = None

    def reset(self, seeds: list[int | None]) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Reset every episode (seed ``seeds[i]``) and group their fresh students."""
        out = [env.reset(seed=s) for env, s in zip(self.envs, seeds, strict=True)]
        with intra_op_threads(self.cfg.threads):
            students = [env._runner.student for env in self.envs]
            self.group = GroupedNet(students).to(self.cfg.device)
            self.group = self.group.to(memory_format=torch.channels_last)
            self.opt = torch.optim.Adam(self.group.parameters(), lr=self.cfg.lr)
        return np.stack([o for o, _ in out]), [i for _, i in out]

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        """One phase of every episode; ``dones`` are all true at the last phase."""
        if self.group is None:
            raise RuntimeError("call reset() before step()")
        decisions = [decode_action(a, self.cfg) for a in actions]
        with intra_op_threads(self.cfg.threads):
            before = [env._metric(env._last_probe) for env in self.envs]
            t0 = time.perf_counter()
            kd, times = self._phase(decisions)
            t_phase = (time.perf_counter() - t0) / self.num_envs
            results = [env._after_phase(d, b, k, times, t_phase)
                       for env, d, b, k in zip(self.envs, decisions, before, kd, strict=True)]
        obs = np.stack([r[0] for r in results])
        rewards = np.array([r[1] for r in results], dtype=np.float64)
        dones = np.array([r[2] for r in results])
        if dones.any():
            self.group = self.opt = None  # the next reset groups the new students
        return obs, rewards, dones, [r[4] for r in results]

    def _phase(self, decisions: list) -> tuple[list[float], PhaseTimes]:
        cfg, res = self.cfg, self.envs[0].res
        runners = [env._runner for env in self.envs]
        losses = np.zeros((cfg.updates_per_phase, self.num_envs))
        times = PhaseTimes()
        self.group.train()
        for u in range(cfg.updates_per_phase):
            t0 = time.perf_counter()
            drawn = [r.draw(d.weights, d.augment, d.attack)
                     for r, d in zip(runners, decisions, strict=True)]
            t1 = time.perf_counter()
            x = torch.stack([b[0] for b in drawn])  # [N, B, C, H, W]
            logits = torch.stack([b[1] for b in drawn]).to(x.device)
            relabel = [i for i, b in enumerate(drawn) if b[3]]
            if relabel:  # one teacher call for every batch that was augmented or mixed
                t = teacher_logits(res.teacher, x[relabel].flatten(0, 1), batch_size=
                                   len(relabel) * cfg.batch_size).to(x.device)
                logits[relabel] = t.view(len(relabel), cfg.batch_size, -1)
            t2 = time.perf_counter()
            out = self.group(x.contiguous())
            per = [kd_loss(out[i], logits[i], cfg.temperature) for i in range(self.num_envs)]
            loss = torch.stack(per).sum()
            check_loss(loss, f"in update {u} of a batched phase", "lower lr or the temperature")
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            losses[u] = [p.item() for p in per]
            times.add(PhaseTimes(t1 - t0, t2 - t1, time.perf_counter() - t2))
        self.group.unstack_into([r.student for r in runners])
        for r, b in zip(runners, drawn, strict=True):
            r.last_batch, r.last_sources = b[0].detach(), b[2]
        return list(losses.mean(0)), times

    def close(self) -> None:
        for env in self.envs:
            env.close()


__all__ = ["BatchedDistillSource"]
