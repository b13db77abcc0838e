"""SensorPlacement: place sparse sensors, scored by a Voronoi-CNN's reconstruction (P3).

Modules: :mod:`~envs.sensors.env` (the env) and :mod:`~envs.sensors.baselines` (random
layouts, QR pivoting on POD modes).
"""

from envs.sensors.env import SensorPlacementEnv

__all__ = ["SensorPlacementEnv"]
