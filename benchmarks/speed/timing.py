"""The one wall-clock timer of the benchmarks: seconds per call of a function (and the best
of several calls)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def timed(fn: Callable[[], T], reps: int = 1) -> tuple[T, float]:
    """Call ``fn`` ``reps`` times back to back: its last result and the seconds per call."""
    if reps < 1:
        raise ValueError(f"reps must be ≥ 1, got {reps}")
    t0 = time.perf_counter()
    for _ in range(reps):
        out = fn()
    return out, (time.perf_counter() - t0) / reps


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` single calls of ``fn``, in seconds."""
    return min(timed(fn)[1] for _ in range(repeats))
