"""``torch.compile`` without the noise of a machine that has a CUDA toolkit but no GPU.

Inductor imports ``torch.utils.cpp_extension`` to build CPU kernels; at import that module
looks for a CUDA toolkit (``CUDA_HOME``, ``nvcc`` on the PATH) and, when it finds one while
``torch.cuda.is_available()`` is False, warns "No CUDA runtime is found, using
CUDA_HOME=...". Nothing CUDA is built for a CPU kernel, so on such a machine every run that
compiles printed a warning about nothing. :func:`compile_quietly` drops that one message
(only while CUDA is unavailable); every other record of that logger still shows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

CPP_EXTENSION_LOGGER = "torch.utils.cpp_extension"
NO_CUDA_RUNTIME = "No CUDA runtime is found"


class NoCudaRuntimeFilter(logging.Filter):
    """Drops ``torch.utils.cpp_extension``'s "No CUDA runtime is found" warning when CUDA is
    unavailable."""

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
