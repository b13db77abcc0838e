"""Per-example values of one split, computed by the network lazily in fixed chunks.

Values never depend on the order examples were asked for (a chunk is always computed whole),
and they are dropped when any of the network's parameters or buffers is modified in place
(an optimizer step during quantization-aware training, ``load_state_dict``, ``mul_``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch

from models.datasets import Split
from models.quant import DynamicQuantizer

CHUNK = 128


def fingerprint(tensors: list[torch.Tensor]) -> tuple:
    """Changes whenever one of ``tensors`` is modified in place."""
    return tuple(t._version for t in tensors)


class ChunkCache(ABC):
    """Subclasses allocate their value tensors in :meth:`_allocate` and compute the examples
    ``rows`` (one chunk) in :meth:`_fill`; :meth:`_ready` makes examples ``idx`` available."""

    def __init__(self, qnet: DynamicQuantizer, split: Split, device: torch.device) -> None:
        self.qnet, self.split, self.device = qnet, split, device
        self._clear()

    @abstractmethod
    def _allocate(self, n: int, dtype: torch.dtype) -> None:
        """Create the value tensors for ``n`` examples."""

    @abstractmethod
    def _fill(self, rows: np.ndarray) -> None:
        """Compute the values of examples ``rows`` (one chunk)."""

    def _clear(self) -> None:
        n = len(self.split)
        self._allocate(n, next(self.qnet.parameters()).dtype)
        self.filled = np.zeros((n + CHUNK - 1) // CHUNK, dtype=bool)
        self._tensors = [*self.qnet.net.parameters(), *self.qnet.net.buffers()]
        self._key = fingerprint(self._tensors)

    @torch.no_grad()
    def _ready(self, idx: np.ndarray) -> torch.Tensor:
        """Compute the missing chunks of ``idx``; return ``idx`` as an index tensor."""
        if fingerprint(self._tensors) != self._key:
            self._clear()
        chunks = np.unique(np.asarray(idx) // CHUNK)
        for c in chunks[~self.filled[chunks]]:
            self._fill(np.arange(int(c) * CHUNK, min((int(c) + 1) * CHUNK, len(self.split))))
            self.filled[c] = True
        self._key = fingerprint(self._tensors)
        return torch.as_tensor(np.asarray(idx), device=self.device)
