"""Voronoi inputs: agreement with griddata and cKDTree, sphere geometry, layouts, channels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fields.netcdf import load_ferret
from fields.reference import griddata_voronoi, griddata_voronoi_vectorised, kdtree_voronoi
from fields.voronoi import IN_CHANNELS, INPUT_KINDS, MinMaxScaler, SensorGrid, haversine_km


@pytest.fixture(scope="module")
def sst():
    return load_ferret("coads-sst")


@pytest.fixture(scope="module")
def winds():
    return load_ferret("navy-uwnd")


def test_planar_voronoi_matches_griddata_nearest(winds) -> None:
    grid = SensorGrid(winds.shape, winds.valid, spherical=False)
    lay = grid.random_layout(25, np.random.default_rng(1))
    ours = grid.voronoi(torch.from_numpy(winds.values[:6]), lay).numpy()
    ref = griddata_voronoi(winds.values[:6], lay.sensors, winds.shape)
    diff = ours != ref
    if diff.any():  # only equidistant ties may be broken differently
        yy, xx = np.nonzero(diff[0])
        src = lay.source.numpy().reshape(winds.shape)[yy, xx]
        sy, sx = np.unravel_index(src, winds.shape)
        assert np.allclose(np.hypot(sy - yy, sx - xx), lay.distance.numpy()[yy, xx])
    assert diff.mean() < 0.01
    assert lay.distance.numpy().reshape(-1)[lay.sensors].max() == 0


def test_sphere_distances_are_haversine_and_wrap_in_longitude(sst) -> None:
    grid = SensorGrid.from_field(sst)
    lay = grid.random_layout(30, np.random.default_rng(0))
    lat, lon = sst.grid_latlon()
    la, lo = lat.reshape(-1), lon.reshape(-1)
    brute = haversine_km(la[:, None], lo[:, None], la[lay.sensors][None], lo[lay.sensors][None])
    np.testing.assert_allclose(lay.distance.numpy().reshape(-1), brute.min(1), atol=0.01)
    np.testing.assert_array_equal(lay.source.numpy(), lay.sensors[brute.argmin(1)])
    # Longitudes run 21 … 379°E: a sensor at 23°E is 6° from a cell at 377°E across the seam,
    # closer than one at 361°E (16° away), although the planar index distance says otherwise.
    row = int(np.argmin(abs(sst.coords["lat"] - 1)))
    col = {x: int(np.argmin(abs(sst.coords["lon"] - x))) for x in (23, 361, 377)}
    flat = {x: row * 180 + c for x, c in col.items()}
    valid = SensorGrid(sst.shape, np.ones(sst.shape, bool), spherical=True,
                       lat=sst.coords["lat"], lon=sst.coords["lon"])
    lay = valid.layout(np.array([flat[23], flat[361]]))
    assert lay.source[flat[377]].item() == flat[23]
    assert lay.distance.numpy()[row, col[377]] == pytest.approx(6 * 111.19, rel=0.01)
    planar = SensorGrid(sst.shape, np.ones(sst.shape, bool), spherical=False)
    assert planar.layout(np.array([flat[23], flat[361]])).source[flat[377]].item() == flat[361]


def test_random_layouts_avoid_land_and_are_seeded(sst) -> None:
    grid = SensorGrid.from_field(sst)
    a = grid.random_layout(100, np.random.default_rng(7))
    b = grid.random_layout(100, np.random.default_rng(7))
    c = grid.random_layout(100, np.random.default_rng(8))
    np.testing.assert_array_equal(a.sensors, b.sensors)
    assert not np.array_equal(a.sensors, c.sensors)
    assert sst.valid.reshape(-1)[a.sensors].all() and len(set(a.sensors)) == 100
    land = np.flatnonzero(~sst.valid.reshape(-1))[:3]
    with pytest.raises(ValueError, match="invalid"):
        grid.layout(land)


def test_input_channels_of_both_variants(sst) -> None:
    grid = SensorGrid.from_field(sst)
    rng = np.random.default_rng(3)
    lays = [grid.random_layout(k, rng) for k in (10, 30, 100)]
    x = torch.from_numpy(sst.values[:3])
    scaler = MinMaxScaler.fit(sst)
    faithful = grid.inputs(x, lays, "faithful")
    assert faithful.shape == (3, 2, 90, 180)
    assert (faithful[:, 0][:, ~grid.valid] == 0).all()  # zero on land
    for i, lay in enumerate(lays):  # sensor cells carry their own reading
        np.testing.assert_array_equal(faithful[i, 0].reshape(-1)[lay.sensors].numpy(),
                                      sst.values[i].reshape(-1)[lay.sensors])
        assert faithful[i, 1].sum().item() == lay.k
    improved = grid.inputs(x, lays, "improved", scaler)
    assert improved.shape == (3, 4, 90, 180)
    assert improved.min() >= -1 and improved.max() <= 1
    np.testing.assert_array_equal(improved[0, 3].numpy(), (~sst.valid).astype(np.float32))
    dist = improved[:, 2]
    assert dist.reshape(3, -1).gather(1, torch.from_numpy(lays[0].sensors)[None].expand(3, -1)
                                      )[0].eq(-1).all()
    assert dist[0].mean() > dist[2].mean()  # 10 sensors are farther apart than 100
    with pytest.raises(ValueError, match="MinMaxScaler"):
        grid.inputs(x, lays, "improved")


def test_ablation_variants_switch_on_one_change_each(sst) -> None:
    grid = SensorGrid.from_field(sst)
    lays = [grid.random_layout(20, np.random.default_rng(i)) for i in range(2)]
    x = torch.from_numpy(sst.values[:2])
    scaler = MinMaxScaler.fit(sst)
    faithful, improved = (grid.inputs(x, lays, k, scaler) for k in ("faithful", "improved"))
    distance = grid.inputs(x, lays, "distance", scaler)
    assert distance.shape[1] == 3 and torch.equal(distance[:, :2], faithful)
    assert distance[:, 2].min() == 0 and distance[:, 2].max() <= 1  # unscaled: [0, 1]
    torch.testing.assert_close(distance[:, 2] * 2 - 1, improved[:, 2])
    scaled = grid.inputs(x, lays, "scaled", scaler)
    assert scaled.shape[1] == 2 and torch.equal(scaled, improved[:, :2])
    assert not torch.equal(scaled[:, 0], faithful[:, 0])
    land = grid.inputs(x, lays, "land", scaler)
    assert land.shape[1] == 3 and torch.equal(land[:, :2], faithful[:, :2])
    assert torch.equal(land[:, 2], improved[:, 3])
    assert {k: IN_CHANNELS[k] for k in INPUT_KINDS} == {
        "faithful": 2, "distance": 3, "scaled": 2, "land": 3, "improved": 4, "improved_xy": 6}
    xy = grid.inputs(x, lays, "improved_xy", scaler)  # + sin lat, cos lon, sin lon
    assert xy.shape[1] == 7 and torch.equal(xy[:, :4], improved)
    lat, lon = (np.radians(a) for a in sst.grid_latlon())
    np.testing.assert_allclose(xy[0, 4].numpy(), np.sin(lat), atol=1e-6)
    np.testing.assert_allclose(xy[1, 6].numpy(), np.sin(lon), atol=1e-6)
    planar = SensorGrid(sst.shape, sst.valid, spherical=False)
    pxy = planar.inputs(x, planar.layout(lays[0].sensors), "improved_xy", scaler)
    assert pxy.shape[1] == 6 and pxy[0, 4, 0, 0] == -1 and pxy[0, 5, -1, -1] == 1


def test_scaler_round_trips_and_maps_training_range_to_unit_interval(sst) -> None:
    s = MinMaxScaler.fit(sst)
    v = torch.from_numpy(sst.values[sst.mask])
    y = s.forward(v)
    assert y.min().item() == pytest.approx(-1) and y.max().item() == pytest.approx(1)
    torch.testing.assert_close(s.inverse(y), v, atol=1e-4, rtol=0)


def test_gather_equals_the_scipy_reference_paths(winds) -> None:
    """Same images as cKDTree (sphere) and griddata (plane); the speed ratio against them is
    measured by ``benchmarks/fields.py``, not asserted here (it depends on machine load)."""
    grid = SensorGrid.from_field(winds)
    lay = grid.random_layout(30, np.random.default_rng(0))
    x = winds.values[:64]
    ours = grid.voronoi(torch.from_numpy(x), lay).numpy()
    np.testing.assert_array_equal(kdtree_voronoi(x, grid.points, lay.sensors), ours)
    planar = SensorGrid(winds.shape, winds.valid, spherical=False)
    np.testing.assert_array_equal(griddata_voronoi_vectorised(x[:4], lay.sensors, winds.shape),
                                  griddata_voronoi(x[:4], lay.sensors, winds.shape))
    np.testing.assert_array_equal(
        griddata_voronoi(x[:4], lay.sensors, winds.shape),
        planar.voronoi(torch.from_numpy(x[:4]), planar.layout(lay.sensors)).numpy())
