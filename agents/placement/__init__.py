"""A placement agent for SensorPlacement: a grid-seeing MaskablePPO policy, the batched
gappy-POD vector env it trains on, and resumable training.

* :mod:`~agents.placement.policy` — :class:`GridPolicy`: a small fully convolutional network
  over the occupancy and error maps; one logit per cell, so it runs on any grid;
* :mod:`~agents.placement.vec` — :class:`PlacementVecEnv`, the SB3 ``VecEnv`` of
  :class:`envs.sensors.vector.BatchedSensorPlacement`;
* :mod:`~agents.placement.train` — training with checkpoints that resume exactly (the same
  parameters as an uninterrupted run), learning curves on validation and TensorBoard logs;
* :mod:`~agents.placement.place` — a trained policy's deterministic layouts for any field
  and sensor count.
"""
