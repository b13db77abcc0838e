"""The procedural GLSL shader library used by the ``opengl`` transfer-set source.

Every entry is the body of a fragment shader defining ``vec3 shade(vec2 p)``; see
:mod:`distill.sources.shaders.common` for the globals (random uniforms) and helpers it may use.
"""

from __future__ import annotations

from dataclasses import dataclass

from distill.sources.shaders import cells, noise, polar, scenes, waves
from distill.sources.shaders.common import fragment_source


@dataclass(frozen=True)
class Shader:
    """One library shader: its name, family (module) and GLSL body."""

    name: str
    family: str
    body: str

    def fragment(self, gray: bool) -> str:
        return fragment_source(self.body, gray)


LIBRARY: tuple[Shader, ...] = tuple(
    Shader(name, module.__name__.rsplit(".", 1)[-1], body)
    for module in (waves, noise, cells, polar, scenes)
    for name, body in module.SHADERS.items()
)

SHADER_NAMES: tuple[str, ...] = tuple(s.name for s in LIBRARY)


def get_shaders(names: list[str] | tuple[str, ...] | None = None) -> tuple[Shader, ...]:
    """The library, or the named subset (unknown names raise with the valid ones listed)."""
    if names is None:
        return LIBRARY
    by_name = {s.name: s for s in LIBRARY}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise KeyError(f"unknown shader(s) {unknown}; valid: {', '.join(SHADER_NAMES)}")
    return tuple(by_name[n] for n in names)
