"""The speed ratio of the Voronoi gather against the best SciPy path (``benchmarks/fields.py``).

Every reference of :mod:`fields.reference` and both of ours are timed in the same run, on the
same batch, so the ratio does not depend on how loaded the machine is as much as a bare time.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.speed.timing import best_time
from fields.reference import griddata_voronoi, griddata_voronoi_vectorised, kdtree_voronoi
from fields.voronoi import Layout, SensorGrid


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
    t = {"griddata_per_snapshot_s": best_time(
            lambda: griddata_voronoi(values, layout.sensors, grid.shape, coords), repeats),
         "kdtree_s": best_time(lambda: kdtree_voronoi(values, grid.points, layout.sensors),
                                repeats),
         "gather_s": best_time(lambda: grid.voronoi(x, layout), repeats),
         "gather_with_build_s": best_time(
             lambda: grid.voronoi(x, grid.layout(layout.sensors)), repeats)}
    if not grid.spherical:  # griddata sees planar coordinates only
        t["griddata_vectorised_s"] = best_time(
            lambda: griddata_voronoi_vectorised(values, layout.sensors, grid.shape), repeats)
    best = min(v for k, v in t.items() if k not in ("gather_s", "gather_with_build_s"))
    return {"batch": float(len(values)), **t, "best_scipy_s": best,
            "ratio": best / t["gather_s"], "ratio_with_build": best / t["gather_with_build_s"],
            "ratio_vs_griddata_per_snapshot": t["griddata_per_snapshot_s"] / t["gather_s"]}
