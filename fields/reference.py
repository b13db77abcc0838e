"""The original Voronoi-CNN input code path, kept as the speed and correctness reference.

Voronoi-CNN builds every input with ``scipy.interpolate.griddata(..., method='nearest')`` per
snapshot, on planar grid coordinates (lat/lon treated as a plane on geographic grids).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from scipy.interpolate import griddata

from fields.voronoi import Layout, SensorGrid


def griddata_voronoi(values: np.ndarray, sensors: np.ndarray, shape: tuple[int, int],
                     coords: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Nearest-sensor images ``(B, H, W)`` with one ``griddata`` call per snapshot."""
    h, w = shape
    if coords is None:
        coords = (np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64))
    yy, xx = np.meshgrid(coords[0], coords[1], indexing="ij")
    grid_pts = np.stack([yy.reshape(-1), xx.reshape(-1)], axis=-1)
    pts = grid_pts[sensors]
    out = np.empty_like(values)
    for i, snap in enumerate(values):
        out[i] = griddata(pts, snap.reshape(-1)[sensors], (yy, xx), method="nearest")
    return out


def speed_ratio(grid: SensorGrid, values: np.ndarray, layout: Layout,
                repeats: int = 5) -> dict[str, float]:
    """Time per batch of ``griddata`` per snapshot vs :meth:`SensorGrid.voronoi` (same run).

    ``ratio``: the layout's nearest-sensor map is precomputed (the fixed-layout case);
    ``ratio_with_build``: building the map is timed too, once per batch.
    """
    coords = (grid.lat, grid.lon) if grid.spherical else None
    t_ref = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        griddata_voronoi(values, layout.sensors, grid.shape, coords)
        t_ref = min(t_ref, time.perf_counter() - t0)
    x = torch.from_numpy(values)
    t_ours = t_build = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        grid.voronoi(x, layout)
        t_ours = min(t_ours, time.perf_counter() - t0)
        t0 = time.perf_counter()
        grid.voronoi(x, grid.layout(layout.sensors))
        t_build = min(t_build, time.perf_counter() - t0)
    return {"batch": float(len(values)), "griddata_s": t_ref, "gather_s": t_ours,
            "gather_with_build_s": t_build, "ratio": t_ref / t_ours,
            "ratio_with_build": t_ref / t_build}
