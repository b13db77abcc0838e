"""One way to build a registered id: its variant options merged with the caller's.

Every code path that turns an env id into an environment (``gym.make``, the batched vector
envs, the whole-split rollouts of :mod:`envs.ptq.rollout`, the evaluator and its analyses)
takes its keyword arguments from :func:`env_options`, so ``deploygym/DynamicPTQJoint-v0``
means joint actions everywhere, not only where ``gym.make`` is called.

>>> from envs.registry import env_options
>>> env_options("deploygym/DynamicPTQRobust-v0", {"budget_bits": 3})
{'reward': 'robust', 'budget_bits': 3}
"""

from __future__ import annotations

import inspect
from dataclasses import fields
from typing import Any

from gymnasium.envs.registration import EnvSpec

# entry point -> family name (one name per environment class, for per-family registries)
FAMILIES: dict[str, str] = {
    "envs.ptq:DynamicPTQEnv": "DynamicPTQ",
    "envs.distill_source:DistillSourceEnv": "DistillSource",
    "envs.sensors:SensorPlacementEnv": "SensorPlacement",
}
# entry point -> "module:Config" dataclass whose fields are the options of an env taking **kwargs
_OPTION_CLASSES: dict[str, str] = {
    "envs.ptq:DynamicPTQEnv": "envs.ptq.config:PTQConfig",
    "envs.distill_source:DistillSourceEnv": "envs.distill_source.config:DistillSourceConfig",
}


def _spec(env_id: str) -> EnvSpec:
    from envs import check_id  # envs/__init__ (the registry) is loaded before this module

    return check_id(env_id)


def env_options(env_id: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The keyword arguments ``env_id`` is built with: its registered variant options
    (``gym.spec(env_id).kwargs``) updated by ``overrides`` (the caller's value wins).

    Raises ``ValueError`` listing the deploygym ids when ``env_id`` is unknown.
    """
    if overrides is not None and not isinstance(overrides, dict):
        raise TypeError(f"env options must be a dict, got {type(overrides).__name__}")
    return {**_spec(env_id).kwargs, **(overrides or {})}


def entry_point(env_id: str) -> str:
    """The ``module:Class`` entry point of ``env_id`` as a string."""
    return str(_spec(env_id).entry_point)


def family_of(env_id: str) -> str | None:
    """``"DynamicPTQ"``, ``"DistillSource"``, ``"SensorPlacement"``, or ``None`` for an id of
    another package."""
    return FAMILIES.get(entry_point(env_id))


def _load(target: str) -> Any:
    import importlib

    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def accepts_option(env_id: str, name: str) -> bool:
    """Whether ``env_id``'s class takes the keyword argument ``name`` (e.g. ``device``,
    ``split``): a named parameter of its constructor, or a field of its options dataclass."""
    ep = entry_point(env_id)
    if ep in _OPTION_CLASSES:
        return name in {f.name for f in fields(_load(_OPTION_CLASSES[ep]))}
    target = _spec(env_id).entry_point
    cls = _load(target) if isinstance(target, str) else target
    params = inspect.signature(cls).parameters
    return name in params


__all__ = ["FAMILIES", "accepts_option", "entry_point", "env_options", "family_of"]
