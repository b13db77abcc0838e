"""N SensorPlacement episodes stepped together, every layout scored in one gappy-POD call.

:class:`BatchedSensorPlacement` is the numpy core of the batched vector env
(``agents.placement.vec.PlacementVecEnv`` wraps it in SB3's ``VecEnv``). Each episode places
sensors one at a time like :class:`envs.sensors.env.SensorPlacementEnv` with
``estimator="gappy_pod"`` (same reward, same repair of masked actions, same rank and λ chosen on
validation for the episode's sensor count), but

* the sensor count ``K`` may be drawn per episode from a range (``n_sensors=(lo, hi)``), so one
  policy learns to place any count; the observation therefore also holds ``K``;
* all episodes are scored together by :class:`fields.classical.scorer.GappyScorer`
  (per-episode snapshots, rank, λ and number of sensors in one batched solve).

Observation of an episode (``float32``, ``2·H·W + 2``): occupancy map, mean absolute
reconstruction error over its snapshots divided by its maximum, ``t / K`` (fraction placed) and
``K / K_SCALE``. Every episode draws its ``K`` and snapshots from its own generator (seeded
``seed + i`` by the vec env), so a batch is deterministic given its seeds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fields.classical.pod import POD, GappyPODChoice, cell_weights
from fields.classical.scorer import GappyScorer, choose_rank_lam
from fields.pretrained import FieldBlocks, get_blocks

K_SCALE = 32.0
SPLITS = ("train", "val", "test")


class BatchedSensorPlacement:
    """``num_envs`` gappy-POD placement episodes on one field (see the module docstring).

    Args:
        num_envs: episodes stepped together.
        dataset: a :func:`fields.pretrained.get_blocks` name (or pass ``blocks``).
        n_sensors: ``K`` (int) or an inclusive range ``(lo, hi)`` drawn per episode.
        split: block the episodes' snapshots come from (``"train"`` for training).
        batch: snapshots per episode (drawn without replacement; all when the block is smaller).
        blocks: a :class:`fields.pretrained.FieldBlocks` (overrides ``dataset``/``model``).
        model: data options of :func:`fields.pretrained.get_blocks` (``stride``, ``coarsen``...).
    """

    def __init__(self, num_envs: int, dataset: str = "cylinder",
                 n_sensors: int | tuple[int, int] = 8, split: str = "train", batch: int = 8,
                 blocks: FieldBlocks | None = None, model: dict[str, Any] | None = None,
                 progress: bool = False) -> None:
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be ≥ 1, got {num_envs}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if int(batch) < 1:
            raise ValueError(f"batch must be ≥ 1, got {batch}")
        self.blocks = blocks or get_blocks(dataset, progress=progress, **(model or {}))
        self.grid = self.blocks.grid
        self.valid = self.grid.valid_np
        self.valid_flat = self.valid.reshape(-1)
        lo, hi = (n_sensors, n_sensors) if np.isscalar(n_sensors) else n_sensors  # type: ignore[misc]
        self.k_lo, self.k_hi = int(lo), int(hi)
        if not 1 <= self.k_lo <= self.k_hi <= int(self.valid_flat.sum()):
            raise ValueError(f"n_sensors must be K or (lo, hi) with 1 ≤ lo ≤ hi ≤ "
                             f"{int(self.valid_flat.sum())} valid cells; got {n_sensors}")
        self.num_envs, self.split, self.batch = int(num_envs), split, int(batch)
        self.pod = POD(self.blocks.train, self.valid)
        self.weight = cell_weights(self.blocks.data) if self.blocks.data.spherical else None
        block = {"train": self.blocks.train, "val": self.blocks.val, "test": self.blocks.test}
        self.scorer = GappyScorer(self.pod, block[split].values, self.weight)
        self._choices: dict[int, GappyPODChoice] = {}
        h, w = self.grid.shape
        self.n_cells = h * w
        self.obs_dim = 2 * self.n_cells + 2
        self._cell_yx = np.stack(np.unravel_index(np.arange(self.n_cells), (h, w)), axis=1)
        n, kmax = self.num_envs, self.k_hi
        self.k = np.full(n, self.k_lo, dtype=np.int64)
        self.t = np.zeros(n, dtype=np.int64)
        self.cells = np.zeros((n, kmax), dtype=np.int64)
        self.rows = np.zeros((n, kmax), dtype=np.int64)
        self.occ = np.zeros((n, self.n_cells), dtype=bool)
        self.snaps = np.zeros((n, min(self.batch, len(self.scorer))), dtype=np.int64)
        self.e0, self.e = np.ones(n), np.ones(n)
        self.err_map = np.zeros((n, len(self.pod.cells)))
        self.n_repaired = np.zeros(n, dtype=np.int64)
        self.rngs: list[np.random.Generator | None] = [None] * n

    # ------------------------------------------------------------------------- scoring
    def choice(self, k: int) -> GappyPODChoice:
        """Rank and λ for ``k`` sensors, chosen on validation (as the single env does)."""
        if k not in self._choices:
            self._choices[k] = choose_rank_lam(self.pod, self.blocks.val.values, self.valid, k,
                                               self.weight)
        return self._choices[k]

    def _rank_lam(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ch = [self.choice(int(k)) for k in self.k[ids]]
        return np.array([c.rank for c in ch]), np.array([c.lam for c in ch])

    def _score(self, ids: np.ndarray) -> None:
        """Errors and error maps of episodes ``ids`` with their current sensors."""
        empty = ids[self.t[ids] == 0]
        if len(empty):
            self.e[empty] = self.scorer.empty_errors(self.snaps[empty]).mean(1)
            self.err_map[empty] = np.abs(self.scorer.anom[self.snaps[empty]]).mean(1)
        placed = ids[self.t[ids] > 0]
        if len(placed):
            width = int(self.t[placed].max())
            mask = np.arange(width) < self.t[placed][:, None]
            rank, lam = self._rank_lam(placed)
            errs, maps = self.scorer.error_maps(self.rows[placed, :width], rank, lam,
                                                self.snaps[placed], mask)
            self.e[placed], self.err_map[placed] = errs.mean(1), maps

    def observations(self, ids: np.ndarray | None = None) -> np.ndarray:
        """``(len(ids), 2·H·W + 2)`` observations (see the module docstring)."""
        ids = np.arange(self.num_envs) if ids is None else np.asarray(ids)
        err = np.zeros((len(ids), self.n_cells), dtype=np.float32)
        err[:, self.pod.cells] = self.err_map[ids]
        err /= np.maximum(err.max(1, keepdims=True), 1e-12)
        scal = np.stack([self.t[ids] / self.k[ids], self.k[ids] / K_SCALE], 1)
        return np.concatenate([self.occ[ids].astype(np.float32), err, scal.astype(np.float32)],
                              1)

    # --------------------------------------------------------------------- reset / step
    def reset_ids(self, ids: np.ndarray, seeds: list[int | None] | None = None,
                  options: list[dict[str, Any] | None] | None = None
                  ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Start new episodes ``ids``; ``options`` may fix ``n_sensors`` and ``indices``."""
        ids = np.asarray(ids, dtype=np.int64)
        for j, i in enumerate(ids):
            seed = seeds[j] if seeds is not None else None
            if seed is not None or self.rngs[i] is None:
                self.rngs[i] = np.random.default_rng(seed)
            opt = dict((options[j] if options is not None else None) or {})
            rng = self.rngs[i]
            k = int(opt.pop("n_sensors", rng.integers(self.k_lo, self.k_hi + 1)))
            if not self.k_lo <= k <= self.k_hi:
                raise ValueError(f"options['n_sensors'] must be in [{self.k_lo}, {self.k_hi}]")
            if "indices" in opt:
                idx = np.asarray(opt.pop("indices"), dtype=np.int64).reshape(-1)
                if len(idx) != self.snaps.shape[1] or idx.min() < 0 or idx.max() >= len(
                        self.scorer):
                    raise ValueError(f"options['indices'] must be {self.snaps.shape[1]} indices "
                                     f"into the {self.split} block of {len(self.scorer)}")
            else:
                idx = np.sort(rng.choice(len(self.scorer), size=self.snaps.shape[1],
                                         replace=False))
            if opt:
                raise ValueError(f"unknown reset options {sorted(opt)}; use 'n_sensors', "
                                 f"'indices'")
            self.k[i], self.t[i], self.snaps[i], self.n_repaired[i] = k, 0, idx, 0
            self.occ[i] = False
        self._score(ids)
        self.e0[ids] = self.e[ids]
        infos = [{"rel_l2": float(self.e[i]), "rel_l2_mean_field": float(self.e0[i]),
                  "n_placed": 0, "n_sensors": int(self.k[i])} for i in ids]
        return self.observations(ids), infos

    def action_masks(self, ids: np.ndarray | None = None) -> np.ndarray:
        """True on valid cells without a sensor, ``(len(ids), H·W)``."""
        ids = np.arange(self.num_envs) if ids is None else np.asarray(ids)
        return self.valid_flat[None] & ~self.occ[ids]

    def _repair(self, i: int, cell: int) -> int:
        free = self.valid_flat & ~self.occ[i]
        if free[cell]:
            return cell
        cand = np.flatnonzero(free)
        d = ((self._cell_yx[cand] - self._cell_yx[cell]) ** 2).sum(1)
        return int(cand[np.argmin(d)])

    def step(self, actions: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Place one sensor in every episode: observations, rewards, dones, infos."""
        a = np.asarray(actions).reshape(-1)
        if a.shape != (self.num_envs,) or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"actions must be {self.num_envs} integer cell indices, "
                             f"got {actions!r}")
        if a.min() < 0 or a.max() >= self.n_cells:
            raise ValueError(f"actions must be in [0, {self.n_cells})")
        ids = np.arange(self.num_envs)
        placed = np.array([self._repair(i, int(c)) for i, c in enumerate(a)])
        repaired = placed != a
        self.n_repaired += repaired
        self.cells[ids, self.t] = placed
        self.rows[ids, self.t] = self.scorer.rows(placed)
        self.occ[ids, placed] = True
        self.t += 1
        e_prev = self.e.copy()
        self._score(ids)
        rewards = (e_prev - self.e) / np.maximum(self.e0, 1e-12)
        dones = self.t == self.k
        infos: list[dict[str, Any]] = []
        for i in ids:
            info = {"rel_l2": float(self.e[i]), "rel_l2_mean_field": float(self.e0[i]),
                    "n_placed": int(self.t[i]), "cell": int(placed[i]),
                    "repaired": bool(repaired[i])}
            if dones[i]:
                info |= {"improvement": float(1 - self.e[i] / max(self.e0[i], 1e-12)),
                         "sensors": self.cells[i, :self.t[i]].copy(),
                         "n_sensors": int(self.k[i]), "n_repaired": int(self.n_repaired[i])}
            infos.append(info)
        return self.observations(), rewards, dones, infos

    # ------------------------------------------------------------------------ resume
    def get_state(self) -> dict[str, Any]:
        """Everything that changes while stepping (arrays and generator states)."""
        arrays = {k: getattr(self, k).copy() for k in _STATE}
        return {"arrays": arrays, "rngs": [None if r is None else r.bit_generator.state
                                           for r in self.rngs]}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_state`'s result."""
        for k in _STATE:
            getattr(self, k)[...] = state["arrays"][k]
        for i, s in enumerate(state["rngs"]):
            self.rngs[i] = None
            if s is not None:
                self.rngs[i] = np.random.default_rng()
                self.rngs[i].bit_generator.state = s


_STATE = ("k", "t", "cells", "rows", "occ", "snaps", "e0", "e", "err_map", "n_repaired")
