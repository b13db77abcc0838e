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
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from distill.sources.base import MixtureSource, Source, TensorSource, fit_images
from distill.sources.fractals import FractalSource
from distill.sources.opengl import OpenGLSource, OpenGLUnavailableError
from distill.sources.real import DatasetSource, PhotoPatchSource
from distill.sources.synthetic import GaussianNoiseSource, LeavesSource, UniformNoiseSource

OTHER_DATASETS = ("mnist", "fashion-mnist", "cifar10", "cifar100", "svhn")
# Options describing the teacher's setting, passed only to the sources that take them.
CONTEXT_OPTIONS = ("dataset", "root")


def _target(image_size, channels, dataset: str, root: str | None = None) -> Source:
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


def list_sources() -> list[str]:
    """Valid source names."""
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


__all__ = ["SOURCES", "DatasetSource", "FractalSource", "GaussianNoiseSource", "LeavesSource",
           "MixtureSource", "OpenGLSource", "OpenGLUnavailableError", "PhotoPatchSource",
           "Source", "TensorSource", "UniformNoiseSource", "fit_images", "get_source",
           "list_sources"]
