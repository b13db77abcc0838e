"""benchmarks.parts.voronoi_speed: every path timed in the same run, ratios against the best."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.parts.voronoi_speed import speed_ratio
from fields.netcdf import load_ferret
from fields.voronoi import SensorGrid


@pytest.mark.parametrize("spherical", [True, False])
def test_speed_ratio_times_every_path_and_divides_by_the_best_scipy_one(spherical):
    field = load_ferret("coads-sst")
    grid = (SensorGrid.from_field(field) if spherical
            else SensorGrid(field.shape, field.valid, spherical=False))
    r = speed_ratio(grid, field.values[:4], grid.random_layout(10, np.random.default_rng(0)),
                    repeats=1)
    refs = {"griddata_per_snapshot_s", "kdtree_s"} | (set() if spherical
                                                      else {"griddata_vectorised_s"})
    assert refs | {"gather_s", "gather_with_build_s"} <= set(r)
    assert ("griddata_vectorised_s" in r) is not spherical  # griddata sees planar coordinates
    assert r["best_scipy_s"] == min(r[k] for k in refs)
    assert r["ratio"] == pytest.approx(r["best_scipy_s"] / r["gather_s"])
    assert r["ratio_with_build"] == pytest.approx(r["best_scipy_s"] / r["gather_with_build_s"])
