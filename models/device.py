"""One device option for every command line: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

The agent and every network an env builds (the quantized classifier, the teacher and student,
the field reconstructor) are placed on the device this returns, so a run never splits across
devices. Asking for CUDA on a machine without it is bad input, not a silent CPU run.
"""

from __future__ import annotations

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


class DeviceError(ValueError):
    """The requested device does not exist on this machine (exit 2 on the command line)."""


def resolve_device(name: str | torch.device | None = "auto") -> str:
    """The concrete device string for ``name``.

    ``auto`` (or ``None``) is ``cuda`` when CUDA is available, else ``cpu``; ``cuda`` or
    ``cuda:N`` without CUDA (or with fewer devices) raises :class:`DeviceError` naming the fix.
    """
    text = "auto" if name is None else str(name).strip().lower()
    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return "cpu"
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r}: CUDA is not available on this machine "
                              f"(torch.cuda.is_available() is False); use --device cpu or auto")
        index = text.partition(":")[2]
        if index:
            if not index.isdigit() or int(index) >= torch.cuda.device_count():
                raise DeviceError(f"device {name!r}: this machine has "
                                  f"{torch.cuda.device_count()} CUDA device(s)")
        return text
    raise DeviceError(f"device must be one of {DEVICE_CHOICES} or cuda:N, got {name!r}")
