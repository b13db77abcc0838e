"""Sparse spatial field reconstruction (paper P3 and Voronoi-CNN).

Modules: :mod:`fields.lbm` (D2Q9 solver), :mod:`fields.cylinder` (cached wake snapshots),
:mod:`fields.netcdf` (ferret-datasets and NOAA OISST), :mod:`fields.field_data` (container and
time-ordered splits), :mod:`fields.voronoi` (inputs), :mod:`fields.voronoi_cnn` (Voronoi-CNN and
metrics), :mod:`fields.train` (``python -m fields.train``), :mod:`fields.load`
(``load_field``), :mod:`fields.reference` (griddata baseline), :mod:`fields.array_cache`,
:mod:`fields.pretrained` (cached layout-general Voronoi-CNNs for the SensorPlacement env).
"""
