"""Feeding the student: fixed image pools with their teacher logits, offline boundary samples,
and a background prefetcher for on-the-fly sources.

* :class:`Pool` walks a fixed transfer set in seeded permutations; batch ``k`` is a pure
  function of ``(seed, k)``, so a resumed run continues with the same batches.
* :func:`boundary_pool` runs the bold-driver attack (:mod:`distill.attack`) over part of a pool
  once and returns the boundary samples with their teacher logits (P2 builds them offline).
* :class:`Prefetcher` renders the next batches in a background thread while the student trains
  (every GL call runs on one GL thread per process; see :func:`distill.sources.opengl.on_gl_thread`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

import torch
from torch import nn

from distill.attack import boundary_attack
from distill.guided import teacher_logits
from distill.sources.base import batch_seed, gen_for


class Pool:
    """A fixed transfer set (images ``[N, C, H, W]``, optional teacher logits ``[N, K]``)."""

    def __init__(self, images: torch.Tensor, logits: torch.Tensor | None = None) -> None:
        if images.ndim != 4 or len(images) == 0:
            raise ValueError(f"a pool needs non-empty [N, C, H, W] images, got {tuple(images.shape)}")
        if logits is not None and len(logits) != len(images):
            raise ValueError(f"{len(images)} images but {len(logits)} logits")
        self.images, self.logits = images, logits

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, batch_size: int, seed: int, k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Batch ``k`` of the stream: epoch ``e = k // (N // B)`` is a seeded permutation."""
        n = len(self.images)
        per_epoch = max(n // batch_size, 1)
        epoch, j = divmod(k, per_epoch)
        if n >= batch_size:
            perm = torch.randperm(n, generator=gen_for(batch_seed(seed, epoch)))
            idx = perm[j * batch_size:(j + 1) * batch_size]
        else:  # tiny pool: sample with replacement
            idx = torch.randint(0, n, (batch_size,), generator=gen_for(batch_seed(seed, k)))
        return self.images[idx], None if self.logits is None else self.logits[idx]

    def batches(self, batch_size: int, seed: int, start: int = 0, stop: int | None = None
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        k = start
        while stop is None or k < stop:
            yield self.batch(batch_size, seed, k)
            k += 1


def boundary_pool(teacher: nn.Module, images: torch.Tensor, seed: int, batch_size: int = 256,
                  progress: Callable[[int], None] | None = None, **attack_kwargs
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Boundary samples (up to four per image) of ``images`` with their teacher logits.

    ``attack_kwargs`` go to :func:`distill.attack.boundary_attack` (``step``, ``max_iter``,
    ``confidence``, ``deep_steps``, ``eps``). Targets are random classes other than the
    teacher's prediction, drawn from a generator seeded by ``seed``.
    """
    dev = next(teacher.parameters()).device
    gen = torch.Generator().manual_seed(int(seed))
    out = []
    for i in range(0, len(images), batch_size):
        bs = boundary_attack(teacher, images[i:i + batch_size].to(dev), gen, **attack_kwargs)
        out.append(bs.images.cpu())
        if progress is not None:
            progress(len(images[i:i + batch_size]))
    x = torch.cat(out) if out else images[:0]
    return x, teacher_logits(teacher, x, batch_size) if len(x) else torch.empty(0)


class Prefetcher:
    """Iterate ``make(k)`` for ``k = start, start + 1, ...`` with up to ``depth`` results
    computed ahead in a daemon thread. Exceptions are re-raised in the consumer."""

    _END = object()

    def __init__(self, make: Callable[[int], object], start: int = 0, stop: int | None = None,
                 depth: int = 4) -> None:
        self.q: queue.Queue = queue.Queue(maxsize=max(depth, 1))
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(make, start, stop), daemon=True,
                                       name="distill-prefetch")
        self.thread.start()

    def _run(self, make, start, stop) -> None:
        k = start
        try:
            while not self._stop.is_set() and (stop is None or k < stop):
                item = make(k)
                while not self._stop.is_set():
                    try:
                        self.q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                k += 1
            self.q.put(self._END)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            self.q.put(e)

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self):
        item = self.q.get()
        if item is self._END:
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """Stop the worker (it finishes the batch it is rendering)."""
        self._stop.set()
        try:
            while True:
                self.q.get_nowait()
        except queue.Empty:
            pass
        self.thread.join(timeout=10)

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["Pool", "Prefetcher", "boundary_pool"]
