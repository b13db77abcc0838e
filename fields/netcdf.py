"""Real geoscience fields from netCDF files: Debian ``ferret-datasets``, NOAA OISST, any file.

netCDF-3 files (classic / 64-bit offset) are read with ``scipy.io.netcdf_file``; netCDF-4
(HDF5) files through ``xarray`` (netCDF4 engine), undecoded, so both formats go through the
same unpacking. Invalid cells come from ``_FillValue``, ``missing_value``, ``valid_range`` /
``valid_min`` / ``valid_max`` and NaN (and, for OISST, an optional ``lsmask.nc``); packed
integers are unpacked with ``scale_factor``/``add_offset``. The sample axis (time, or depth
for Levitus) leads; latitude is returned ascending.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.io import netcdf_file

from fields.field_data import FieldData

FERRET_PACKAGE = "ferret-datasets"


def ferret_dir() -> Path:
    """``$DEPLOYGYM_FERRET_DIR`` or ``/usr/share/ferret-vis/data`` (Debian ``ferret-datasets``)."""
    return Path(os.environ.get("DEPLOYGYM_FERRET_DIR", "/usr/share/ferret-vis/data"))


@dataclass(frozen=True)
class FerretField:
    file: str
    variable: str
    level: int | None = None  # index of the depth axis for 4-D (time, depth, lat, lon) fields
    ocean_only: bool = False  # mask land cells with the ETOPO60 topography (etopo60.cdf)


FERRET_FIELDS: dict[str, FerretField] = {
    "coads-sst": FerretField("coads_climatology.cdf", "SST"),  # 12 months × 90 × 180
    "coads-airt": FerretField("coads_climatology.cdf", "AIRT"),
    "coads-slp": FerretField("coads_climatology.cdf", "SLP"),
    "navy-uwnd": FerretField("monthly_navy_winds.cdf", "UWND"),  # 132 months 1980–90 × 73 × 144
    "navy-vwnd": FerretField("monthly_navy_winds.cdf", "VWND"),
    # the same winds over the ocean only (land from ETOPO60): land/sea data with 132 months
    "navy-uwnd-ocean": FerretField("monthly_navy_winds.cdf", "UWND", ocean_only=True),
    "navy-vwnd-ocean": FerretField("monthly_navy_winds.cdf", "VWND", ocean_only=True),
    "levitus-temp": FerretField("levitus_climatology.cdf", "TEMP"),  # 20 depths × 180 × 360
    "levitus-salt": FerretField("levitus_climatology.cdf", "SALT"),
    "atlas-temp-surface": FerretField("ocean_atlas_subset.nc", "TEMP", level=0),
}


class NetCDFError(RuntimeError):
    """A netCDF file is unreadable, truncated, or lacks what the loader needs."""


def _text(value: object) -> str:
    return value.decode(errors="replace").strip() if isinstance(value, bytes) else str(value)


def _open(path: Path) -> netcdf_file:
    if not path.is_file():
        if path.parent == ferret_dir():
            hint = (f"install the Debian package `{FERRET_PACKAGE}` (apt-get install "
                    f"{FERRET_PACKAGE}) or set DEPLOYGYM_FERRET_DIR to a folder holding it")
        else:
            hint = "put the file there or pass the right path"
        raise FileNotFoundError(f"netCDF file {path} not found: {hint}")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic[:3] == b"\x89HD":
        return _open_netcdf4(path)
    if magic[:3] != b"CDF":
        raise NetCDFError(f"{path} is not a netCDF file (starts with {magic!r}); re-download "
                          f"or re-install it")
    try:
        return netcdf_file(path, "r", mmap=False)
    except Exception as e:
        raise NetCDFError(f"{path} is corrupt or truncated ({type(e).__name__}: {e}); "
                          f"re-download or re-install it") from e


class _XarrayVariable:
    """One variable of an undecoded xarray Dataset, seen as ``scipy.io.netcdf_file`` shows
    one (``_attributes``, ``dimensions``, ``[:]``)."""

    def __init__(self, var: Any) -> None:
        self._var = var
        self._attributes = dict(var.attrs)
        self.dimensions = tuple(str(d) for d in var.dims)

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self._var.values)[key]


class _XarrayFile:
    """A netCDF-4 file opened with xarray, with the reading interface of ``netcdf_file``."""

    def __init__(self, ds: Any) -> None:
        self._ds = ds
        self.variables = {str(k): _XarrayVariable(v) for k, v in ds.variables.items()}

    def close(self) -> None:
        self._ds.close()


def _open_netcdf4(path: Path) -> _XarrayFile:
    need = (f"{path} is netCDF-4/HDF5: reading it needs xarray and netCDF4 (pip install "
            f"xarray netCDF4), or convert it with `nccopy -k classic {path.name} out.nc`")
    try:
        import xarray as xr
    except ImportError:
        raise NetCDFError(need) from None
    engine = next((e for e, mod in (("netcdf4", "netCDF4"), ("h5netcdf", "h5netcdf"))
                   if importlib.util.find_spec(mod) is not None), None)
    if engine is None:
        raise NetCDFError(need)
    try:
        ds = xr.open_dataset(path, engine=engine, decode_cf=False, mask_and_scale=False,
                             decode_times=False, decode_coords=False)
    except Exception as e:
        raise NetCDFError(f"{path} is corrupt or truncated ({type(e).__name__}: {e}); "
                          f"re-download it") from e
    return _XarrayFile(ds)


def _read_var(nc: netcdf_file, path: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Unpacked float32 values and validity mask of variable ``name``."""
    if name not in nc.variables:
        raise NetCDFError(f"{path} has no variable {name!r}; it has {sorted(nc.variables)}")
    var = nc.variables[name]
    try:
        raw = np.array(var[:])
    except Exception as e:
        raise NetCDFError(f"{path}: variable {name!r} cannot be read, the file is truncated or "
                          f"corrupt ({type(e).__name__}: {e})") from e
    attrs = var._attributes
    valid = np.ones(raw.shape, dtype=bool)
    for key in ("_FillValue", "missing_value"):
        if key in attrs:
            for fv in np.atleast_1d(attrs[key]):
                valid &= raw != np.asarray(fv, dtype=raw.dtype)
    if "valid_range" in attrs:
        lo, hi = np.asarray(attrs["valid_range"], dtype=np.float64).reshape(-1)[:2]
        valid &= (raw >= lo) & (raw <= hi)
    if "valid_min" in attrs:
        valid &= raw >= float(np.asarray(attrs["valid_min"]).reshape(-1)[0])
    if "valid_max" in attrs:
        valid &= raw <= float(np.asarray(attrs["valid_max"]).reshape(-1)[0])
    values = raw.astype(np.float64) * float(attrs.get("scale_factor", 1.0)) + float(
        attrs.get("add_offset", 0.0))
    valid &= np.isfinite(values)
    return np.where(valid, values, 0.0).astype(np.float32), valid


def _axis_kind(nc: netcdf_file, dim: str) -> str:
    var = nc.variables.get(dim)
    units = _text(var._attributes.get("units", "")).lower() if var is not None else ""
    axis = _text(var._attributes.get("axis", "")).upper() if var is not None else ""
    lname = dim.lower()
    if units.startswith("degrees_n") or units == "degree_north" or axis == "Y" or lname in (
            "lat", "latitude"):
        return "lat"
    if units.startswith("degrees_e") or units == "degree_east" or axis == "X" or lname in (
            "lon", "longitude"):
        return "lon"
    if "since" in units or axis == "T" or lname == "time":
        return "time"
    if axis == "Z" or lname in ("depth", "level", "lev") or (
            var is not None and "positive" in var._attributes):
        return "depth"
    raise NetCDFError(f"cannot tell what axis dimension {dim!r} is (units {units!r})")


def _pick_variable(nc: netcdf_file, path: Path) -> str:
    """The one 3-D or 4-D data variable of the file (not a coordinate)."""
    found = [k for k, v in nc.variables.items()
             if len(v.dimensions) in (3, 4) and k not in v.dimensions]
    if len(found) != 1:
        raise NetCDFError(f"{path}: pass the variable to read"
                          + (f", one of {sorted(found)}" if found else
                             f"; it has no (time, lat, lon) variable among {sorted(nc.variables)}"))
    return found[0]


def read_field(path: str | Path, variable: str | None = None, *, name: str | None = None,
               level: int | None = None, lsmask: str | Path | None = None) -> FieldData:
    """Read one variable of a (sample, lat, lon) or (time, depth, lat, lon) netCDF-3 or
    netCDF-4 file.

    Args:
        variable: its name (default: the file's only 3-D/4-D data variable).
        level: index along the depth axis of a 4-D variable (required for 4-D data).
        lsmask: optional land-sea mask file (NOAA ``lsmask.nc``: variable ``mask``, 1 = ocean).
    """
    path = Path(path)
    nc = _open(path)
    try:
        variable = variable or _pick_variable(nc, path)
        values, valid = _read_var(nc, path, variable)
        dims = nc.variables[variable].dimensions
        kinds = [_axis_kind(nc, d) for d in dims]
        if len(dims) == 4:
            if level is None:
                raise NetCDFError(f"{path}:{variable} is 4-D {dims}; pass level= (depth index)")
            if kinds[1] != "depth":
                raise NetCDFError(f"{path}:{variable}: expected (time, depth, lat, lon), got {dims}")
            values, valid, dims, kinds = values[:, level], valid[:, level], (
                dims[0], dims[2], dims[3]), [kinds[0], kinds[2], kinds[3]]
        if len(dims) != 3 or kinds[1:] != ["lat", "lon"]:
            raise NetCDFError(f"{path}:{variable} has axes {dims} ({kinds}); expected "
                              f"(time or depth, lat, lon)")
        coords = {k: np.array(nc.variables[d][:], dtype=np.float64) if d in nc.variables
                  else np.arange(n, dtype=np.float64)  # a dimension without coordinates
                  for k, d, n in zip(kinds, dims, values.shape, strict=True)}
        sample_attrs = nc.variables[dims[0]]._attributes if dims[0] in nc.variables else {}
        attrs = {"file": str(path), "variable": variable,
                 f"{kinds[0]}_units": _text(sample_attrs.get("units", "")),
                 "long_name": _text(nc.variables[variable]._attributes.get("long_name", ""))}
        units = _text(nc.variables[variable]._attributes.get("units", ""))
    finally:
        nc.close()
    if lsmask is not None:
        ocean = _read_lsmask(Path(lsmask), values.shape[1:])
        valid &= ocean[None]
        values = np.where(valid, values, 0.0).astype(np.float32)
    if coords["lat"][0] > coords["lat"][-1]:  # OISST stores 89.5 … −89.5
        coords["lat"] = coords["lat"][::-1].copy()
        values, valid = values[:, ::-1].copy(), valid[:, ::-1].copy()
    if level is not None:
        attrs["level"] = str(level)
    return FieldData(name=name or f"{path.stem}-{variable}", values=values, mask=valid,
                     coords=coords, sample_axis=kinds[0], spherical=True, units=units,
                     attrs=attrs)


def _read_lsmask(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    nc = _open(path)
    try:
        m, ok = _read_var(nc, path, "mask")
    finally:
        nc.close()
    m = np.squeeze(m * ok)
    if m.shape != shape:
        raise NetCDFError(f"land-sea mask {path} is {m.shape}, the field is {shape}")
    return m > 0.5


def load_ferret(name: str) -> FieldData:
    """A field from Debian ``ferret-datasets`` by short name (see :data:`FERRET_FIELDS`)."""
    if name not in FERRET_FIELDS:
        raise KeyError(f"unknown ferret field {name!r}; choose one of {sorted(FERRET_FIELDS)}")
    spec = FERRET_FIELDS[name]
    data = read_field(ferret_dir() / spec.file, spec.variable, name=name, level=spec.level)
    if spec.ocean_only:
        ocean = etopo_ocean(data.coords["lat"], data.coords["lon"])
        mask = data.mask & ocean[None]
        data = replace(data, values=np.where(mask, data.values, 0).astype(np.float32), mask=mask,
                       attrs=data.attrs | {"land_mask": "ETOPO60: ocean if ≥ half of the 1° "
                                                        "cells in the grid box lie below sea "
                                                        "level"})
    return data


def etopo_ocean(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """``(len(lat), len(lon))`` True where at least half of the ETOPO60 1° cells inside the
    grid box (half a grid spacing around each point, longitude wrapping) lie below sea level."""
    path = ferret_dir() / "etopo60.cdf"
    nc = _open(path)
    try:
        rose, ok = _read_var(nc, path, "ROSE")
        elat = np.array(nc.variables["ETOPO60Y"][:], dtype=np.float64)
        elon = np.array(nc.variables["ETOPO60X"][:], dtype=np.float64)
    finally:
        nc.close()
    sea = (rose < 0) & ok
    lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    hlat = np.abs(np.diff(lat)).mean() / 2 if len(lat) > 1 else 0.5
    hlon = np.abs(np.diff(lon)).mean() / 2 if len(lon) > 1 else 0.5
    in_lat = np.abs(elat[None, :] - lat[:, None]) <= hlat + 1e-9  # (H, 180)
    dlon = (elon[None, :] - lon[:, None] + 180.0) % 360.0 - 180.0
    in_lon = np.abs(dlon) <= hlon + 1e-9  # (W, 360)
    count = in_lat.astype(np.float64) @ np.ones_like(sea, dtype=np.float64) @ in_lon.T.astype(
        np.float64)
    wet = in_lat.astype(np.float64) @ sea.astype(np.float64) @ in_lon.T.astype(np.float64)
    return wet >= 0.5 * np.maximum(count, 1)


def load_oisst(path: str | Path, lsmask: str | Path | None = None,
               variable: str = "sst") -> FieldData:
    """NOAA OISST v2 weekly means (``sst.wkmean.*.nc``), optionally with ``lsmask.nc``.

    Get them from NOAA PSL ("NOAA OI SST V2") and pass their paths, netCDF-4 as published
    (read through xarray) or netCDF-3.
    """
    return read_field(path, variable, name="oisst", lsmask=lsmask)
