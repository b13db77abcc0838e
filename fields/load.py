"""One entry point for every field: ``load_field('cylinder' | 'kolmogorov' | ferret name |
'oisst:PATH')``."""

from __future__ import annotations

from fields.field_data import FieldData
from fields.flow.cylinder import CylinderConfig, load_cylinder
from fields.flow.kolmogorov import load_kolmogorov
from fields.netcdf import FERRET_FIELDS, load_ferret, load_oisst

FIELDS = ("cylinder", "kolmogorov", *FERRET_FIELDS)


def load_field(name: str, *, progress: bool = True) -> FieldData:
    """Load a field by name.

    ``'cylinder'``: simulated wake (cached); ``'kolmogorov'``: chaotic 2-D Kolmogorov flow at
    Re = 40 (cached); any key of :data:`fields.netcdf.FERRET_FIELDS`;
    ``'oisst:SST_FILE[:LSMASK_FILE]'`` for NOAA OISST weekly means the user supplies.
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
