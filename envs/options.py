"""Keyword arguments shared by the envs that wrap a trained network: split and check them.

DynamicPTQ and DistillSource take their own options *and* the options of the network they
load through :func:`models.zoo.get_trained` (any :class:`models.train.TrainConfig` field) in
one flat set of keyword arguments, as ``gym.make`` passes them. :func:`split_options` sorts
them into the two groups with errors that list every valid name; :func:`check_choice` is the
one membership check with a clear message.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import fields
from typing import Any

_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")

# TrainConfig fields an env sets itself (or that only say where/how to train).
_NOT_NETWORK_OPTIONS = frozenset({"dataset", "arch", "device", "progress", "run_dir", "resume"})


def check_choice(name: str, value: Any, options: tuple) -> None:
    """``ValueError`` naming ``name`` and its valid values unless ``value`` is one of them."""
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")


def as_bool(name: str, value: Any) -> bool:
    """``value`` as a bool: bools, 0/1 and true/false/yes/no/on/off (any case); anything else
    is a ``TypeError`` naming ``name`` (a string such as ``'no'`` must never act as True)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise TypeError(f"{name} must be a boolean (true/false, yes/no, 1/0), got {value!r}")


def _number(name: str, value: Any, kind: type) -> int | float:
    """``value`` as ``kind`` (``int`` or ``float``); a ``TypeError`` naming ``name`` if it is
    not a number (or, for ``int``, not a whole one), a ``ValueError`` if it is NaN or ±inf (a
    reward or loss would carry it). Bools are not numbers here."""
    what = "an integer" if kind is int else "a number"
    try:
        if isinstance(value, bool):
            raise ValueError
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be {what}, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if kind is int:
        if not v.is_integer():
            raise TypeError(f"{name} must be {what}, got {value!r}")
        return int(v)
    return v


def coerce_options(kwargs: dict[str, Any], config_cls: type) -> dict[str, Any]:
    """``kwargs`` with each value checked (and, for strings from a command line, converted)
    against the type of ``config_cls``'s field of that name: bools parsed by :func:`as_bool`,
    numbers by value; other types (and unions of several) are left to the env's own checks.
    Errors name the option."""
    hints = typing.get_type_hints(config_cls)
    out = dict(kwargs)
    for name, value in kwargs.items():
        tp = hints.get(name)
        args = typing.get_args(tp) if isinstance(tp, types.UnionType) else ()
        if value is None and type(None) in args:
            continue
        members = [a for a in args if a is not type(None)]
        if len(members) > 1:
            continue  # a union of several types: the env checks it
        base = members[0] if args else tp
        if base is bool:
            out[name] = as_bool(name, value)
        elif base in (int, float):
            out[name] = _number(name, value, base)
    return out


def split_options(kwargs: dict[str, Any], config_cls: type, *, env: str, nested: str,
                  role: str, object_arg: str, has_object: bool
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(env_options, network_options)`` from the flat ``kwargs`` of an env.

    Args:
        config_cls: the env's config dataclass; its fields are the env options, except
            ``nested``, the field that receives the network options.
        env: the env's name, for messages (``"DynamicPTQ"``).
        role: what the network is to the env, for messages (``"network"``, ``"teacher"``).
        object_arg: the keyword that passes a ready network instead (``"net"``).
        has_object: whether that keyword was given; network options are then an error.

    Names in both groups (``lr``, ``batch_size``) are the env's. Unknown names raise
    ``TypeError`` listing both groups; network options next to ``object_arg`` raise
    ``ValueError``.
    """
    from models.train import TrainConfig

    env_names = {f.name for f in fields(config_cls)} - {nested}
    net_names = {f.name for f in fields(TrainConfig)} - env_names - _NOT_NETWORK_OPTIONS
    unknown = set(kwargs) - env_names - net_names
    if unknown:
        raise TypeError(f"{env} got unknown options {sorted(unknown)}. Environment options: "
                        f"{sorted(env_names | {object_arg, 'data'})}; {role} options (passed "
                        f"to models.zoo.get_trained): {sorted(net_names)}")
    env_kw = coerce_options({k: v for k, v in kwargs.items() if k in env_names}, config_cls)
    net_kw = coerce_options({k: v for k, v in kwargs.items() if k in net_names}, TrainConfig)
    if has_object and net_kw:
        raise ValueError(f"{role} options {sorted(net_kw)} cannot be combined with "
                         f"{object_arg}=; they only select which trained {role} to load")
    return env_kw, net_kw
