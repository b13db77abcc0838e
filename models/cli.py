"""Command-line flags generated from a config dataclass (one flag per field)."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def _base_type(tp: Any) -> Any:
    """``X`` for ``X`` or ``X | None``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(tp) if a is not type(None))
    return tp


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type,
                       help_text: dict[str, str] | None = None) -> None:
    """Add ``--field-name`` for every field of ``cls`` (bools become ``--x/--no-x``)."""
    hints = typing.get_type_hints(cls)
    docs = help_text or getattr(cls, "HELP", {})
    for f in dataclasses.fields(cls):
        if not f.init or f.metadata.get("cli") is False:
            continue
        tp = _base_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kw: dict[str, Any] = {"dest": f.name, "default": default,
                              "help": f"{docs.get(f.name, '')} (default: {default})".strip()}
        if tp is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
            continue
        if "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        if typing.get_origin(tp) in (tuple, list):
            inner = typing.get_args(tp)[0]
            parser.add_argument(flag, type=inner, nargs="+", **kw)
            continue
        parser.add_argument(flag, type=tp, **kw)


def dataclass_from_args(cls: type[T], args: argparse.Namespace) -> T:
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    return cls(**{k: v for k, v in vars(args).items() if k in names})
