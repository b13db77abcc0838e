"""POD of training snapshots and Tikhonov-regularised gappy POD, the classical baseline.

Gappy POD (Everson & Sirovich 1995) reconstructs a snapshot from ``K`` point readings by least
squares on the leading POD modes at the sensor cells. Here the coefficients are standardised by
the modes' training standard deviations, so the Tikhonov term is a unit Gaussian prior and
``lam`` is the sensor-noise variance relative to the mean per-cell variance of the training
anomalies::

    B = Φ[s, :r] · diag(σ_r)         (K × r)
    c = (BᵀB + λ·v̄ I)⁻¹ Bᵀ (y − μ[s])
    q̂ = μ + Φ[:, :r] · diag(σ_r) · c

On latitude/longitude grids the POD is area-weighted (snapshots scaled by √cos φ before the
SVD; the modes are returned in physical units). Rank and ``lam`` are chosen on validation data
with :func:`select_gappy_pod`, never on the test block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fields.field_data import FieldData

RANKS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
LAMS = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)


def cell_weights(data: FieldData) -> np.ndarray:
    """``(H, W)`` area weight of each cell: cos(latitude) on lat/lon grids, else 1."""
    h, w = data.shape
    if not data.spherical:
        return np.ones((h, w))
    lat = np.radians(np.asarray(data.coords["lat"], dtype=np.float64))
    return np.broadcast_to(np.clip(np.cos(lat), 1e-6, None)[:, None], (h, w)).copy()


class POD:
    """Mean and POD modes of the training snapshots on the valid cells.

    Attributes:
        cells: flat indices of the valid cells (``n`` of them).
        mean: ``(n,)`` training mean.
        modes: ``(n, R)`` modes in physical units (orthonormal in the area-weighted inner product).
        std: ``(R,)`` standard deviation of each mode's coefficient over the training block.
    """

    def __init__(self, train: FieldData, valid: np.ndarray | None = None,
                 max_rank: int | None = None) -> None:
        valid = train.valid if valid is None else np.asarray(valid, dtype=bool)
        self.shape = train.shape
        self.cells = np.flatnonzero(valid.reshape(-1))
        if len(train) < 2:
            raise ValueError("POD needs at least two training snapshots")
        x = train.values.reshape(len(train), -1)[:, self.cells].astype(np.float64)
        self.mean = x.mean(0)
        self.sqrt_w = np.sqrt(cell_weights(train).reshape(-1)[self.cells])
        _, s, vt = np.linalg.svd((x - self.mean) * self.sqrt_w, full_matrices=False)
        r = min(max_rank or len(s), len(train) - 1, len(s))
        self.modes = (vt[:r] / self.sqrt_w).T
        self.std = s[:r] / np.sqrt(len(train) - 1)
        self.cell_var = float(np.sum(s ** 2) / (len(train) - 1) / np.sum(self.sqrt_w ** 2))

    @property
    def max_rank(self) -> int:
        return self.modes.shape[1]

    def sensor_rows(self, sensors: np.ndarray) -> np.ndarray:
        """Row of each sensor cell (flat grid index) among :attr:`cells`."""
        sensors = np.asarray(sensors, dtype=np.int64).reshape(-1)
        rows = np.searchsorted(self.cells, sensors)
        if (rows >= len(self.cells)).any() or (self.cells[np.minimum(rows, len(self.cells) - 1)]
                                              != sensors).any():
            raise ValueError("a sensor sits on a cell that is not valid for this POD")
        return rows

    def gappy(self, values: np.ndarray, sensors: np.ndarray, rank: int,
              lam: float) -> np.ndarray:
        """Reconstruct ``values`` ``(B, H, W)`` from their readings at ``sensors``.

        Only ``values`` at the sensor cells are read. Returns ``(B, H, W)`` float32 with 0 on
        invalid cells.
        """
        if not 1 <= rank <= self.max_rank:
            raise ValueError(f"rank {rank} outside [1, {self.max_rank}]")
        if lam < 0:
            raise ValueError(f"lam must be ≥ 0, got {lam}")
        sensors = np.asarray(sensors, dtype=np.int64).reshape(-1)
        rows = self.sensor_rows(sensors)
        b = len(values)
        y = values.reshape(b, -1)[:, sensors].astype(np.float64) - self.mean[rows]
        basis = self.modes[rows, :rank] * self.std[:rank]
        gram = basis.T @ basis + lam * self.cell_var * np.eye(rank)
        coef = np.linalg.lstsq(gram, basis.T @ y.T, rcond=None)[0]  # (r, B)
        full = self.mean[:, None] + (self.modes[:, :rank] * self.std[:rank]) @ coef
        out = np.zeros((b, self.shape[0] * self.shape[1]), dtype=np.float32)
        out[:, self.cells] = full.T
        return out.reshape(b, *self.shape)


@dataclass
class GappyPODChoice:
    """The rank and ``lam`` chosen on validation and the validation error table."""

    rank: int
    lam: float
    val_rel_l2: float
    table: dict[str, float]


def relative_l2_np(pred: np.ndarray, target: np.ndarray, valid: np.ndarray,
                   weight: np.ndarray | None = None) -> np.ndarray:
    """Per-snapshot (area-weighted) relative L2 error over valid cells; ``(B,)``."""
    w = valid.astype(np.float64) * (1.0 if weight is None else weight)
    num = np.sqrt((((pred - target) ** 2) * w).reshape(len(pred), -1).sum(1))
    den = np.sqrt(((target ** 2) * w).reshape(len(pred), -1).sum(1))
    return num / np.maximum(den, 1e-12)


def evaluate_gappy(pod: POD, data: FieldData, layouts: list[np.ndarray], rank: int,
                   lam: float, valid: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Mean relative L2 of gappy POD over ``layouts`` × snapshots of ``data``."""
    errs = [relative_l2_np(pod.gappy(data.values, s, rank, lam), data.values, valid, weight)
            for s in layouts]
    return float(np.mean(errs))


def select_gappy_pod(pod: POD, val: FieldData, layouts: list[np.ndarray], valid: np.ndarray,
                     weight: np.ndarray | None = None, ranks: tuple[int, ...] = RANKS,
                     lams: tuple[float, ...] = LAMS) -> GappyPODChoice:
    """Grid search of rank × ``lam`` on validation snapshots and layouts (never test)."""
    table: dict[str, float] = {}
    best = (np.inf, 0, 0.0)
    for r in sorted({min(r, pod.max_rank) for r in ranks}):
        for lam in lams:
            e = evaluate_gappy(pod, val, layouts, r, lam, valid, weight)
            table[f"r{r}_lam{lam:g}"] = e
            if e < best[0]:
                best = (e, r, lam)
    return GappyPODChoice(rank=best[1], lam=best[2], val_rel_l2=best[0], table=table)
