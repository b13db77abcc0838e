"""Reference implementations of the Voronoi-CNN input, for correctness and honest speed ratios.

Voronoi-CNN builds every input with ``scipy.interpolate.griddata(..., method='nearest')`` per
snapshot, on planar grid coordinates (lat/lon treated as a plane on geographic grids).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from scipy.interpolate import griddata
from scipy.spatial import cKDTree

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


def griddata_voronoi_vectorised(values: np.ndarray, sensors: np.ndarray,
                                 shape: tuple[int, int]) -> np.ndarray:
    """The same images from one ``griddata`` call for the whole batch (values ``(K, B)``)."""
    h, w = shape
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64),
                         indexing="ij")
    grid_pts = np.stack([yy.reshape(-1), xx.reshape(-1)], axis=-1)
    b = len(values)
    out = griddata(grid_pts[sensors], values.reshape(b, -1)[:, sensors].T, grid_pts,
                   method="nearest")
    return np.ascontiguousarray(out.T).reshape(b, h, w)


def kdtree_voronoi(values: np.ndarray, points: np.ndarray, sensors: np.ndarray) -> np.ndarray:
    """The same images with ``cKDTree.query`` and NumPy fancy indexing (``points``: cell
    coordinates, 3-D unit vectors on the sphere)."""
    _, nearest = cKDTree(points[sensors]).query(points, k=1)
    b = len(values)
    return values.reshape(b, -1)[:, sensors[nearest]].reshape(values.shape)


def _best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def speed_ratio(grid: SensorGrid, values: np.ndarray, layout: Layout,
                repeats: int = 5) -> dict[str, float]:
    """Seconds per batch of every way to build the nearest-sensor images, in the same run.

    References: ``griddata`` per snapshot (the original Voronoi-CNN scripts), one vectorised
    ``griddata`` for the batch, and ``cKDTree.query`` + NumPy indexing (the best SciPy path;
    on the sphere it runs on the same unit vectors as ours). Ours: the gather with the layout's
    map precomputed (fixed layout), and with the map built for the batch (a new layout).
    ``ratio_*`` are reference time / our time against the best SciPy path.
    """
    coords = (grid.lat, grid.lon) if grid.spherical else None
    x = torch.from_numpy(values)
    t = {"griddata_per_snapshot_s": _best_time(
            lambda: griddata_voronoi(values, layout.sensors, grid.shape, coords), repeats),
         "kdtree_s": _best_time(lambda: kdtree_voronoi(values, grid.points, layout.sensors),
                                repeats),
         "gather_s": _best_time(lambda: grid.voronoi(x, layout), repeats),
         "gather_with_build_s": _best_time(
             lambda: grid.voronoi(x, grid.layout(layout.sensors)), repeats)}
    if not grid.spherical:  # griddata sees planar coordinates only
        t["griddata_vectorised_s"] = _best_time(
            lambda: griddata_voronoi_vectorised(values, layout.sensors, grid.shape), repeats)
    best = min(v for k, v in t.items() if k not in ("gather_s", "gather_with_build_s"))
    return {"batch": float(len(values)), **t, "best_scipy_s": best,
            "ratio": best / t["gather_s"], "ratio_with_build": best / t["gather_with_build_s"],
            "ratio_vs_griddata_per_snapshot": t["griddata_per_snapshot_s"] / t["gather_s"]}
