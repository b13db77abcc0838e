"""Where networks run: one device option for every command line (``auto``, ``cpu``, ``cuda``
or ``cuda:N``), the number of CPU threads a block of torch work uses, and ``torch.compile``
without a CUDA warning on a machine that has no GPU (:func:`compile_quietly`).

The agent and every network an env builds (the quantized classifier, the teacher and student,
the field reconstructor) are placed on the device this returns, so a run never splits across
devices. Asking for CUDA on a machine without it is bad input, not a silent CPU run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

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


@contextmanager
def intra_op_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` intra-op CPU threads (``torch.set_num_threads``), restoring
    the previous count after; ``None`` or ``n ≤ 0`` leaves the count unchanged.

    The count is process-wide, so it is only changed from the main thread: in a background
    thread (e.g. a prefetching renderer) the block runs with the current count instead of
    silently throttling the main thread's work. Small kernels (procedural image sources, the
    lattice-Boltzmann solver, small students) run fastest on one thread on a busy machine.
    """
    old = torch.get_num_threads()
    if not n or n <= 0 or old == n or threading.current_thread() is not threading.main_thread():
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


CPP_EXTENSION_LOGGER = "torch.utils.cpp_extension"
NO_CUDA_RUNTIME = "No CUDA runtime is found"


class NoCudaRuntimeFilter(logging.Filter):
    """Drops ``torch.utils.cpp_extension``'s "No CUDA runtime is found, using CUDA_HOME=..."
    warning while CUDA is unavailable.

    Inductor imports that module to build CPU kernels; at import it looks for a CUDA toolkit
    (``CUDA_HOME``, ``nvcc`` on the PATH) and warns when it finds one but no GPU, although
    nothing CUDA is built for a CPU kernel. Every other record of that logger still shows.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (str(record.msg).startswith(NO_CUDA_RUNTIME)
                    and not torch.cuda.is_available())


def quiet_cpp_extension() -> None:
    """Install :class:`NoCudaRuntimeFilter` on the ``torch.utils.cpp_extension`` logger (once;
    before that module is imported, which happens at the first CPU compilation)."""
    log = logging.getLogger(CPP_EXTENSION_LOGGER)
    if not any(isinstance(f, NoCudaRuntimeFilter) for f in log.filters):
        log.addFilter(NoCudaRuntimeFilter())


def compile_quietly(fn: Callable[..., Any], **kwargs: Any) -> Callable[..., Any]:
    """``torch.compile(fn, **kwargs)`` after :func:`quiet_cpp_extension`."""
    quiet_cpp_extension()
    return torch.compile(fn, **kwargs)
