"""Network–policy pairs of paper P1: ``python -m agents.pairs``.

Modules: :mod:`~agents.pairs.trainer` (the alternating PPO / network rounds, the artifact,
:func:`load_pair`) and :mod:`~agents.pairs.loss` (the network objective and the
training-time quantizer).
"""

from agents.pairs.trainer import PairTrainer, load_pair, main

__all__ = ["PairTrainer", "load_pair", "main"]
