"""Command-line interfaces generated from a config dataclass (one flag per field).

Every ``python -m X`` trainer reads its flags the same way::

    cfg, command = parse_config(TrainConfig, argv, prog="python -m models.train", doc=__doc__)

:func:`parse_config` builds the parser from the dataclass (help from its ``HELP`` mapping),
constructs the config, and turns a ``ValueError``/``TypeError`` raised while checking it into
argparse's usage error (exit status 2, the message naming the flag), never a traceback.
Free-form ``key:value`` options (``--teacher-kw seed:1``) are read by :func:`parse_kv`.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import math
import os
import re
import shlex
import signal
import sys
import textwrap
import threading
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def _base_type(tp: Any) -> Any:
    """``X`` for ``X`` or ``X | None``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(tp) if a is not type(None))
    return tp


def field_docs(cls: type) -> dict[str, str]:
    """Help per field: the class's ``HELP`` mapping, then CleanRL-style attribute docstrings
    (a string literal on the line after the field)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        except (OSError, TypeError, SyntaxError, IndexError):
            body = []
        for node, nxt in zip(body, body[1:], strict=False):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                docs[node.target.id] = " ".join(nxt.value.value.split())
        docs.update(getattr(klass, "HELP", {}))
    return docs


def _default(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add ``--field-name`` for every field of ``cls``.

    Bools become ``--x/--no-x``; lists and tuples take several values; a field whose type is
    itself a dataclass contributes one flag per field of it (flattened). Field metadata may
    give ``flags`` (extra spellings such as ``-n``), ``choices``, ``nargs``, ``metavar``;
    ``cli=False`` hides a field.
    """
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        if not f.init or f.metadata.get("cli") is False:
            continue
        tp = _base_type(hints[f.name])
        if dataclasses.is_dataclass(tp):
            add_dataclass_args(parser, tp)
            continue
        flags = (*f.metadata.get("flags", ()), "--" + f.name.replace("_", "-"))
        default = _default(f)
        text = f"{docs.get(f.name, '')} (default: {default})".strip()
        kw: dict[str, Any] = {"dest": f.name, "default": default,
                              "help": text.replace("%", "%%")}  # argparse %-formats help
        if tp is bool:
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **kw)
            continue
        for key in ("choices", "metavar"):
            if key in f.metadata:
                kw[key] = f.metadata[key]
        if typing.get_origin(tp) in (tuple, list):
            kw["nargs"] = f.metadata.get("nargs", "+")
            tp = typing.get_args(tp)[0]
        if tp is float:
            tp = finite_float
        parser.add_argument(*flags, type=tp, **kw)


def finite_float(text: str) -> float:
    """A float flag's value: NaN and ±inf are refused (a loss or reward would carry them)."""
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def dataclass_from_args(cls: type[T], args: argparse.Namespace) -> T:
    """``cls`` built from the parsed flags (nested dataclass fields rebuilt from theirs)."""
    hints = typing.get_type_hints(cls)
    values = vars(args)
    kw: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = _base_type(hints[f.name])
        if dataclasses.is_dataclass(tp) and f.metadata.get("cli") is not False:
            kw[f.name] = dataclass_from_args(tp, args)
        elif f.name in values:
            v = values[f.name]
            kw[f.name] = tuple(v) if typing.get_origin(tp) is tuple and v is not None else v
    return cls(**kw)


def make_parser(cls: type, *, prog: str, doc: str | None) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with one flag per field of ``cls`` and ``doc`` as its text."""
    parser = argparse.ArgumentParser(prog=prog, description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_args(parser, cls)
    return parser


def command_of(prog: str, argv: list[str] | None) -> str:
    """The command line that ran (``argv`` given: ``prog`` + ``argv``; else ``sys.argv``)."""
    from models.io import command_line

    return command_line() if argv is None else shlex.join([*prog.split(), *argv])


def parse_config(cls: type[T], argv: list[str] | None, *, prog: str, doc: str | None,
                 parser: argparse.ArgumentParser | None = None) -> tuple[T, str]:
    """``(config, command)`` from ``argv``; a config that fails its checks exits with usage.

    ``parser`` (from :func:`make_parser`, with extra flags) may be passed instead of building
    one; its extra flags are ignored here.
    """
    parser = parser or make_parser(cls, prog=prog, doc=doc)
    args = parser.parse_args(argv)
    try:
        cfg = dataclass_from_args(cls, args)
    except (TypeError, ValueError) as e:
        parser.error(str(e))
    return cfg, command_of(prog, argv)


#: Exceptions that mean "the input was wrong" (exit 2, like an argparse usage error).
BAD_INPUT = (ValueError, TypeError, KeyError, LookupError, FileNotFoundError, FileExistsError,
             NotADirectoryError, IsADirectoryError)
DEBUG_ENV = "DEPLOYGYM_DEBUG"


class _Signals:
    """SIGTERM raised as ``KeyboardInterrupt``, so a terminated run stops like Ctrl-C: it
    keeps its last checkpoint and says where to resume; ``received`` is the signal seen."""

    received: int | None = None

    @classmethod
    def on_term(cls, signum: int, frame: Any) -> None:
        cls.received = signum
        raise KeyboardInterrupt

    @classmethod
    def install(cls) -> list[Any]:
        """Handle SIGTERM (main thread only); returns ``[previous handler]`` or ``[]``."""
        cls.received = None
        if threading.current_thread() is not threading.main_thread():
            return []
        return [signal.signal(signal.SIGTERM, cls.on_term)]


def run_cli(main: Callable[[list[str] | None], Any], argv: list[str] | None = None,
            prog: str | None = None) -> None:
    """Run a command-line ``main`` as a user expects: a one-line message instead of a
    traceback, exit 2 for bad input, 1 for a failed run (divergence, a full disk, ...), 130
    for Ctrl-C and 143 for SIGTERM (the message says where to resume). ``--debug`` (anywhere
    in the arguments) or ``DEPLOYGYM_DEBUG=1`` shows the traceback instead."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
    prog = prog or f"python -m {main.__module__}"
    previous = _Signals.install()
    hook = threading.excepthook
    if not debug:  # a background thread (TensorBoard's writer on a full disk): one line too
        threading.excepthook = lambda a: print(
            f"{prog}: warning: a background thread failed: {a.exc_type.__name__}: "
            f"{' '.join(str(a.exc_value).split())}", file=sys.stderr)
    try:
        main(args)
    except KeyboardInterrupt as e:
        if debug:
            raise
        term = _Signals.received == signal.SIGTERM
        msg = " ".join(str(e).split()) or "interrupted"
        if term:
            rest = msg.removeprefix("interrupted").removeprefix("; ")
            msg = "terminated (SIGTERM)" + (f"; {rest}" if rest else "")
        print(f"{prog}: {msg}", file=sys.stderr)
        raise SystemExit(128 + signal.SIGTERM if term else 130) from None
    except SystemExit as e:
        if e.code == 130 and _Signals.received == signal.SIGTERM:  # main's own Ctrl-C exit
            print(f"{prog}: terminated (SIGTERM); the command that continues the run is "
                  f"printed above", file=sys.stderr)
            raise SystemExit(128 + signal.SIGTERM) from None
        raise
    except Exception as e:  # noqa: BLE001 - the point is one line for any failure
        if debug:
            raise
        code = 2 if isinstance(e, BAD_INPUT) else 1
        msg = " ".join(str(e).split())
        print(f"{prog}: error: {type(e).__name__}: {msg}\n(run with --debug or "
              f"{DEBUG_ENV}=1 for the traceback)", file=sys.stderr)
        raise SystemExit(code) from None
    finally:
        threading.excepthook = hook
        for handler in previous:
            signal.signal(signal.SIGTERM, handler if handler is not None else signal.SIG_DFL)


def parse_kv(items: list[str] | None, flag: str) -> dict[str, Any]:
    """``["lr:0.1", "arch:cnn", "bits:[2,4]"]`` → ``{"lr": 0.1, "arch": "cnn", "bits": [2, 4]}``.

    Values are read with :func:`read_yaml`, so numbers (also ``1e-3``), booleans, lists and
    ``null`` work.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise ValueError(f"{flag} expects key:value pairs, got {item!r}")
        out[key] = read_yaml(value) if value else None
    return out


_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def read_yaml(text: str) -> Any:
    """``yaml.safe_load``, except that ``1e-3``-style scalars are floats (YAML 1.1 reads a
    mantissa without a dot as a string, so ``learning_rate: 1e-3`` would reach SB3 as text)."""
    return _scientific_to_float(yaml.safe_load(text))


def _scientific_to_float(v: Any) -> Any:
    if isinstance(v, str) and _SCIENTIFIC.fullmatch(v):
        return float(v)
    if isinstance(v, list):
        return [_scientific_to_float(x) for x in v]
    if isinstance(v, dict):
        return {k: _scientific_to_float(x) for k, x in v.items()}
    return v
