"""DynamicPTQ: choose activation bit-widths per layer and per input under dynamic PTQ (P1).

Modules: :mod:`~envs.ptq.env` (the single env), :mod:`~envs.ptq.vector` (batched Gymnasium
vector env), :mod:`~envs.ptq.core` (the batched episode engine both drive),
:mod:`~envs.ptq.config`, :mod:`~envs.ptq.resources` (network, data, FP cache),
:mod:`~envs.ptq.actions`, :mod:`~envs.ptq.budget` (HAQ-style repair, action masks),
:mod:`~envs.ptq.baselines` (uniform, random, greedy), :mod:`~envs.ptq.render` and
:mod:`~envs.ptq.rollout` (a policy over a whole split, in batches).
"""

from envs.ptq.env import DynamicPTQEnv, make_spaces
from envs.ptq.vector import PTQVectorEnv

__all__ = ["DynamicPTQEnv", "PTQVectorEnv", "make_spaces"]
