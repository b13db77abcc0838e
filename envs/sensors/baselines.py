"""Classical sensor placements: uniformly random, and QR pivoting on POD modes.

QR pivoting (Manohar et al. 2018, the default optimizer of the PySensors library) takes the
first ``r`` POD modes ``Ψ_r`` (``n_cells × r``) of the training snapshots and runs a
column-pivoted QR of ``Ψ_rᵀ``: the first ``K`` pivots are the sensor cells. Done here with
``scipy.linalg.qr(..., pivoting=True)`` on the valid (ocean/fluid) cells only, which is the
same algorithm as PySensors' ``QR`` optimizer; ``python-sensors`` 0.4.3 would install with our
numpy/scikit-learn (checked with ``pip install --dry-run``) but is a 63 MB wheel for these few
lines, and restricting the candidates to valid cells is direct here.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import qr

from fields.field_data import FieldData


def pod_modes(train: FieldData, valid: np.ndarray, n_modes: int) -> np.ndarray:
    """The first ``n_modes`` POD modes ``(n_valid, r)`` of the mean-removed training snapshots.

    On lat/lon grids the snapshots are weighted by ``sqrt(cos(lat))`` (area weighting).
    """
    cells = np.flatnonzero(valid.reshape(-1))
    x = train.values.reshape(len(train), -1)[:, cells].astype(np.float64)
    x = x - x.mean(0)
    if train.spherical:
        lat = np.broadcast_to(train.coords["lat"][:, None], valid.shape).reshape(-1)[cells]
        x = x * np.sqrt(np.cos(np.radians(lat)))
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return vt[:n_modes].T


def qr_placement(train: FieldData, valid: np.ndarray, k: int,
                 n_modes: int | None = None) -> np.ndarray:
    """``k`` flat cell indices chosen by QR pivoting on ``n_modes`` (default ``k``) POD modes.

    QR pivoting ranks only as many cells as the modes' rank (at most ``len(train) − 1``);
    when ``k`` is larger, the remaining sensors are the not-yet-chosen cells of highest
    training variance (stated in the result of the benchmark that uses it).
    """
    valid = np.asarray(valid, dtype=bool)
    cells = np.flatnonzero(valid.reshape(-1))
    if not 0 < k <= len(cells):
        raise ValueError(f"cannot place {k} sensors on {len(cells)} valid cells")
    r = max(1, min(n_modes or k, len(train) - 1))
    modes = pod_modes(train, valid, r)
    r = min(r, modes.shape[1])
    _, _, piv = qr(modes.T, pivoting=True, mode="economic")
    chosen = list(piv[:min(k, r)])
    if k > len(chosen):
        var = train.values.reshape(len(train), -1)[:, cells].var(0)
        var[chosen] = -np.inf
        chosen += list(np.argsort(-var, kind="stable")[:k - len(chosen)])
    return cells[np.asarray(chosen)]


def random_placement(valid: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` distinct valid cells drawn uniformly with ``rng``."""
    cells = np.flatnonzero(np.asarray(valid, dtype=bool).reshape(-1))
    if not 0 < k <= len(cells):
        raise ValueError(f"cannot place {k} sensors on {len(cells)} valid cells")
    return rng.choice(cells, size=k, replace=False)
