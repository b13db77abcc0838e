"""A trained placement policy's layouts, on any field and for any sensor count.

The policy places sensors one at a time in an episode of
:class:`envs.sensors.vector.BatchedSensorPlacement` whose snapshots are a whole block (the
validation block by default: layouts are chosen without test data). :meth:`Placer.layout`
takes the most probable allowed cell at each step (one deterministic layout);
:meth:`Placer.samples` draws ``n`` layouts from the policy in one batched episode, for
best-of-``n`` decoding (pick the layout with the lowest validation error), the usual
inference of learned combinatorial optimisers. The grid may differ from the training grid
(:func:`agents.placement.policy.use_grid`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from agents.placement.policy import GridPolicy, greedy_actions, sampled_actions, use_grid
from envs.sensors.vector import BatchedSensorPlacement
from fields.pretrained import FieldBlocks


class Placer:
    """A policy's layouts on ``blocks`` (observations from ``split``)."""

    def __init__(self, blocks: FieldBlocks, split: str = "val") -> None:
        self.blocks, self.split = blocks, split
        self._cores: dict[tuple[int, int], BatchedSensorPlacement] = {}

    def core(self, k: int, n: int = 1) -> BatchedSensorPlacement:
        """The vector env of ``n`` episodes of ``k`` sensors over the whole block."""
        if (k, n) not in self._cores:
            snaps = len({"train": self.blocks.train, "val": self.blocks.val,
                         "test": self.blocks.test}[self.split])
            self._cores[k, n] = BatchedSensorPlacement(n, n_sensors=k, split=self.split,
                                                       batch=snaps, blocks=self.blocks)
        return self._cores[k, n]

    def _episode(self, policy: GridPolicy, k: int, n: int,
                 act: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> list[dict]:
        core = self.core(k, n)
        opts = {"n_sensors": k, "indices": np.arange(core.snaps.shape[1])}
        obs, _ = core.reset_ids(np.arange(n), [0] * n, [opts] * n)
        infos: list[dict] = []
        with use_grid(policy, core.grid.shape):
            for _ in range(k):
                obs, _, _, infos = core.step(act(obs, core.action_masks()).astype(np.int64))
        return infos

    def layout(self, policy: GridPolicy, k: int) -> tuple[np.ndarray, float]:
        """The layout (flat cells, in placement order) and its mean error on the block."""
        info = self._episode(policy, k, 1, lambda o, m: greedy_actions(policy, o, m))[0]
        return info["sensors"], info["rel_l2"]

    def samples(self, policy: GridPolicy, k: int, n: int, seed: int
                ) -> tuple[np.ndarray, np.ndarray]:
        """``n`` layouts ``[n, k]`` drawn from the policy (seeded) and their mean errors on
        the block."""
        gen = torch.Generator().manual_seed(int(seed))
        infos = self._episode(policy, k, int(n),
                              lambda o, m: sampled_actions(policy, o, m, gen))
        return (np.stack([i["sensors"] for i in infos]),
                np.array([i["rel_l2"] for i in infos], dtype=np.float64))


def validation_errors(policy: GridPolicy, blocks: FieldBlocks, ks: tuple[int, ...],
                      placer: Placer | None = None) -> dict[int, float]:
    """Mean gappy-POD error on the validation block of the policy's layout at each ``k``."""
    placer = placer or _placer(blocks)
    return {int(k): float(placer.layout(policy, int(k))[1]) for k in ks}


_PLACERS: dict[int, Placer] = {}


def _placer(blocks: FieldBlocks) -> Placer:
    if id(blocks) not in _PLACERS:
        _PLACERS.clear()
        _PLACERS[id(blocks)] = Placer(blocks)
    return _PLACERS[id(blocks)]
