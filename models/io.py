"""Atomic file writes and the provenance every result file records."""

from __future__ import annotations

import errno
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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


def _is_write_failure(e: BaseException) -> bool:
    """An OS error, or torch's serializer failing to write (a full disk surfaces there as
    ``RuntimeError: [enforce fail at inline_container.cc…] … file write failed``)."""
    if isinstance(e, OSError):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and any(
        s in text for s in ("inline_container", "PytorchStreamWriter", "file write failed"))


def write_error(path: Path, e: BaseException) -> WriteError:
    """``WriteError`` naming ``path``, the cause and the fix."""
    code = getattr(e, "errno", None)
    cause = getattr(e, "strerror", None) or " ".join(str(e).split())[:160] or type(e).__name__
    fix = ("Free disk space or choose another directory"
           if code in (None, errno.ENOSPC, errno.EDQUOT)
           else "Make it writable or choose another directory")
    return WriteError(code or errno.ENOSPC, f"could not write {path} ({cause}); the previous "
                                            f"version, if any, is kept. {fix}.")


def atomic_write(path: str | Path, write: Any) -> None:
    """Call ``write(f)`` on a temporary binary file beside ``path``, fsync, rename it over
    ``path``; on failure the previous file is kept. Any OS failure (full disk, permissions,
    read-only filesystem), torch's serializer's included, is a ``WriteError`` naming ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise write_error(path, e) from e
    try:
        follow_umask(fd)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if _is_write_failure(e) and not isinstance(e, WriteError):
            raise write_error(path, e) from e
        raise


MIN_FREE_BYTES = 1 << 20  # below this an output folder is full for a run's first writes


def ensure_writable(folder: str | Path, need: int = MIN_FREE_BYTES) -> Path:
    """Create ``folder`` and check that it has ``need`` bytes free, before a run starts
    writing there (TensorBoard's writer thread would otherwise fail with a bare traceback);
    ``WriteError`` naming the folder otherwise."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(folder).free
    except OSError as e:
        raise write_error(folder, e) from e
    if free < need:
        raise WriteError(errno.ENOSPC, f"could not write to {folder}: {free} bytes free (a run "
                                       f"needs at least {need}). Free disk space or choose "
                                       f"another directory.")
    return folder


class OutputLockedError(FileExistsError):
    """Another process is writing to the same output folder."""


@contextmanager
def output_lock(folder: str | Path, flag: str = "--out") -> Iterator[None]:
    """Hold ``folder/.lock`` while a run writes into ``folder``: a second run with the same
    output stops at once with :class:`OutputLockedError` instead of interleaving its files
    with the first. The lock is released when the run ends, however it ends (also kill -9)."""
    from filelock import FileLock, Timeout

    folder = ensure_writable(folder)
    try:
        lock = FileLock(str(folder / ".lock"), timeout=0)
        lock.acquire()
    except Timeout:
        raise OutputLockedError(f"{folder} is in use by another run (it holds {folder / '.lock'});"
                                f" wait for it to finish or choose another {flag}") from None
    except OSError as e:
        raise write_error(folder / ".lock", e) from e
    try:
        yield
    finally:
        lock.release()


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    atomic_write(Path(path), lambda f: torch.save(obj, f))


def atomic_copy(src: str | Path, path: str | Path) -> None:
    """Copy the file ``src`` to ``path`` atomically."""
    def copy(f: Any) -> None:
        with open(src, "rb") as s:
            shutil.copyfileobj(s, f)
    atomic_write(Path(path), copy)


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
