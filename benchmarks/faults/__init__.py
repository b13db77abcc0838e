"""The cases of ``benchmarks/fault_injection.py``, by class: what the user types
(:mod:`~benchmarks.faults.inputs`), files the suite reads (:mod:`~benchmarks.faults.artifacts`)
and the machine and process (:mod:`~benchmarks.faults.system`); shared runners and fixtures in
:mod:`~benchmarks.faults.common`."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.faults import artifacts, inputs, system
from benchmarks.faults.common import Case

#: Every class of fault, in report order: name → its cases.
CLASSES: dict[str, Callable[[], dict[str, Case]]] = {
    "bad input": inputs.bad_input,
    "failed runs": inputs.failed_runs,
    "non-finite options": inputs.non_finite,
    "unverified artifacts": artifacts.unverified,
    "unreadable files": artifacts.unreadable,
    **system.CLASSES,
}
