"""SensorPlacement on a user's field: an array ``[T, H, W]`` (planar, or on the sphere with
lat/lon), a netCDF-4 file written here with xarray, and Voronoi-CNN caches keyed by the field's
content, so two fields under one name get two networks."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs  # noqa: F401
import fields.pretrained
from envs.sensors.env import SensorPlacementEnv
from fields.load import as_field
from fields.pretrained import get_reconstructor

TINY = {"width": 4, "depth": 2, "kernel": 3, "out_kernel": 3, "epochs": 1, "steps_per_epoch": 2,
        "batch_size": 4, "sensors": (1, 2, 3), "train_layouts": 3, "eval_layouts": 1,
        "max_eval": 2}


def smooth_field(seed: int, t: int = 40, h: int = 10, w: int = 14) -> np.ndarray:
    """Four standing waves with amplitudes that wander in time (seeded)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    modes = np.stack([np.sin((i + 1) * np.pi * yy) * np.cos((j + 1) * np.pi * xx)
                      for i in range(2) for j in range(2)])
    amps = rng.normal(size=(t, 4)).cumsum(0) + 3 * rng.normal(size=4)
    return np.einsum("tk,khw->thw", amps, modes).astype(np.float32) + 10


def play_qr(env) -> dict:
    env.reset(seed=0)
    for cell in env.unwrapped.qr_layout():
        *_, done, _, info = env.step(cell)
    assert done
    return info


def test_a_user_array_runs_through_sensor_placement() -> None:
    values = smooth_field(0)
    values[:, :3, :4] = np.nan  # "land": invalid in every snapshot
    env = gym.make("deploygym/SensorPlacement-v1", field=values, n_sensors=3, batch=2)
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped)
    u = env.unwrapped
    u.reset(seed=0)
    assert u.grid.shape == (10, 14) and not u.pre.data.spherical
    assert not u.action_masks().reshape(10, 14)[:3, :4].any() and u.action_masks().sum() == 128
    info = play_qr(env)
    assert info["improvement"] > 0.5 and np.isfinite(info["rel_l2_random"])


def test_an_array_with_mask_and_lat_lon_is_a_field_on_the_sphere() -> None:
    values = smooth_field(1)
    ocean = np.ones((10, 14), dtype=bool)
    ocean[4:6, 5:9] = False
    lat, lon = np.linspace(40, 10, 10), np.linspace(200, 239, 14)  # north → south, as OISST
    data = as_field(values, mask=ocean, lat=lat, lon=lon, name="pacific")
    assert data.spherical and np.all(np.diff(data.coords["lat"]) > 0)
    np.testing.assert_array_equal(data.valid, ocean[::-1])
    env = SensorPlacementEnv(field=data, n_sensors=4, batch=2, render_mode="rgb_array")
    gym_check_env(env, skip_render_check=True)
    assert env.pre.cfg.dataset == "pacific" and play_qr(env)["improvement"] > 0.5
    assert env.render().std() > 10
    with pytest.raises(ValueError, match="mask must be"):
        as_field(values, mask=ocean[:5])
    with pytest.raises(ValueError, match="both lat= and lon="):
        as_field(values, lat=lat)
    with pytest.raises(ValueError, match=r"\[T, H, W\]"):
        SensorPlacementEnv(field=values[0])


def write_netcdf4(path: Path, values: np.ndarray) -> None:
    """A netCDF-4 file laid out like NOAA OISST: packed shorts with a fill value, latitude
    north → south, time in days since 1800."""
    import xarray as xr

    t, h, w = values.shape
    ds = xr.Dataset(
        {"sst": (("time", "lat", "lon"), values, {"units": "degC"})},
        coords={"time": ("time", 66443.0 + 7 * np.arange(t),
                         {"units": "days since 1800-1-1 00:00:00"}),
                "lat": ("lat", np.linspace(30, -30, h), {"units": "degrees_north"}),
                "lon": ("lon", np.linspace(150, 215, w), {"units": "degrees_east"})})
    ds.to_netcdf(path, format="NETCDF4", engine="netcdf4", encoding={"sst": {
        "dtype": "int16", "scale_factor": 0.01, "add_offset": 0.0, "_FillValue": -32767}})


def test_a_netcdf4_file_runs_through_sensor_placement(tmp_path: Path) -> None:
    values = smooth_field(2)
    values[:, -2:, :3] = np.nan
    path = tmp_path / "sst.wkmean.nc"
    write_netcdf4(path, values)
    assert path.read_bytes()[:4] == b"\x89HDF"  # netCDF-4, which scipy cannot read
    env = gym.make("deploygym/SensorPlacement-v1", field=str(path), n_sensors=3, batch=2)
    gym_check_env(env.unwrapped, skip_render_check=True)
    data = env.unwrapped.pre.data
    assert data.spherical and data.valid.sum() == 140 - 6 and data.units == "degC"
    in_file_order = data.values[:, ::-1]  # latitude is stored ascending
    np.testing.assert_array_equal(in_file_order[:, -2:, :3], 0)  # fill → invalid → 0
    np.testing.assert_allclose(in_file_order[:, :-2], values[:, :-2], atol=0.006)
    assert play_qr(env)["improvement"] > 0.5
    by_name = gym.make("deploygym/SensorPlacement-v1", dataset=f"oisst:{path}", n_sensors=3)
    assert by_name.unwrapped.pre.data.valid.sum() == 134  # NOAA's own files, by name


def test_two_fields_under_one_name_get_two_networks(tmp_path: Path, monkeypatch) -> None:
    a, b = as_field(smooth_field(3), name="mine"), as_field(smooth_field(4), name="mine")
    kw = dict(cache_root=tmp_path, progress=False, **TINY)
    pa = get_reconstructor("mine", data=a, **kw)
    pb = get_reconstructor("mine", data=b, **kw)
    assert len([d for d in tmp_path.iterdir() if d.is_dir()]) == 2
    assert pa.meta["sha256"] != pb.meta["sha256"]
    assert not np.allclose(pa.rec.mean.numpy(), pb.rec.mean.numpy())  # b's own training mean

    def no_training(*args, **kwargs):
        raise AssertionError("a field seen before must load its network, not train")

    monkeypatch.setattr(fields.pretrained, "train", no_training)
    env = SensorPlacementEnv(field=a, estimator="cnn", model=TINY, cache_dir=str(tmp_path),
                             n_sensors=3, batch=2, progress=False)
    assert env.pre.meta["sha256"] == pa.meta["sha256"]
    gym_check_env(env, skip_render_check=True)
    # a file read by name is keyed by what it holds now, not by its path
    path = tmp_path / "field.nc"
    write_netcdf4(path, smooth_field(5))
    monkeypatch.undo()
    first = get_reconstructor(f"oisst:{path}", **kw)
    write_netcdf4(path, smooth_field(6))
    second = get_reconstructor(f"oisst:{path}", **kw)
    assert first.meta["sha256"] != second.meta["sha256"]
    assert len([d for d in tmp_path.iterdir() if d.name.startswith("oisst_")]) == 2
