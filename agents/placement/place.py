"""A trained placement policy's deterministic layouts, on any field and for any sensor count.

The policy places sensors one at a time in an episode of
:class:`envs.sensors.vector.BatchedSensorPlacement` whose snapshots are a whole block (the
validation block by default: layouts are chosen without test data) and takes the most probable
allowed cell at each step. Its grid may differ from the training grid
(:func:`agents.placement.policy.use_grid`).
"""

from __future__ import annotations

import numpy as np

from agents.placement.policy import GridPolicy, greedy_actions, use_grid
from envs.sensors.vector import BatchedSensorPlacement
from fields.pretrained import FieldBlocks


class Placer:
    """Deterministic layouts of a policy on ``blocks`` (observations from ``split``)."""

    def __init__(self, blocks: FieldBlocks, split: str = "val") -> None:
        self.blocks, self.split = blocks, split
        self._cores: dict[int, BatchedSensorPlacement] = {}

    def core(self, k: int) -> BatchedSensorPlacement:
        if k not in self._cores:
            n = len({"train": self.blocks.train, "val": self.blocks.val,
                     "test": self.blocks.test}[self.split])
            self._cores[k] = BatchedSensorPlacement(1, n_sensors=k, split=self.split, batch=n,
                                                    blocks=self.blocks)
        return self._cores[k]

    def layout(self, policy: GridPolicy, k: int) -> tuple[np.ndarray, float]:
        """The layout (flat cells, in placement order) and its mean error on the block."""
        core = self.core(k)
        obs, _ = core.reset_ids(np.array([0]), [0], [{"n_sensors": k,
                                                      "indices": np.arange(core.snaps.shape[1])}])
        infos: list[dict] = []
        with use_grid(policy, core.grid.shape):
            for _ in range(k):
                act = greedy_actions(policy, obs, core.action_masks())
                obs, _, _, infos = core.step(act.astype(np.int64))
        return infos[0]["sensors"], infos[0]["rel_l2"]


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
