"""Atomic file writes and the provenance every result file records."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

TRACKED_PACKAGES = ("torch", "torchvision", "numpy", "scipy", "gymnasium", "stable-baselines3",
                    "sb3-contrib", "scikit-learn", "deploygym")


class WriteError(OSError):
    """A result or checkpoint could not be written; the previous file is left untouched."""


def follow_umask(fd: int) -> None:
    """Give a ``mkstemp`` file (always 0600) the mode ``open()`` would: 0666 less the umask."""
    mask = os.umask(0)
    os.umask(mask)
    os.fchmod(fd, 0o666 & ~mask)


def atomic_write(path: str | Path, write: Any) -> None:
    """Call ``write(f)`` on a temporary binary file beside ``path``, fsync, rename it over
    ``path``; on failure the previous file is kept (``WriteError`` for OS errors)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        follow_umask(fd)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise WriteError(e.errno, f"could not write {path} ({e.strerror or e}); the previous "
                                      f"version, if any, is kept. Free disk space or choose "
                                      f"another directory.") from e
        raise


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    atomic_write(Path(path), lambda f: torch.save(obj, f))


def atomic_write_text(text: str, path: str | Path) -> None:
    """Write ``text`` (UTF-8) atomically."""
    data = text.encode()
    atomic_write(Path(path), lambda f: f.write(data))


def atomic_write_json(obj: Any, path: str | Path) -> None:
    """Write ``obj`` as indented JSON atomically."""
    data = json.dumps(obj, indent=2, sort_keys=False, default=str).encode()
    atomic_write(Path(path), lambda f: f.write(data))


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def machine_description() -> dict[str, Any]:
    return {"platform": platform.platform(), "processor": platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available(),
            "load_avg_1_5_15min": [round(v, 2) for v in os.getloadavg()]}


def command_line() -> str:
    """The command that started this process, quoted so it can be pasted back into a shell."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(".py") and "/" in argv[0]:
        argv[0] = os.path.relpath(argv[0])
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        argv = ["python", "-m", spec.name.removesuffix(".__main__"), *argv[1:]]
    return shlex.join(argv)


def provenance(seed: int | None = None, command: str | None = None) -> dict[str, Any]:
    """The command (default: this process's), seed, package versions and machine of a run."""
    return {"command": command or command_line(), "seed": seed, "versions": package_versions(),
            "machine": machine_description()}
