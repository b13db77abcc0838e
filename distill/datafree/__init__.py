"""Data-free KD baselines on the same teacher and student as the transfer-set sources (P4):
:mod:`~distill.datafree.deepinversion` (batch-norm statistics inversion, a fixed image pool)
and :mod:`~distill.datafree.dafl` (a generator trained against the teacher, jointly with the
student)."""

from distill.datafree.dafl import DAFLConfig, Generator, train_dafl
from distill.datafree.deepinversion import DeepInversionConfig, deep_inversion

__all__ = ["DAFLConfig", "DeepInversionConfig", "Generator", "deep_inversion", "train_dafl"]
