"""netCDF loader on the Debian ferret-datasets files and on a small OISST-format file."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.io import netcdf_file

from fields.field_data import time_split
from fields.netcdf import NetCDFError, load_ferret, load_oisst, read_field


def test_coads_sst_masks_land_from_fill_values_and_exposes_axes() -> None:
    d = load_ferret("coads-sst")
    assert d.values.shape == (12, 90, 180) and d.sample_axis == "time" and d.spherical
    assert np.all(np.diff(d.coords["lat"]) > 0) and d.coords["lat"][0] == -89
    assert len(d.coords["lon"]) == 180 and np.all(np.diff(d.coords["time"]) > 0)
    assert 0.4 < d.valid.mean() < 0.7  # ocean with observations
    ocean = d.values[d.mask]
    assert ocean.min() > -3 and ocean.max() < 35  # °C, no −1e34 fill leaks through
    assert (d.values[~d.mask] == 0).all()
    # the equatorial Pacific (0°N, 180°E) is warm, central Asia (45°N, 90°E) is land
    lat, lon = d.coords["lat"], d.coords["lon"]
    i, j = np.argmin(abs(lat - 1)), np.argmin(abs(lon - 181))
    assert d.mask[:, i, j].all() and d.values[:, i, j].mean() > 25
    i, j = np.argmin(abs(lat - 45)), np.argmin(abs(lon - 91))
    assert not d.mask[:, i, j].any()


def test_levitus_uses_depth_as_sample_axis_with_shrinking_ocean() -> None:
    d = load_ferret("levitus-temp")
    assert d.values.shape == (20, 180, 360) and d.sample_axis == "depth"
    frac = d.mask.reshape(20, -1).mean(1)
    assert frac[0] > 0.6 and frac[-1] < 0.2 and np.all(np.diff(frac) <= 0)
    assert d.values[0][d.mask[0]].max() > 25 > d.values[-1][d.mask[-1]].max()


def test_navy_winds_time_split_is_ordered_and_disjoint() -> None:
    d = load_ferret("navy-uwnd")
    assert d.values.shape == (132, 73, 144) and d.valid.all()
    tr, va, te = time_split(d, (0.7, 0.15, 0.15), gap=2)
    assert len(tr) + len(va) + len(te) == 132 - 4
    t = d.coords["time"]
    assert tr.coords["time"].max() < va.coords["time"].min() < te.coords["time"].min()
    assert tr.coords["time"][0] == t[0] and te.coords["time"][-1] == t[-1]
    np.testing.assert_array_equal(te.values[-1], d.values[-1])


def _write_oisst(path: Path, sst: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> None:
    """A miniature file laid out like NOAA's sst.wkmean.1990-present.nc (packed shorts)."""
    with netcdf_file(path, "w") as nc:
        nc.createDimension("time", None)
        nc.createDimension("lat", len(lat))
        nc.createDimension("lon", len(lon))
        for name, vals, units in (("lat", lat, "degrees_north"), ("lon", lon, "degrees_east")):
            v = nc.createVariable(name, "f", (name,))
            v[:] = vals
            v.units = units
        t = nc.createVariable("time", "d", ("time",))
        t[:] = 66443.0 + 7 * np.arange(len(sst))
        t.units = "days since 1800-1-1 00:00:00"
        v = nc.createVariable("sst", "h", ("time", "lat", "lon"))
        v.scale_factor = np.float32(0.01)
        v.add_offset = np.float32(0.0)
        v.missing_value = np.int16(32767)
        v.valid_range = np.array([-500, 4000], dtype=np.int16)
        packed = np.round(np.nan_to_num(sst, nan=327.67) * 100).astype(np.int16)
        v[:] = packed


def test_oisst_format_is_unpacked_masked_and_flipped(tmp_path: Path) -> None:
    coads = load_ferret("coads-sst")
    sst = np.where(coads.mask[:3], coads.values[:3], np.nan)[:, ::-1, :]  # north → south
    lat = coads.coords["lat"][::-1].copy()
    path = tmp_path / "sst.wkmean.1990-1990.nc"
    _write_oisst(path, sst, lat, coads.coords["lon"])
    land = tmp_path / "lsmask.nc"
    ocean = coads.valid[::-1].astype(np.int8).copy()
    ocean[:, :10] = 0  # the mask file removes a strip the sst file still has
    with netcdf_file(land, "w") as nc:
        nc.createDimension("time", 1)
        nc.createDimension("lat", 90)
        nc.createDimension("lon", 180)
        nc.createVariable("mask", "b", ("time", "lat", "lon"))[:] = ocean[None]
    d = load_oisst(path, land)
    assert d.values.shape == (3, 90, 180) and d.sample_axis == "time"
    assert np.all(np.diff(d.coords["lat"]) > 0)
    expect = coads.mask[:3] & coads.valid & (np.arange(180) >= 10)
    np.testing.assert_array_equal(d.mask, expect)
    np.testing.assert_allclose(d.values[d.mask], coads.values[:3][expect], atol=0.006)
    assert read_field(path, "sst").mask[:, :, :10].any()  # without lsmask the strip is valid


def test_missing_ferret_file_names_the_debian_package(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DEPLOYGYM_FERRET_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="ferret-datasets"):
        load_ferret("coads-sst")
    with pytest.raises(FileNotFoundError, match="put the file there"):
        load_oisst(tmp_path / "elsewhere" / "sst.wkmean.nc")


@pytest.mark.parametrize("cut", [200, 3_000_000])
def test_truncated_file_is_reported_with_its_name(tmp_path: Path, monkeypatch, cut: int) -> None:
    src = Path("/usr/share/ferret-vis/data/coads_climatology.cdf").read_bytes()
    (tmp_path / "coads_climatology.cdf").write_bytes(src[:cut])
    monkeypatch.setenv("DEPLOYGYM_FERRET_DIR", str(tmp_path))
    with pytest.raises(NetCDFError, match="coads_climatology.cdf.*(corrupt|truncated)"):
        load_ferret("coads-sst")


def test_non_netcdf_and_broken_hdf5_files_are_refused(tmp_path: Path, monkeypatch) -> None:
    bad = tmp_path / "sst.wkmean.nc"
    bad.write_bytes(b"<html>404 not found</html>")
    with pytest.raises(NetCDFError, match="not a netCDF file"):
        read_field(bad, "sst")
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(NetCDFError, match="sst.wkmean.nc is corrupt or truncated"):
        read_field(bad, "sst")
    monkeypatch.setitem(sys.modules, "xarray", None)  # without xarray: what to install
    with pytest.raises(NetCDFError, match="pip install xarray netCDF4.*nccopy -k classic"):
        read_field(bad, "sst")


def test_netcdf4_oisst_is_read_through_xarray_like_its_netcdf3_copy(tmp_path: Path) -> None:
    import xarray as xr

    coads = load_ferret("coads-sst")
    sst = np.where(coads.mask[:3], coads.values[:3], np.nan)[:, ::-1, :]  # north → south
    lat = coads.coords["lat"][::-1].copy()
    v3, v4 = tmp_path / "sst3.nc", tmp_path / "sst4.nc"
    _write_oisst(v3, sst, lat, coads.coords["lon"])
    with xr.open_dataset(v3, engine="scipy", decode_cf=False) as ds:  # the same bytes' content
        ds.load().to_netcdf(v4, format="NETCDF4", engine="netcdf4")
    assert v4.read_bytes()[:4] == b"\x89HDF" and v3.read_bytes()[:3] == b"CDF"
    a, b = load_oisst(v3), load_oisst(v4)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.mask, b.mask)
    for k in ("time", "lat", "lon"):
        np.testing.assert_array_equal(a.coords[k], b.coords[k])
    assert b.mask.sum() == coads.mask[:3].sum() and b.attrs["time_units"].startswith("days")
    assert read_field(v4).attrs["variable"] == "sst"  # the file's only data variable
    with pytest.raises(NetCDFError, match="no variable 'SST'; it has"):
        read_field(v4, "SST")


def test_coarsen_averages_blocks_and_keeps_only_fully_valid_cells() -> None:
    d = load_ferret("coads-sst")
    c = d.coarsen(2)
    assert c.values.shape == (12, 45, 90) and len(c.coords["lat"]) == 45
    block_mask = d.mask.reshape(12, 45, 2, 90, 2)
    np.testing.assert_array_equal(c.mask, block_mask.all(axis=(2, 4)))
    i, j = np.argwhere(c.mask[0])[0]
    assert c.values[0, i, j] == pytest.approx(d.values[0, 2 * i:2 * i + 2, 2 * j:2 * j + 2].mean())
    assert c.coords["lat"][0] == pytest.approx(-88)


def test_time_split_refuses_bad_fractions_and_too_few_snapshots() -> None:
    d = load_ferret("coads-sst")
    with pytest.raises(ValueError, match="summing to 1"):
        time_split(d, (0.5, 0.2, 0.2))
    with pytest.raises(ValueError, match="too few"):
        time_split(d, (0.7, 0.15, 0.15), gap=6)


def test_load_field_dispatches_and_names_choices() -> None:
    from fields.load import load_field

    assert load_field("navy-vwnd").name == "navy-vwnd"
    with pytest.raises(KeyError, match="coads-sst"):
        load_field("coads")
