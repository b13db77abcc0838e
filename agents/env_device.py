"""Put an env's networks on the agent's device: one ``--device`` for the whole run.

``agents.train --device cuda`` once moved only the SB3 policy while the env's classifier,
teacher or reconstructor stayed where ``--env-kwargs device:`` put them (the CPU by default).
:func:`place_env` resolves the flag once (:func:`models.device.resolve_device`: CUDA without
CUDA is an error, never a silent CPU run) and passes ``device=`` to every env whose class
takes it; a different ``device`` in the env kwargs is refused with both values named.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import typing
from typing import Any

import torch

import envs
from models.device import DeviceError, resolve_device


def _entry_class(env_id: str) -> Any:
    entry = envs.check_id(env_id).entry_point
    if callable(entry):
        return entry
    module, _, name = str(entry).partition(":")
    return getattr(importlib.import_module(module), name)


def accepts_device(env_id: str) -> bool:
    """Whether ``env_id``'s class takes a ``device`` keyword: as a parameter of its own, or,
    for a class that takes ``**kwargs`` and checks them with its module's ``make_config``, as
    a field of the config dataclass that function returns (DynamicPTQ, DistillSource)."""
    cls = _entry_class(env_id)
    params = inspect.signature(cls).parameters
    if "device" in params:
        return True
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return False
    make_config = getattr(importlib.import_module(cls.__module__), "make_config", None)
    if make_config is None:
        return False
    config = typing.get_type_hints(make_config).get("return")
    return dataclasses.is_dataclass(config) and "device" in {f.name for f in
                                                             dataclasses.fields(config)}


def same_device(a: str, b: str) -> bool:
    """``cuda`` and ``cuda:<current>`` are the same device; otherwise compare as written."""
    da, db = torch.device(a), torch.device(b)
    if da.type != db.type:
        return False
    if da.type != "cuda" or da.index == db.index:
        return da.index == db.index
    current = torch.cuda.current_device()
    return (da.index if da.index is not None else current) == (
        db.index if db.index is not None else current)


def place_env(env_id: str, env_kwargs: dict[str, Any], device: str | None = "auto"
              ) -> tuple[str, dict[str, Any]]:
    """``(device, env_kwargs)``: the resolved device of the run and the env kwargs that put
    the env's networks on it (``device=`` added when the env takes one).

    ``device`` ``auto`` (or ``None``) follows a ``device`` already in ``env_kwargs``; an explicit
    device that differs from it raises ``ValueError`` naming both. Unknown or absent devices
    raise :class:`models.device.DeviceError` (a ``ValueError``).
    """
    flag = "auto" if device is None else str(device)
    given = env_kwargs.get("device")
    if given is not None:
        in_kwargs = resolve_device(str(given))
        if flag.strip().lower() != "auto" and not same_device(resolve_device(flag), in_kwargs):
            raise DeviceError(f"--device {flag} contradicts --env-kwargs device:{given}; the "
                              f"agent and the env's networks run on one device: drop one of "
                              f"them or make them equal")
        resolved = in_kwargs
    else:
        resolved = resolve_device(flag)
    if not accepts_device(env_id):
        return resolved, dict(env_kwargs)
    return resolved, {**env_kwargs, "device": resolved}
