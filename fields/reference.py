"""Reference implementations of the Voronoi-CNN input: what :class:`fields.voronoi.SensorGrid`
must equal, and what ``benchmarks/fields.py`` times it against (its speed ratios).

Voronoi-CNN builds every input with ``scipy.interpolate.griddata(..., method='nearest')`` per
snapshot, on planar grid coordinates (lat/lon treated as a plane on geographic grids).
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import griddata
from scipy.spatial import cKDTree


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
