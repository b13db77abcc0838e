"""Non-learned layout optimisers on the batched gappy-POD scorer (lower error = better).

* :func:`det_greedy` — the D-optimal ("max-det") greedy of the POD rows: each sensor maximises
  ``log det(ε I + Φ_Sᵀ Φ_S)`` over the first ``rank`` modes, which is QR pivoting's choice while
  ``K < rank`` and the oversampled determinant criterion of Clark et al. (arXiv:1911.08757)
  once ``K ≥ rank``. Uses the training modes only.
* :func:`greedy_forward` — one sensor at a time, each time the cell whose addition gives the
  lowest error of the scorer's snapshots (every free cell tried in one batched call).
* :func:`anneal` — simulated annealing from a start layout: each iteration proposes ``batch``
  single-sensor moves (half to a cell within two cells of the moved sensor, half anywhere),
  scores them together, takes the best with the Metropolis rule; stops after ``budget``
  layout evaluations and returns the best layout seen.

Layouts are rows into :attr:`POD.cells <fields.classical.pod.POD.cells>`; the scorer's rank and
``lam`` are the caller's (chosen on validation).
"""

from __future__ import annotations

import numpy as np

from fields.classical.pod import POD
from fields.classical.scorer import GappyScorer


def det_greedy(pod: POD, k: int, rank: int, eps: float = 1e-9) -> np.ndarray:
    """``k`` rows maximising the regularised determinant of the first ``rank`` POD modes."""
    if not 1 <= rank <= pod.max_rank:
        raise ValueError(f"rank {rank} outside [1, {pod.max_rank}]")
    if not 0 < k <= len(pod.cells):
        raise ValueError(f"cannot place {k} sensors on {len(pod.cells)} valid cells")
    phi = pod.modes[:, :rank]
    reg = eps * float((phi ** 2).sum(1).max())
    chosen: list[int] = []
    gram = np.zeros((rank, rank))
    for _ in range(k):
        inv = np.linalg.inv(gram + reg * np.eye(rank))
        gain = np.einsum("ij,jk,ik->i", phi, inv, phi)
        gain[chosen] = -np.inf
        best = int(np.argmax(gain))
        chosen.append(best)
        gram += np.outer(phi[best], phi[best])
    return np.array(chosen, dtype=np.int64)


def greedy_forward(scorer: GappyScorer, k: int, rank: int, lam: float,
                   start: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Greedy forward selection of ``k`` rows on ``scorer``'s snapshots (appending to
    ``start``); returns the rows and the number of layout evaluations."""
    n = len(scorer.pod.cells)
    chosen = [int(r) for r in (start if start is not None else [])]
    if not 0 < k <= n or len(chosen) > k:
        raise ValueError(f"cannot place {k} sensors on {n} valid cells from {len(chosen)}")
    spent = 0
    while len(chosen) < k:
        free = np.setdiff1d(np.arange(n), chosen)
        rows = np.concatenate([np.broadcast_to(chosen, (len(free), len(chosen))),
                               free[:, None]], 1).astype(np.int64)
        err = scorer.mean_errors(rows, rank, lam)
        spent += len(free)
        chosen.append(int(free[int(np.argmin(err))]))
    return np.array(chosen, dtype=np.int64), spent


def neighbours(pod: POD, radius: int = 2) -> np.ndarray:
    """``(n, m)`` rows within ``radius`` cells (Chebyshev) of each row, padded with ``-1``."""
    h, w = pod.shape
    yx = np.stack(np.unravel_index(pod.cells, (h, w)), 1)
    d = np.abs(yx[:, None, :] - yx[None, :, :]).max(-1)
    near = [np.flatnonzero((row <= radius) & (row > 0)) for row in d]
    m = max(len(a) for a in near)
    return np.array([np.pad(a, (0, m - len(a)), constant_values=-1) for a in near])


def _proposals(cur: np.ndarray, n: int, near: np.ndarray, batch: int,
               rng: np.random.Generator) -> np.ndarray:
    """``batch`` layouts, each ``cur`` with one sensor moved to a free row."""
    out = np.repeat(cur[None], batch, 0)
    which = rng.integers(len(cur), size=batch)
    local = rng.random(batch) < 0.5
    taken = set(cur.tolist())
    for b in range(batch):
        opts = near[cur[which[b]]]
        opts = opts[opts >= 0] if local[b] else np.empty(0, dtype=np.int64)
        opts = [o for o in opts if o not in taken]
        new = int(rng.choice(opts)) if opts else int(rng.integers(n))
        while new in taken:
            new = int(rng.integers(n))
        out[b, which[b]] = new
    return out


def anneal(scorer: GappyScorer, start: np.ndarray, rank: int, lam: float, budget: int,
           rng: np.random.Generator, batch: int = 64, t0: float = 0.05, t_end: float = 1e-4
           ) -> tuple[np.ndarray, float, int]:
    """Simulated annealing from ``start`` rows: the best rows seen, their error and the number
    of layout evaluations (at most ``budget``). Temperatures fall geometrically from ``t0`` to
    ``t_end`` times the start error."""
    cur = np.asarray(start, dtype=np.int64).copy()
    if len(set(cur.tolist())) != len(cur):
        raise ValueError("the start layout has repeated cells")
    if budget < batch + 1:
        raise ValueError(f"budget {budget} is below one iteration ({batch} + 1 evaluations)")
    n = len(scorer.pod.cells)
    near = neighbours(scorer.pod)
    e_cur = float(scorer.mean_errors(cur[None], rank, lam)[0])
    best, e_best, spent = cur.copy(), e_cur, 1
    iters = (budget - 1) // batch
    temps = e_cur * t0 * (t_end / t0) ** (np.arange(iters) / max(iters - 1, 1))
    for temp in temps:
        props = _proposals(cur, n, near, batch, rng)
        err = scorer.mean_errors(props, rank, lam)
        spent += batch
        j = int(np.argmin(err))
        if err[j] < e_cur or rng.random() < np.exp(-(err[j] - e_cur) / max(temp, 1e-300)):
            cur, e_cur = props[j], float(err[j])
            if e_cur < e_best:
                best, e_best = cur.copy(), e_cur
    return best, e_best, spent
