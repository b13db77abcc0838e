"""Reading the files the suite consumes: verified, and every failure one line naming the file.

Checkpoints, pair and policy folders, result and trial JSON, sweep and hyperparameter YAML are
all read here. A read that fails raises :class:`BadFileError` (a ``ValueError``: exit 2 on
the command line) whose message is ``<path>: <what is wrong>; <the fix>`` — delete it, start
again with ``--fresh``, or re-download — never a bare ``JSONDecodeError`` or
``OSError: [Errno 22]``. Digests are required where a file records them (a missing digest is
an error, not a skip), tensors are read with ``torch.load(weights_only=True)`` (nothing is
unpickled as code), and a reference from one artifact to another may only name a sibling
folder (:func:`sibling_folder`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import yaml

#: The usual fixes, for messages.
DELETE = "delete it and run again"
FRESH = "pass --fresh to start over (or delete it)"
REDOWNLOAD = "re-download or re-create it"


class BadFileError(ValueError):
    """A file the suite reads is missing a part, truncated, corrupt, edited or of the wrong
    kind; the message names the file, what is wrong and the fix."""


def bad_file(path: str | Path, problem: str, fix: str) -> BadFileError:
    """``BadFileError("<path>: <problem>; <fix>")`` (the problem on one line)."""
    return BadFileError(f"{path}: {' '.join(str(problem).split())}; {fix}")


def _reason(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:160]}" if text else type(e).__name__


def _require(path: Path, fix: str) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; {fix}")
    if path.is_dir():
        raise bad_file(path, "is a folder, not a file", fix)


def read_text(path: str | Path, fix: str = DELETE) -> str:
    """The UTF-8 text of ``path``; unreadable or not text is a :class:`BadFileError`."""
    path = Path(path)
    _require(path, fix)
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise bad_file(path, f"unreadable ({_reason(e)})", fix) from None


def _check_keys(path: Path, obj: Any, keys: Iterable[str], kind: str, fix: str) -> None:
    keys = list(keys)
    if keys and not isinstance(obj, dict):
        raise bad_file(path, f"is not a {kind} (holds a {type(obj).__name__}, not a mapping)",
                       fix)
    missing = [k for k in keys if k not in obj]
    if missing:
        raise bad_file(path, f"is not a complete {kind} (no {', '.join(map(repr, missing))})",
                       fix)


def read_json(path: str | Path, fix: str = DELETE, *, keys: Iterable[str] = (),
              kind: str = "JSON record") -> Any:
    """The JSON in ``path``, which must hold ``keys`` (a mapping then); a truncated or invalid
    file is a :class:`BadFileError` naming the line and column."""
    path = Path(path)
    text = read_text(path, fix)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        what = "empty" if not text.strip() else f"not valid JSON ({e.msg} at line {e.lineno}, " \
                                                 f"column {e.colno}: truncated or edited)"
        raise bad_file(path, what, fix) from None
    _check_keys(path, obj, keys, kind, fix)
    return obj


def read_yaml_file(path: str | Path, fix: str = "correct the line shown") -> Any:
    """The YAML in ``path`` (``1e-3`` read as a float, see :func:`models.cli.read_yaml`); a
    syntax error names the file, the line number and that line's text."""
    from models.cli import read_yaml

    path = Path(path)
    text = read_text(path, fix)
    try:
        return read_yaml(text)
    except yaml.YAMLError as e:
        lines = text.splitlines()

        def line_of(mark: Any) -> str:
            return lines[mark.line].strip() if mark is not None and mark.line < len(lines) else ""

        # the problem's line, or where the unclosed construct began (an error at the end)
        mark = getattr(e, "problem_mark", None)
        if not line_of(mark) and line_of(getattr(e, "context_mark", None)):
            mark = e.context_mark
        problem = "; ".join(str(x) for x in (getattr(e, "context", None),
                                              getattr(e, "problem", None)) if x)
        where = ""
        if mark is not None:
            line = line_of(mark)
            where = f" at line {mark.line + 1}" + (f" ({line[:60]!r})" if line else "")
        raise bad_file(path, f"is not valid YAML{where}: {problem or str(e).splitlines()[0]}",
                       fix) from None


def check_digest(path: str | Path, expected: Any, recorded_in: str | Path, fix: str) -> None:
    """``path``'s sha256 must equal ``expected`` (recorded in ``recorded_in``); a missing
    record is an error too, not a skip."""
    from models.cache import file_digest

    path = Path(path)
    _require(path, fix)
    if not isinstance(expected, str) or not expected:
        raise bad_file(recorded_in, f"records no sha256 for {path.name} (unverifiable)", fix)
    try:
        digest = file_digest(path)
    except OSError as e:
        raise bad_file(path, f"unreadable ({_reason(e)})", fix) from None
    if digest != expected:
        raise bad_file(path, f"does not match the sha256 in {Path(recorded_in).name} (corrupt, "
                             f"truncated or replaced)", fix)


def read_torch(path: str | Path, fix: str = DELETE, *, keys: Iterable[str] = (),
               kind: str = "checkpoint", map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``; a truncated, corrupt or non-tensor file is a
    :class:`BadFileError`, and so is one that lacks ``keys``."""
    import pickle

    path = Path(path)
    _require(path, fix)
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        what = ("holds objects other than tensors (refused: unpickling them could run code)"
                if "weights_only" in str(e).lower() or "global" in str(e).lower()
                else f"is not a readable {kind} (truncated or corrupt: {_reason(e)})")
        raise bad_file(path, what, fix) from None
    except Exception as e:  # noqa: BLE001 - truncated zips raise RuntimeError/OSError/EOFError
        raise bad_file(path, f"is not a readable {kind} (truncated or corrupt: {_reason(e)})",
                       fix) from None
    _check_keys(path, obj, keys, kind, fix)
    return obj


def load_weights(module: Any, state: Any, path: str | Path, fix: str) -> None:
    """``module.load_state_dict(state)`` (a network or an optimizer); a state of another
    architecture is one line with the counts of missing/unexpected/mis-shaped entries and one
    example of each, naming ``path``."""
    if not isinstance(state, dict):
        raise bad_file(path, f"holds a {type(state).__name__}, not a state dict", fix)
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and hasattr(state[k], "shape")
              and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = [f"{len(v)} {name} (e.g. {v[0]!r})" for name, v in
                 (("missing", missing), ("unexpected", unexpected), ("of another shape", shapes))
                 if v]
        raise bad_file(path, f"holds weights of another architecture than "
                             f"{type(module).__name__}: {', '.join(parts)} entries", fix)
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError) as e:
        raise bad_file(path, f"cannot be loaded into {type(module).__name__} ({_reason(e)})",
                       fix) from None


def sibling_folder(folder: Path, ref: Any, record: str | Path, fix: str) -> Path:
    """The folder a reference ``ref`` inside ``record`` (a file in ``folder``) names: only
    ``../<name>``, a sibling of ``folder``, is accepted (no other path, no escape)."""
    if not isinstance(ref, str):
        raise bad_file(record, f"names the folder {ref!r}: not a string", fix)
    parts = Path(ref).parts
    if (len(parts) != 2 or parts[0] != ".." or parts[1] in (".", "..")
            or "\\" in ref or Path(ref).is_absolute()):
        raise bad_file(record, f"names the folder {ref!r}: only a sibling folder, "
                               f"'../<name>', may be referenced", fix)
    return folder.resolve().parent / parts[1]
