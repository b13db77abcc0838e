"""DistillSource: choose the transfer set a student is distilled from next (P2, P4).

Modules: :mod:`~envs.distill_source.env` (the env), :mod:`~envs.distill_source.config`,
:mod:`~envs.distill_source.actions`, :mod:`~envs.distill_source.phase` (one phase of KD and
the probe), :mod:`~envs.distill_source.resources` (teacher, pools, cached logits) and
:mod:`~envs.distill_source.render`.
"""

from envs.distill_source.env import DistillSourceEnv

__all__ = ["DistillSourceEnv"]
