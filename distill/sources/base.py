"""The transfer-set source interface shared by every source.

A source turns a seed into images for a given teacher: float32 ``[B, C, H, W]`` in ``[0, 1]``
at the teacher's resolution and channel count. ``sample(n, seed)`` is a pure function of
``(n, seed)``; :meth:`Source.batches` derives one seed per batch from a base seed, so a stream
of batches is reproducible too.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from models.device import intra_op_threads

LUMA = (0.299, 0.587, 0.114)
F_ = TypeVar("F_", bound=Callable)


def single_threaded(fn: F_) -> F_:
    """Run ``fn`` with one intra-op thread (:func:`models.device.intra_op_threads`).

    The procedural sources are long chains of small tensor ops; on a busy 2-core machine the
    thread hand-offs of each op cost far more than they save (measured ~10× slower).
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with intra_op_threads(1):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def derived_seed(*words: int) -> int:
    """A 63-bit seed hashed from ``words`` (non-negative integers)."""
    return int(np.random.SeedSequence(list(words)).generate_state(1, dtype=np.uint64)[0] >> 1)


def batch_seed(seed: int, index: int) -> int:
    """A 63-bit seed for batch ``index`` of a stream started from ``seed``."""
    return derived_seed(seed, index)


def rng_for(seed: int) -> np.random.Generator:
    """NumPy generator for one ``sample`` call."""
    return np.random.default_rng(np.random.SeedSequence(seed))


def gen_for(seed: int) -> torch.Generator:
    """Torch CPU generator for one ``sample`` call."""
    g = torch.Generator()
    g.manual_seed(seed & 0x7FFF_FFFF_FFFF_FFFF)
    return g


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """RGB → luminance for 1-channel targets, grey → repeated RGB for 3-channel ones."""
    c = x.shape[1]
    if c == channels:
        return x
    if channels == 1 and c == 3:
        w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * w).sum(1, keepdim=True)
    if c == 1:
        return x.expand(-1, channels, -1, -1).contiguous()
    raise ValueError(f"cannot convert {c} channels to {channels}")


def fit_images(x: torch.Tensor, image_size: tuple[int, int], channels: int) -> torch.Tensor:
    """Resize (antialiased bilinear) and convert channels; output clamped to ``[0, 1]``."""
    x = x.float()
    if tuple(x.shape[-2:]) != tuple(image_size):
        x = F.interpolate(x, size=tuple(image_size), mode="bilinear", align_corners=False,
                          antialias=x.shape[-1] > image_size[1] or x.shape[-2] > image_size[0])
    return to_channels(x, channels).clamp_(0.0, 1.0).contiguous()


class Source(ABC):
    """A named, seeded generator of transfer-set images for one teacher input shape."""

    name: str = "source"

    def __init__(self, image_size: tuple[int, int] | int, channels: int) -> None:
        if isinstance(image_size, int):
            image_size = (image_size, image_size)
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        self.image_size: tuple[int, int] = (int(image_size[0]), int(image_size[1]))
        self.channels = int(channels)

    @abstractmethod
    def sample(self, n: int, seed: int) -> torch.Tensor:
        """``n`` images, float32 ``[n, C, H, W]`` in ``[0, 1]``, a pure function of ``(n, seed)``."""

    def canvas(self, seed: int, supersample: int = 1) -> tuple[torch.Generator, int, int, int]:
        """The seeded generator of one batch, ``supersample`` and the canvas ``(H·s, W·s)``."""
        s = int(supersample)
        return gen_for(seed), s, self.image_size[0] * s, self.image_size[1] * s

    def batches(self, batch_size: int, seed: int, num_batches: int | None = None
                ) -> Iterator[torch.Tensor]:
        """Stream of batches; batch ``k`` is ``sample(batch_size, batch_seed(seed, k))``."""
        k = 0
        while num_batches is None or k < num_batches:
            yield self.sample(batch_size, batch_seed(seed, k))
            k += 1

    def __repr__(self) -> str:
        h, w = self.image_size
        return f"{type(self).__name__}(name={self.name!r}, image_size=({h}, {w}), channels={self.channels})"


class TensorSource(Source):
    """A finite pool of images held in memory; samples are drawn without replacement per call.

    ``sample`` returns a seeded random subset (with replacement only when ``n`` exceeds the
    pool); :meth:`batches` walks seeded permutations epoch by epoch, so every image is used
    once per epoch.
    """

    def __init__(self, images: torch.Tensor, image_size: tuple[int, int] | int, channels: int,
                 name: str = "tensor") -> None:
        super().__init__(image_size, channels)
        if images.ndim != 4 or len(images) == 0:
            raise ValueError(f"expected a non-empty [N, C, H, W] tensor, got {tuple(images.shape)}")
        self.name = name
        self.images = fit_images(images, self.image_size, self.channels)

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, n: int, seed: int) -> torch.Tensor:
        g = gen_for(seed)
        m = len(self.images)
        idx = torch.randperm(m, generator=g)[:n] if n <= m else torch.randint(0, m, (n,), generator=g)
        return self.images[idx]

    def batches(self, batch_size: int, seed: int, num_batches: int | None = None
                ) -> Iterator[torch.Tensor]:
        m, k, epoch = len(self.images), 0, 0
        while True:
            perm = torch.randperm(m, generator=gen_for(batch_seed(seed, epoch)))
            epoch += 1
            for start in range(0, m - batch_size + 1 if m >= batch_size else 1, batch_size):
                if num_batches is not None and k >= num_batches:
                    return
                idx = perm[start:start + batch_size]
                if len(idx) < batch_size:  # pool smaller than a batch: top up with replacement
                    extra = torch.randint(0, m, (batch_size - len(idx),),
                                          generator=gen_for(batch_seed(seed, -1 - k)))
                    idx = torch.cat([idx, extra])
                yield self.images[idx]
                k += 1


class FunctionSource(Source):
    """A source made from a function ``fn(n, gen, image_size, channels)`` (see
    :func:`distill.sources.register_source`): ``sample(n, seed)`` calls it with a torch
    generator seeded from ``seed`` and checks what it returns."""

    def __init__(self, image_size: tuple[int, int] | int, channels: int,
                 fn: Callable[..., torch.Tensor], name: str) -> None:
        super().__init__(image_size, channels)
        self.fn, self.name = fn, name

    def sample(self, n: int, seed: int) -> torch.Tensor:
        x = self.fn(n, gen_for(seed), self.image_size, self.channels)
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(x)
        want = f"[{n}, {self.channels}, {self.image_size[0]}, {self.image_size[1]}]"
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or len(x) != n:
            got = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
            raise ValueError(f"source {self.name!r} returned {got} for n={n}; it must return "
                             f"images {want} (float in [0, 1])")
        if x.is_floating_point() and not torch.isfinite(x).all():
            raise ValueError(f"source {self.name!r} returned NaN or inf pixels")
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
        return fit_images(x.detach().cpu(), self.image_size, self.channels)


class MixtureSource(Source):
    """A weighted mixture: each batch draws its per-source counts from a seeded multinomial,
    samples every member with its own derived seed, and shuffles the result."""

    def __init__(self, sources: list[Source], weights: list[float] | None = None) -> None:
        if not sources:
            raise ValueError("a mixture needs at least one source")
        super().__init__(sources[0].image_size, sources[0].channels)
        for s in sources:
            if s.image_size != self.image_size or s.channels != self.channels:
                raise ValueError(f"{s!r} does not match {sources[0]!r}")
        w = np.ones(len(sources)) if weights is None else np.asarray(weights, dtype=np.float64)
        if len(w) != len(sources) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"bad mixture weights {weights}")
        self.sources, self.weights = list(sources), w / w.sum()
        self.name = "+".join(f"{s.name}:{wi:g}" for s, wi in zip(self.sources, self.weights, strict=True))

    def sample(self, n: int, seed: int) -> torch.Tensor:
        rng = rng_for(seed)
        counts = rng.multinomial(n, self.weights)
        parts = [s.sample(int(c), batch_seed(seed, i))
                 for i, (s, c) in enumerate(zip(self.sources, counts, strict=True)) if c > 0]
        x = torch.cat(parts)
        return x[torch.from_numpy(rng.permutation(n))]
