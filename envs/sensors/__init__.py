"""SensorPlacement: place sparse sensors, scored by a Voronoi-CNN's reconstruction (P3).

Modules: :mod:`~envs.sensors.env` (the env) and :mod:`~envs.sensors.baselines` (greedy
search under an evaluation budget; QR and random layouts from :mod:`fields.classical.placement`).
"""

from envs.sensors.env import SensorPlacementEnv

__all__ = ["SensorPlacementEnv"]
