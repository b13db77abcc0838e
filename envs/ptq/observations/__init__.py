"""What a DynamicPTQ agent sees beyond the FP statistics: :mod:`~envs.ptq.observations.extras`
(the ``observation`` option: spaces, per-episode extras, batch helpers) and
:mod:`~envs.ptq.observations.probe` (the probe and query features and their cache)."""
