"""Sweeps of trainings or benchmarks: ``python -m agents.sweep CONFIG.yaml``.

Modules: :mod:`~agents.sweep.run` (the driver), :mod:`~agents.sweep.config` (sweep files),
:mod:`~agents.sweep.targets` (what a trial runs), :mod:`~agents.sweep.trial` (one trial's
folder, attempts and retries), :mod:`~agents.sweep.engines` (local pool, Ray Tune) and
:mod:`~agents.sweep.results` (the table with CIs and paired tests).
"""

from agents.sweep.run import main

__all__ = ["main"]
