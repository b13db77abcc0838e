"""Transfer-set sources by name.

``get_source(name, image_size=..., channels=...)`` builds any source; names may be combined into
a mixture with ``+`` and optional weights, e.g. ``"opengl:0.7+leaves:0.3"``.

========== =================================================================================
name       images
========== =================================================================================
target     the teacher's own training split (``dataset=`` its dataset name)
digits     scikit-learn's 8×8 digits, resized (real, out of domain)
photos     random patches of the natural photos bundled with scikit-learn / scikit-image
mnist, fashion-mnist, cifar10, cifar100, svhn
           another dataset from :mod:`models.datasets`, when its files are available
opengl     procedural GLSL shaders rendered headless (moderngl + EGL)
leaves     dead leaves: occluding shapes, random colours, power-law radii
fractals   iterated-function-system attractors
noise      Gaussian noise with a target mean/std (``mean=``/``std=`` or ``dataset=``)
uniform    uniform noise
========== =================================================================================

New transfer sets join with :func:`register_source` (any name used afterwards in ``sources=``
of DistillSource, in ``python -m distill.train --source``, in mixtures).
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from typing import Any

import torch

from distill.sources.base import FunctionSource, MixtureSource, Source, TensorSource, fit_images
from distill.sources.fractals import FractalSource
from distill.sources.opengl import OpenGLSource, OpenGLUnavailableError
from distill.sources.real import DatasetSource, PhotoPatchSource
from distill.sources.synthetic import GaussianNoiseSource, LeavesSource, UniformNoiseSource

OTHER_DATASETS = ("mnist", "fashion-mnist", "cifar10", "cifar100", "svhn")
# Options describing the teacher's setting, passed only to the sources that take them.
CONTEXT_OPTIONS = ("dataset", "root")


def _target(image_size, channels, dataset: str | None = None, root: str | None = None,
            images: torch.Tensor | None = None) -> Source:
    """The teacher's training images: ``images=`` (a user's ``[N, C, H, W]`` tensor) or the
    training split of the dataset named by ``dataset=``."""
    if images is not None:
        return TensorSource(images, image_size, channels, name="target")
    if dataset is None:
        raise ValueError("the target source needs the teacher's data: images= or dataset=")
    return DatasetSource(image_size, channels, dataset=dataset, split="train", root=root,
                         name="target")


def _noise(image_size, channels, mean=None, std=None, dataset: str | None = None,
           root: str | None = None) -> Source:
    if mean is None and std is None and dataset is not None:
        from models.datasets import load_dataset

        info = load_dataset(dataset, root=root).info
        mean, std = info.mean, info.std
    return GaussianNoiseSource(image_size, channels, mean=0.5 if mean is None else mean,
                               std=0.25 if std is None else std)


def _dataset(name: str) -> Callable[..., Source]:
    def make(image_size, channels, root: str | None = None, split: str = "all") -> Source:
        return DatasetSource(image_size, channels, dataset=name, split=split, root=root)

    return make


SOURCES: dict[str, Callable[..., Source]] = {
    "target": _target,
    "digits": _dataset("digits"),
    "photos": PhotoPatchSource,
    "opengl": OpenGLSource,
    "leaves": LeavesSource,
    "fractals": FractalSource,
    "noise": _noise,
    "uniform": UniformNoiseSource,
    **{n: _dataset(n) for n in OTHER_DATASETS},
}


BUILTIN_SOURCES = frozenset(SOURCES)
# registered name -> fingerprint of its code (and key=), part of its transfer sets' cache key
_FINGERPRINTS: dict[str, str] = {}
ImageFn = Callable[[int, torch.Generator, tuple[int, int], int], torch.Tensor]


def _code_text(fn: Any) -> str:
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):  # defined in a REPL or exec'd text: hash the bytecode
        code = getattr(fn, "__code__", None)
        if code is None:
            return f"{type(fn).__module__}.{type(fn).__qualname__}"
        return repr((code.co_code, code.co_consts, code.co_names))


def register_source(name: str, fn: ImageFn | type[Source], *, key: str = "",
                    replace: bool = False) -> None:
    """Add a transfer-set source ``name``, usable wherever source names are.

    ``fn`` is either a function ``fn(n, gen, image_size, channels)`` returning ``n`` images,
    a float tensor ``[n, channels, H, W]`` in ``[0, 1]`` (``image_size = (H, W)``, the
    teacher's input; other sizes are resized and 1 ↔ 3 channels converted), drawing every
    random number from ``gen`` (a seeded ``torch.Generator``: same seed, same images); or a
    :class:`Source` subclass, constructed as ``cls(image_size, channels, **options)``.

    Cached transfer sets of a registered source are keyed by its name, the text of its code
    and ``key``: pass a new ``key`` (a version, a hash of the files it reads) when its output
    changes without its code changing. Built-in names cannot be replaced; a registered name
    only with ``replace=True``.
    """
    if not isinstance(name, str) or not name or any(c in name for c in "+:,/ "):
        raise ValueError(f"a source name must be a non-empty string without '+', ':', ',', "
                         f"'/' or spaces, got {name!r}")
    if name in BUILTIN_SOURCES or (name in SOURCES and not replace):
        raise ValueError(f"source {name!r} already exists"
                         + ("" if name in BUILTIN_SOURCES else "; pass replace=True"))
    if isinstance(fn, type) and issubclass(fn, Source):
        factory: Callable[..., Source] = fn
    elif callable(fn):
        def factory(image_size, channels) -> Source:
            return FunctionSource(image_size, channels, fn, name)
    else:
        raise TypeError(f"register_source({name!r}, ...) needs a function "
                        f"fn(n, gen, image_size, channels) or a Source subclass, got {fn!r}")
    SOURCES[name] = factory
    _FINGERPRINTS[name] = hashlib.sha256(f"{_code_text(fn)}\0{key}".encode()).hexdigest()[:16]


def source_fingerprint(name: str) -> str | None:
    """``None`` for a built-in source (or a mixture of them); for one naming a registered
    source, the hash of the registered code that enters its cache key."""
    parts = [p.strip().partition(":")[0] for p in name.split("+")]
    found = [f"{p}={_FINGERPRINTS[p]}" for p in parts if p in _FINGERPRINTS]
    return ",".join(found) or None


def list_sources() -> list[str]:
    """Valid source names (built-in and registered)."""
    return list(SOURCES)


def _accepted(factory: Callable[..., Source], kwargs: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(factory).parameters
    return {k: v for k, v in kwargs.items() if k in params}


def get_source(name: str, *, image_size: tuple[int, int] | int, channels: int,
               **kwargs: Any) -> Source:
    """Build a source by name (or a ``+``-separated weighted mixture of names).

    Keyword arguments go to the source's constructor; in a mixture each member receives only
    the ones it accepts. The context options ``dataset=`` and ``root=`` reach only the sources
    that take them (``target``, ``noise``, ...), so callers may always pass them.
    """
    parts = [p.strip() for p in name.split("+") if p.strip()]
    if not parts:
        raise ValueError(f"empty source name; valid: {', '.join(SOURCES)}")
    names, weights = [], []
    for p in parts:
        n, _, w = p.partition(":")
        if n not in SOURCES:
            raise KeyError(f"unknown source {n!r}; valid: {', '.join(SOURCES)}")
        names.append(n)
        weights.append(float(w) if w else 1.0)
    if len(names) == 1:
        f = SOURCES[names[0]]
        # context options (dataset=, root=) go only where accepted; others stay strict
        kw = {k: v for k, v in kwargs.items() if k not in CONTEXT_OPTIONS or k in _accepted(f, kwargs)}
        return f(image_size, channels, **kw)
    return MixtureSource([SOURCES[n](image_size, channels, **_accepted(SOURCES[n], kwargs))
                          for n in names], weights)


__all__ = ["SOURCES", "DatasetSource", "FractalSource", "FunctionSource", "GaussianNoiseSource",
           "LeavesSource", "MixtureSource", "OpenGLSource", "OpenGLUnavailableError", "PhotoPatchSource",
           "Source", "TensorSource", "UniformNoiseSource", "fit_images", "get_source",
           "list_sources", "register_source", "source_fingerprint"]
