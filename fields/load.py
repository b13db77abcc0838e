"""One entry point for every field: ``load_field('cylinder' | 'kolmogorov' | ferret name |
'oisst:PATH')`` for the named ones, :func:`as_field` for a user's array, xarray ``DataArray``
or netCDF file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fields.field_data import FieldData, from_array
from fields.flow.cylinder import CylinderConfig, load_cylinder
from fields.flow.kolmogorov import load_kolmogorov
from fields.netcdf import FERRET_FIELDS, load_ferret, load_oisst, read_field

FIELDS = ("cylinder", "kolmogorov", *FERRET_FIELDS)
LAT_NAMES, LON_NAMES = ("lat", "latitude"), ("lon", "longitude")


def load_field(name: str, *, progress: bool = True) -> FieldData:
    """Load a field by name.

    ``'cylinder'``: simulated wake (cached); ``'kolmogorov'``: chaotic 2-D Kolmogorov flow at
    Re = 40 (cached); any key of :data:`fields.netcdf.FERRET_FIELDS`;
    ``'oisst:SST_FILE[:LSMASK_FILE]'`` for NOAA OISST weekly means the user supplies
    (netCDF-3 or netCDF-4).
    """
    if name == "cylinder":
        return load_cylinder(CylinderConfig(), progress=progress)
    if name == "kolmogorov":
        return load_kolmogorov(progress=progress)
    if name.startswith("oisst:"):
        parts = name.split(":")[1:]
        return load_oisst(parts[0], parts[1] if len(parts) > 1 else None)
    if name in FERRET_FIELDS:
        return load_ferret(name)
    raise KeyError(f"unknown field {name!r}; choose one of {FIELDS} or 'oisst:PATH[:LSMASK]'")


def _from_xarray(da: Any, mask: Any, name: str | None) -> FieldData:
    """A ``DataArray`` ``(time, lat, lon)``: NaN is invalid, degrees ``lat``/``lon``
    coordinates make the grid spherical."""
    if len(da.dims) != 3:
        raise ValueError(f"a field DataArray must have 3 dims (time, lat, lon), got {da.dims}")
    t, y, x = (str(d) for d in da.dims)
    lat = np.asarray(da[y].values) if y.lower() in LAT_NAMES and y in da.coords else None
    lon = np.asarray(da[x].values) if x.lower() in LON_NAMES and x in da.coords else None
    time = np.asarray(da[t].values) if t in da.coords else None
    if time is not None and np.issubdtype(time.dtype, np.datetime64):
        time = time.astype("datetime64[s]").astype(np.float64) / 86400.0  # days since 1970
    elif time is not None and not np.issubdtype(time.dtype, np.number):
        time = None
    return from_array(np.asarray(da.values), mask, lat=lat if lon is not None else None,
                      lon=lon if lat is not None else None, time=time,
                      name=name or str(da.name or "dataarray"),
                      units=str(da.attrs.get("units", "")))


def as_field(field: Any, *, mask: Any = None, lat: Any = None, lon: Any = None,
             variable: str | None = None, name: str | None = None) -> FieldData:
    """A user's field as a :class:`FieldData`. ``field`` is one of:

    * a :class:`FieldData` (returned as it is);
    * an array ``[T, H, W]`` (NumPy, masked, or a CPU tensor) with optional ``mask`` (True =
      valid, ``[H, W]`` or ``[T, H, W]``; NaN cells are invalid too) and ``lat``/``lon`` in
      degrees (a grid on the sphere; without them a planar grid) — :func:`from_array`;
    * an xarray ``DataArray`` ``(time, lat, lon)``;
    * a netCDF-3 or netCDF-4 file, ``"PATH"`` or ``"PATH:VARIABLE"`` (or ``variable=``),
      read by :func:`fields.netcdf.read_field` (NOAA OISST files directly).
    """
    if isinstance(field, FieldData):
        return field
    if isinstance(field, str | Path):
        path, var = Path(field), variable
        if not path.is_file() and ":" in str(field):
            head, _, tail = str(field).rpartition(":")
            path, var = Path(head), variable or tail
        if not path.is_file():
            raise FileNotFoundError(f"field {str(field)!r} is not a file; pass a netCDF file "
                                    f"('PATH' or 'PATH:VARIABLE') or an array [T, H, W]")
        return read_field(path, var, name=name or path.stem)
    if all(hasattr(field, a) for a in ("dims", "coords", "attrs")):
        return _from_xarray(field, mask, name)
    if hasattr(field, "detach"):  # a torch tensor
        field = field.detach().cpu().numpy()
    if not (isinstance(field, np.ndarray) or np.ma.isMaskedArray(field)):
        raise TypeError(f"a field must be an array [T, H, W], an xarray DataArray, a netCDF "
                        f"path or a FieldData, got {type(field).__name__}")
    return from_array(field, mask, lat=lat, lon=lon, name=name or "array")
