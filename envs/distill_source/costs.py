"""What each phase's images would cost to make: the optional compute term of the reward.

The pools are generated once and cached, so an episode's wall-clock time says nothing about
its data. Instead each source has a fixed cost in milliseconds per 28×28 image, measured by
``benchmarks/speed/kd_sources_render.py`` on the reference machine (2 CPU cores, llvmpipe
OpenGL; ``benchmarks/results/kd_sources_render.json``), and so does each augmentation level.
A phase's cost is ``updates · batch · (Σ_k w_k · source_ms_k + augment_ms)``; with
``compute_cost = c`` the reward loses ``c`` per second of it. Deterministic, so rollouts stay
reproducible; override the table with ``source_cost_ms``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# 1000 / (images per second) at 28×28×1, 2 threads, from kd_sources_render.json
SOURCE_MS_PER_IMAGE: dict[str, float] = {
    "target": 0.061, "digits": 0.031, "photos": 0.284, "opengl": 0.060, "leaves": 0.788,
    "fractals": 2.176, "noise": 0.098, "uniform": 0.002,
}
STORED_MS_PER_IMAGE = SOURCE_MS_PER_IMAGE["target"]  # any other stored dataset
AUGMENT_MS_PER_IMAGE: dict[str, float] = {"none": 0.0, "standard": 0.004, "heavy": 0.135}


def source_costs(sources: Sequence[str], override: Mapping[str, float] | None = None
                 ) -> np.ndarray:
    """Milliseconds per image of each source (``override`` first, then the measured table)."""
    table = {**SOURCE_MS_PER_IMAGE, **(override or {})}
    out = np.array([float(table.get(s, STORED_MS_PER_IMAGE)) for s in sources])
    if not np.all(np.isfinite(out)) or (out < 0).any():
        raise ValueError(f"source_cost_ms must be finite and ≥ 0 ms per image, got "
                         f"{dict(zip(sources, out.tolist(), strict=True))}")
    return out


def phase_cost_s(weights: np.ndarray, cost_ms: np.ndarray, augment: str, images: int) -> float:
    """Seconds to make ``images`` images drawn with ``weights`` and augmented at ``augment``."""
    per_image = float(np.dot(weights, cost_ms)) + AUGMENT_MS_PER_IMAGE[augment]
    return images * per_image / 1000.0
