"""benchmarks.speed.timing: the benchmarks' one timer."""

from __future__ import annotations

import pytest

from benchmarks.speed.timing import timed


def test_timed_calls_the_function_reps_times_and_returns_its_last_result():
    calls = []
    out, seconds = timed(lambda: calls.append(len(calls)) or len(calls), reps=3)
    assert calls == [0, 1, 2] and out == 3 and seconds >= 0.0
    with pytest.raises(ValueError):
        timed(lambda: None, reps=0)
