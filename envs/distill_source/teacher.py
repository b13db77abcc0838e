"""The DistillSource env's pinned teachers and the check that a teacher is the expected one.

The env distils from a committed network (:mod:`models.zoo`, e.g. ``fashion-mnist/cnn``)
so every machine uses the same teacher, and refuses a teacher whose weights differ from the
pinned ones unless told otherwise (``teacher_sha256=None``, or the other teacher's own
checksum). A teacher with options (e.g. the held-out ``seed: 1`` teacher of
``benchmarks/kd_source_policy.py``) is pinned under ``<dataset>/<arch>?<options>``. Re-pin
with ``python -m models.zoo [--kw seed:1]``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from models.cache import state_dict_sha256 as weights_sha256
from models.zoo import load_pinned, pin_key, pinned_entry

__all__ = ["TeacherMismatchError", "check_teacher", "load_pinned", "pinned_entry",
           "weights_sha256"]


class TeacherMismatchError(ValueError):
    """The teacher's weights are not the ones the env was told to expect."""


def check_teacher(net: nn.Module, dataset: str, arch: str, expected: str | None,
                  options: dict[str, Any] | None = None) -> str:
    """The teacher's weights sha256, after checking it against ``expected`` (``"pinned"``: the
    pinned one of ``(dataset, arch, options)`` if any; ``None``: no check; else a sha256)."""
    actual = weights_sha256(net)
    if expected == "pinned":
        entry = pinned_entry(dataset, arch, options)
        expected = entry["weights_sha256"] if entry else None
    if expected is not None and actual != expected:
        raise TeacherMismatchError(
            f"the teacher's weights (sha256 {actual[:16]}…) are not the pinned "
            f"{pin_key(dataset, arch, options)} "
            f"teacher ({expected[:16]}…); results with another teacher are not comparable. Pass "
            f"teacher_sha256=None to use it anyway, or teacher_sha256='{actual}' to pin it")
    return actual
