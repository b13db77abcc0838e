"""Gymnasium environments of deploygym. Importing this package registers them (idempotently).

>>> import gymnasium as gym, envs
>>> env = gym.make("deploygym/DynamicPTQ-v0", dataset="digits", width=4, epochs=8)

Registered ids (``deploygym/`` namespace); every id accepts all keyword arguments of its
class, which override the variant's defaults:

=====================================  =========================================================
``DynamicPTQ-v0``                      sequential, detrimental, dense (:mod:`envs.ptq`)
``DynamicPTQSparse-v0``                sequential, detrimental, sparse reward only
``DynamicPTQJoint-v0``                 joint ``MultiDiscrete`` plan, detrimental
``DynamicPTQContinuous-v0``            continuous ``Box(-1, 1)`` plan, detrimental
``DynamicPTQRobust-v0``                sequential, robust (correct with few bits)
``DynamicPTQRobustJoint-v0``           joint, robust
``DistillSource-v0``                   pick the next phase's transfer set; reward on a target
                                       probe (:mod:`envs.distill_source`)
``DistillSourceDataFree-v0``           same, reward on a held-out mix of the sources (no target)
``DistillSourceMixture-v0``            ``Box`` mixture weights over the sources, target probe
``DistillSourceMixtureDataFree-v0``    mixture weights, data-free
``DistillSourceAugment-v0``            ``MultiDiscrete``: source, augmentation level, attack;
                                       mixup; data-free
``SensorPlacement-v1``                 place 8 sensors on the cylinder wake; reward = drop of
                                       gappy POD's error (:mod:`envs.sensors`)
``SensorPlacementSST-v1``              5 sensors on COADS monthly SST, gappy POD
``SensorPlacementWind-v1``             5 sensors on the 1980–90 monthly navy zonal wind, gappy POD
``SensorPlacement-v0``                 the cylinder scored by a layout-general Voronoi-CNN
``SensorPlacementSST-v0``              COADS SST scored by a Voronoi-CNN
``SensorPlacementWind-v0``             navy zonal wind scored by a Voronoi-CNN
=====================================  =========================================================

Each DynamicPTQ id also has a ``vector_entry_point``: ``gym.make_vec(id, num_envs=N,
vectorization_mode="vector_entry_point")`` builds :class:`envs.ptq.vector.PTQVectorEnv`, which
steps all N episodes with one batched forward.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec, register
from gymnasium.envs.registration import registry as gym_registry  # envs.registry is our module

PTQ_VARIANTS: dict[str, dict[str, Any]] = {
    "DynamicPTQ-v0": {},
    "DynamicPTQSparse-v0": {"dense": False},
    "DynamicPTQJoint-v0": {"action_mode": "joint"},
    "DynamicPTQContinuous-v0": {"action_mode": "continuous"},
    "DynamicPTQRobust-v0": {"reward": "robust"},
    "DynamicPTQRobustJoint-v0": {"reward": "robust", "action_mode": "joint"},
}

DISTILL_SOURCE_VARIANTS: dict[str, dict[str, Any]] = {
    "DistillSource-v0": {},
    "DistillSourceDataFree-v0": {"probe": "sources"},
    "DistillSourceMixture-v0": {"action_mode": "mixture"},
    "DistillSourceMixtureDataFree-v0": {"action_mode": "mixture", "probe": "sources"},
    "DistillSourceAugment-v0": {"probe": "sources", "control_augment": True,
                                "control_attack": True, "mixup_alpha": 1.0},
}

SENSOR_VARIANTS: dict[str, dict[str, Any]] = {
    "SensorPlacement-v1": {},
    "SensorPlacementSST-v1": {"dataset": "coads-sst", "n_sensors": 5},
    "SensorPlacementWind-v1": {"dataset": "navy-uwnd", "n_sensors": 5},
    "SensorPlacement-v0": {"estimator": "cnn"},
    "SensorPlacementSST-v0": {"dataset": "coads-sst", "n_sensors": 5, "estimator": "cnn"},
    "SensorPlacementWind-v0": {"dataset": "navy-uwnd", "n_sensors": 5, "estimator": "cnn"},
}


def _register_family(variants: dict[str, dict[str, Any]], entry_point: str,
                     vector_entry_point: str | None = None) -> list[str]:
    """Register ``deploygym/<name>`` for every variant not yet registered; returns the ids."""
    ids = []
    for name, kwargs in variants.items():
        env_id = f"deploygym/{name}"
        if env_id not in gym_registry:
            register(id=env_id, entry_point=entry_point, vector_entry_point=vector_entry_point,
                     kwargs=dict(kwargs))
        ids.append(env_id)
    return ids


def register_ptq() -> list[str]:
    """Register the DynamicPTQ ids (safe to call many times); returns them."""
    return _register_family(PTQ_VARIANTS, "envs.ptq:DynamicPTQEnv", "envs.ptq:PTQVectorEnv")


def register_distill_source() -> list[str]:
    """Register the DistillSource ids (idempotent); returns them."""
    return _register_family(DISTILL_SOURCE_VARIANTS, "envs.distill_source:DistillSourceEnv")


def register_sensors() -> list[str]:
    """Register the SensorPlacement ids (idempotent); returns them."""
    return _register_family(SENSOR_VARIANTS, "envs.sensors:SensorPlacementEnv")


def register_all() -> list[str]:
    """Register every deploygym id (idempotent); returns them."""
    return [*register_ptq(), *register_distill_source(), *register_sensors()]


PTQ_IDS = register_ptq()
DISTILL_SOURCE_IDS = register_distill_source()
SENSOR_IDS = register_sensors()
ALL_IDS = [*PTQ_IDS, *DISTILL_SOURCE_IDS, *SENSOR_IDS]


def check_id(env_id: str) -> EnvSpec:
    """The spec of ``env_id``; ``ValueError`` listing the deploygym ids if it is unknown."""
    try:
        return gym.spec(env_id)
    except gym.error.Error as e:
        raise ValueError(f"unknown environment id {env_id!r} ({e}); deploygym ids: "
                         f"{', '.join(ALL_IDS)}") from None
