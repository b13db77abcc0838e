"""Sparse spatial field reconstruction (paper P3 and Voronoi-CNN).

Subpackages: :mod:`fields.flow` (LBM solver, cached wake snapshots, solver validation) and
:mod:`fields.classical` (POD, gappy POD, QR/random placement). Modules: :mod:`fields.netcdf`
(ferret-datasets and NOAA OISST), :mod:`fields.field_data` (container, time-ordered splits,
climatology anomalies), :mod:`fields.voronoi` (inputs), :mod:`fields.voronoi_cnn` (Voronoi-CNN and
metrics), :mod:`fields.train` (``python -m fields.train``), :mod:`fields.load` (``load_field``),
:mod:`fields.reference` (SciPy reference paths for correctness), :mod:`fields.reconstructor`
(a Voronoi-CNN with its variant's conventions), :mod:`fields.array_cache`,
:mod:`fields.pretrained` (cached layout-general Voronoi-CNNs for the SensorPlacement env).
"""
