"""Network–policy pairs of paper P1: ``python -m agents.pairs``.

Modules: :mod:`~agents.pairs.trainer` (the alternating PPO / network rounds, attacks on
frozen networks), :mod:`~agents.pairs.options` (the flags and the search's configuration),
:mod:`~agents.pairs.user_net` (the standard network or the researcher's own ``--net`` /
``--data``), :mod:`~agents.pairs.loss` (the network objective),
:mod:`~agents.pairs.artifact` (the published pair folder and :func:`load_pair`) and
:mod:`~agents.pairs.matrix` (a network under every attack of the hard protocol).
"""

from agents.pairs.artifact import Pair, load_pair
from agents.pairs.trainer import PairArgs, PairTrainer, main

__all__ = ["Pair", "PairArgs", "PairTrainer", "load_pair", "main"]
