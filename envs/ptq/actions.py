"""Checking and decoding DynamicPTQ actions, with errors that say what was expected."""

from __future__ import annotations

from typing import Any

import numpy as np


def _array(actions: Any) -> np.ndarray:
    try:
        return np.asarray(actions)
    except Exception as e:  # noqa: BLE001 - anything that is not array-like
        raise TypeError(f"action must be array-like, got {type(actions).__name__}") from e


def continuous_to_choice(a: np.ndarray, n_choices: int) -> np.ndarray:
    """Map values in ``[-1, 1]`` to choice indices in ``n_choices`` equal-width bins."""
    return np.minimum(((a + 1.0) * 0.5 * n_choices).astype(np.int64), n_choices - 1)


def parse_actions(actions: Any, mode: str, n: int, n_layers: int, n_choices: int) -> np.ndarray:
    """Choice indices for ``n`` episodes: ``[n]`` (sequential, menu) or ``[n, n_layers]``.

    ``n == 1`` also accepts a single episode's action without the batch axis (what a single
    environment receives). Raises ``TypeError`` for a wrong dtype and ``ValueError`` for a
    wrong shape, NaN/inf or out-of-range values.
    """
    a = _array(actions)
    per_episode: tuple[int, ...] = () if mode in ("sequential", "menu") else (n_layers,)
    if n == 1 and a.shape == per_episode:
        a = a[None]
    if a.shape != (n, *per_episode):
        want = per_episode if n == 1 else (n, *per_episode)
        raise ValueError(f"{mode} action must have shape {want}, got {a.shape}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ValueError(f"action contains NaN or inf: {a.tolist()}")
    if mode == "continuous":
        if a.dtype.kind not in "fiu":
            raise TypeError(f"continuous action must be a float array, got dtype {a.dtype}")
        if (a < -1).any() or (a > 1).any():
            raise ValueError(f"continuous action must lie in [-1, 1], got {a.tolist()}")
        return continuous_to_choice(a.astype(np.float64), n_choices)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{mode} action must be an integer (choice index), got dtype {a.dtype}")
    if (a < 0).any() or (a >= n_choices).any():
        raise ValueError(f"{mode} action must be in [0, {n_choices}), got {a.tolist()}")
    return a.astype(np.int64)
