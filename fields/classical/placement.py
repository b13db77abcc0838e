"""Classical sensor placements: QR pivoting on POD modes (PySensors) and uniformly random.

QR pivoting (Manohar et al. 2018) runs a column-pivoted QR of ``Φ_rᵀ`` (the first ``r`` POD
modes, one column per candidate cell); the first ``K`` pivots are the sensors. It runs through
PySensors (``python-sensors``: ``SSPOR`` with the ``QR`` optimizer) on the exact, area-weighted
POD modes of :class:`fields.classical.pod.POD`, restricted to valid (ocean/fluid) cells. The modes are
passed as a ``Custom`` basis so the placement depends only on the training block.
"""

from __future__ import annotations

import warnings

import numpy as np

from fields.classical.pod import POD
from fields.field_data import FieldData


def qr_placement(train: FieldData | POD, valid: np.ndarray, k: int,
                 n_modes: int | None = None, seed: int = 0) -> np.ndarray:
    """``k`` flat cell indices chosen by QR pivoting on ``n_modes`` (default ``k``) POD modes.

    ``train`` is the training block (or its :class:`~fields.classical.pod.POD`). The pivoting runs on
    the physical-unit modes, the matrix gappy POD inverts at the sensors. With more sensors
    than modes (at most ``len(train) − 1``), PySensors orders the cells after the ``r``-th
    pivot at random (``seed``).
    """
    import pysensors as ps

    valid = np.asarray(valid, dtype=bool)
    pod = train if isinstance(train, POD) else POD(train, valid)
    if not np.array_equal(pod.cells, np.flatnonzero(valid.reshape(-1))):
        raise ValueError("the POD was fitted on a different valid mask")
    if not 0 < k <= len(pod.cells):
        raise ValueError(f"cannot place {k} sensors on {len(pod.cells)} valid cells")
    r = max(1, min(n_modes or k, pod.max_rank))
    model = ps.SSPOR(basis=ps.basis.Custom(U=pod.modes[:, :r], n_basis_modes=r),
                     optimizer=ps.optimizers.QR(), n_sensors=k)
    with warnings.catch_warnings():  # PySensors warns when n_sensors > n_basis_modes
        warnings.simplefilter("ignore", UserWarning)
        model.fit(np.zeros((1, len(pod.cells))), quiet=True, seed=seed)
    return pod.cells[np.asarray(model.get_selected_sensors())[:k]]


def random_placement(valid: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` distinct valid cells drawn uniformly with ``rng``."""
    cells = np.flatnonzero(np.asarray(valid, dtype=bool).reshape(-1))
    if not 0 < k <= len(cells):
        raise ValueError(f"cannot place {k} sensors on {len(cells)} valid cells")
    return rng.choice(cells, size=k, replace=False)
