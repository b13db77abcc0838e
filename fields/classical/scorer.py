"""Gappy POD scoring of many sensor layouts in one batched linear-algebra call.

:meth:`POD.gappy <fields.classical.pod.POD.gappy>` reconstructs one layout's snapshots on the
whole grid. Placement searches and the batched env score thousands of layouts, so
:class:`GappyScorer` never forms the full field to get an error. The POD modes are orthonormal
in the area-weighted inner product, so for a snapshot anomaly ``a = x − μ`` with projections
``p = Φᵀ W a`` and gappy coefficients ``c`` (standardised, as in :mod:`fields.classical.pod`)::

    ‖a − Φ diag(σ) c‖²_W = ‖a − Φ_R p_R‖²_W + Σ_{j ≤ R} (p_j − σ_j c_j)²

a residual computed once per snapshot plus a sum over ``R`` modes — every term non-negative, so
the error stays accurate when a layout reconstructs a field exactly. Each layout's ``c`` comes
from one batched ``np.linalg.solve`` of the Tikhonov normal equations over ``[N, r, r]``.

Layouts are rows into :attr:`POD.cells` (``N × K``, padded entries masked out), each with its
own rank and ``lam`` (columns past a layout's rank are switched off), and optionally its own
snapshots of the block (``N × S`` indices), so episodes of different lengths and sizes step
together.
"""

from __future__ import annotations

import numpy as np

from fields.classical.placement import random_placement
from fields.classical.pod import LAMS, POD, RANKS, GappyPODChoice


class GappyScorer:
    """Relative L2 errors and error maps of gappy POD for batches of layouts on ``values``.

    Args:
        pod: the training block's :class:`POD`.
        values: ``(T, H, W)`` snapshots to score on (a validation/test/training block).
        weight: ``(H, W)`` area weights (``None``: uniform), as in
            :func:`fields.classical.pod.relative_l2_np`.
    """

    def __init__(self, pod: POD, values: np.ndarray, weight: np.ndarray | None = None) -> None:
        self.pod, self.weight = pod, weight
        t = len(values)
        x = np.asarray(values, dtype=np.float64).reshape(t, -1)[:, pod.cells]
        w = np.ones(len(pod.cells)) if weight is None else np.asarray(
            weight, dtype=np.float64).reshape(-1)[pod.cells]
        self.anom = x - pod.mean  # (T, n)
        self.anom_t = np.ascontiguousarray(self.anom.T)  # (n, T): readings gather by row
        self.norm = np.maximum(np.sqrt((x ** 2 * w).sum(1)), 1e-12)  # ‖x‖_W
        self.proj = (self.anom * w) @ pod.modes  # (T, R)
        resid = self.anom - self.proj @ pod.modes.T
        self.resid2 = (resid ** 2 * w).sum(1)  # outside all R modes
        # tail[:, j] = residual + Σ_{i ≥ j} p_i²: the error of any c that is zero from mode j on
        p2 = self.proj ** 2
        self.tail = self.resid2[:, None] + np.concatenate(
            [np.cumsum(p2[:, ::-1], axis=1)[:, ::-1], np.zeros((t, 1))], axis=1)
        self.scaled = pod.modes * pod.std  # Φ diag(σ), (n, R)

    def __len__(self) -> int:
        return len(self.anom)

    def rows(self, cells: np.ndarray) -> np.ndarray:
        """Rows into ``pod.cells`` of flat grid ``cells`` (any shape)."""
        cells = np.asarray(cells, dtype=np.int64)
        return self.pod.sensor_rows(cells.reshape(-1)).reshape(cells.shape)

    def coefficients(self, rows: np.ndarray, rank: int | np.ndarray, lam: float | np.ndarray,
                     snaps: np.ndarray | None = None, mask: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Standardised gappy coefficients ``(N, r_max, S)`` and the snapshots ``(N, S)``.

        ``rows`` ``(N, K)``: sensor rows; ``mask`` ``(N, K)``: which entries are sensors (all
        by default); ``rank``/``lam``: one value or one per layout; ``snaps``: ``(N, S)``
        snapshot indices (default: every snapshot for every layout).
        """
        rows = np.asarray(rows, dtype=np.int64)
        if rows.ndim != 2:
            raise ValueError(f"rows must be (layouts, sensors), got shape {rows.shape}")
        n = len(rows)
        rank = np.broadcast_to(np.asarray(rank, dtype=np.int64), (n,))
        lam = np.broadcast_to(np.asarray(lam, dtype=np.float64), (n,))
        if rank.size and (rank.min() < 1 or rank.max() > self.pod.max_rank):
            raise ValueError(f"rank outside [1, {self.pod.max_rank}]")
        if (lam < 0).any():
            raise ValueError("lam must be ≥ 0")
        r = int(rank.max()) if n else 1
        on = np.arange(r) < rank[:, None]  # (N, r) active columns
        basis = self.scaled[rows, :r] * on[:, None, :]  # (N, K, r)
        if mask is not None:
            basis = basis * np.asarray(mask, dtype=bool)[:, :, None]
        if snaps is None:
            snaps = np.broadcast_to(np.arange(len(self)), (n, len(self)))
            y = self.anom_t[rows]  # (N, K, T)
        else:
            snaps = np.asarray(snaps, dtype=np.int64)
            y = self.anom_t[rows[:, :, None], snaps[:, None, :]]  # (N, K, S)
        gram = basis.transpose(0, 2, 1) @ basis
        diag = np.where(on, lam[:, None] * self.pod.cell_var, 1.0)
        gram[:, np.arange(r), np.arange(r)] += diag
        rhs = basis.transpose(0, 2, 1) @ y  # (N, r, S); zero on inactive columns and masks
        return np.linalg.solve(gram, rhs), snaps

    def errors(self, rows: np.ndarray, rank: int | np.ndarray, lam: float | np.ndarray,
               snaps: np.ndarray | None = None, mask: np.ndarray | None = None) -> np.ndarray:
        """Relative L2 error ``(N, S)`` of each layout on each of its snapshots."""
        c, snaps = self.coefficients(rows, rank, lam, snaps, mask)
        r = c.shape[1]
        p = self.proj[snaps, :r]  # (N, S, r)
        fit = ((p - self.pod.std[:r] * c.transpose(0, 2, 1)) ** 2).sum(-1)
        return np.sqrt(self.tail[snaps, r] + fit) / self.norm[snaps]

    def mean_errors(self, rows: np.ndarray, rank: int | np.ndarray, lam: float | np.ndarray,
                    chunk: int = 512) -> np.ndarray:
        """Mean relative L2 over every snapshot of each of ``N`` full layouts, in chunks."""
        rows = np.asarray(rows, dtype=np.int64)
        rank = np.broadcast_to(np.asarray(rank), (len(rows),))
        lam = np.broadcast_to(np.asarray(lam, dtype=np.float64), (len(rows),))
        out = [self.errors(rows[i:i + chunk], rank[i:i + chunk], lam[i:i + chunk]).mean(1)
               for i in range(0, len(rows), chunk)]
        return np.concatenate(out) if out else np.zeros(0)

    def empty_errors(self, snaps: np.ndarray) -> np.ndarray:
        """Relative L2 of the training-mean field (no sensor) on ``snaps``."""
        return np.sqrt(self.tail[snaps, 0]) / self.norm[snaps]

    def error_maps(self, rows: np.ndarray, rank: int | np.ndarray, lam: float | np.ndarray,
                   snaps: np.ndarray, mask: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Per-layout errors ``(N, S)`` and mean absolute error per valid cell ``(N, n)``."""
        c, snaps = self.coefficients(rows, rank, lam, snaps, mask)
        r = c.shape[1]
        pred = self.scaled[:, :r] @ c  # (N, n, S) anomaly reconstruction
        err_map = np.abs(self.anom_t[:, snaps].transpose(1, 0, 2) - pred).mean(-1)
        p = self.proj[snaps, :r]
        fit = ((p - self.pod.std[:r] * c.transpose(0, 2, 1)) ** 2).sum(-1)
        return np.sqrt(self.tail[snaps, r] + fit) / self.norm[snaps], err_map


def choose_rank_lam(pod: POD, val_values: np.ndarray, valid: np.ndarray, k: int,
                    weight: np.ndarray | None = None, n_layouts: int = 5,
                    ranks: tuple[int, ...] = RANKS, lams: tuple[float, ...] = LAMS
                    ) -> GappyPODChoice:
    """Gappy POD's rank and ``lam`` for ``k`` sensors: the grid search of
    :func:`fields.classical.pod.select_gappy_pod` on the validation snapshots with the
    SensorPlacement env's ``n_layouts`` random layouts (stream ``[0, 11, k]``), batched."""
    rng = np.random.default_rng([0, 11, k])
    scorer = GappyScorer(pod, val_values, weight)
    rows = scorer.rows(np.stack([random_placement(valid, k, rng) for _ in range(n_layouts)]))
    grid = [(r, lam) for r in sorted({min(r, pod.max_rank) for r in ranks}) for lam in lams]
    rank = np.repeat([g[0] for g in grid], n_layouts)
    lam = np.repeat([g[1] for g in grid], n_layouts)
    errs = scorer.mean_errors(np.tile(rows, (len(grid), 1)), rank, lam)
    errs = errs.reshape(len(grid), n_layouts).mean(1)
    best = int(np.argmin(errs))
    table = {f"r{r}_lam{lam:g}": float(e) for (r, lam), e in zip(grid, errs, strict=True)}
    return GappyPODChoice(rank=grid[best][0], lam=grid[best][1], val_rel_l2=float(errs[best]),
                          table=table)
