"""Env-specific analyses that ``agents.evaluate`` runs through hooks.

Modules: :mod:`~agents.analysis.hooks` (the registry), :mod:`~agents.analysis.ptq`
(DynamicPTQ: whole-split drop, baselines, vulnerability) and
:mod:`~agents.analysis.distill_source` (DistillSource: the schedule).
"""
