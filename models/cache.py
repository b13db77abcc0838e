"""The on-disk cache of expensive artifacts: where it lives, how entries are keyed and checked.

Every cached artifact (trained networks, Voronoi-CNNs, teacher logits, boundary samples,
simulated fields) lives under :func:`cache_root` in a folder or file named by
:func:`config_hash` of the configuration that built it. A folder entry holds its payload and
a ``meta.json`` recording the payload's sha256 (:func:`file_digest`) and that configuration;
:func:`verified_meta` checks both before anything is used. :func:`file_lock` keeps parallel
workers from building the same entry twice, and :func:`train_once` is the whole "train under a
lock, resume if killed, verify" cycle shared by :mod:`models.zoo` and :mod:`fields.pretrained`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import torch
from filelock import FileLock

from models.io import WriteError, atomic_copy, atomic_write_json
from models.readers import DELETE, check_digest, read_json

T = TypeVar("T")


def env_folder(var: str, default: Path) -> Path:
    """The folder the environment variable ``var`` names, or ``default`` when it is unset.
    Set but empty, or naming something that is not a folder, is an error naming ``var``
    (an empty value would otherwise mean the current directory)."""
    value = os.environ.get(var)
    if value is None:
        return default
    if not value.strip():
        raise ValueError(f"{var} is set but empty; set it to a folder or unset it "
                         f"(default {default})")
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{var}={value} is not a folder; set it to a folder or unset "
                                 f"it (default {default})")
    return path


def cache_root() -> Path:
    """``$DEPLOYGYM_CACHE`` or ``~/.cache/deploygym``."""
    return env_folder("DEPLOYGYM_CACHE", Path.home() / ".cache" / "deploygym")


def state_dict_sha256(net: torch.nn.Module) -> str:
    """sha256 over a network's state dict (names and raw bytes, sorted): equal weights, equal
    hash, wherever the network was saved or loaded."""
    h = hashlib.sha256()
    for k, v in sorted(net.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def config_hash(obj: Any) -> str:
    """A short sha256 of ``obj``'s canonical JSON: the cache key of an artifact."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_digest(path: Path) -> str:
    """The sha256 (hex) of a file's bytes."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def verified_meta(d: Path, payload: str = "model.pt", config: dict[str, Any] | None = None,
                  fix: str = DELETE) -> dict[str, Any]:
    """``d/meta.json`` after checking that ``d/<payload>`` has the sha256 it records (and, if
    given, that it was built from ``config``); ``ValueError`` naming the file, the mismatch
    and ``fix`` otherwise (a record without a sha256 is one)."""
    meta = read_json(d / "meta.json", fix, keys=("sha256",) + (("config",) if config else ()),
                     kind="cache record")
    if config is not None and meta["config"] != json.loads(json.dumps(config)):
        raise ValueError(f"{d / 'meta.json'}: holds a different configuration; {fix}")
    check_digest(d / payload, meta["sha256"], d / "meta.json", fix)
    return meta


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock (``filelock``: portable, also on Windows), so parallel workers do
    not build the same entry twice."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path)):
        yield


@contextmanager
def entry_lock(d: Path) -> Iterator[bool]:
    """The lock of the cache entry ``d`` (a hidden file beside it). Yields ``True`` under the
    lock, or ``False`` when the cache cannot be written (read-only, no permission): the
    caller may then only read an entry that is already there (see :func:`read_only_miss`)."""
    lock: Any = None
    try:
        lock = file_lock(d.parent / f".{d.name}.lock")
        lock.__enter__()
    except OSError:
        lock = None
    try:
        yield lock is not None
    finally:
        if lock is not None:
            lock.__exit__(None, None, None)


def read_only_miss(d: Path, what: str) -> WriteError:
    """The error for a cache that cannot be written and lacks the verified entry ``d``."""
    return WriteError(errno.EACCES, f"cannot write the cache entry {d} (read-only or no "
                                    f"permission) and it holds no verified {what}; make the "
                                    f"cache writable or set DEPLOYGYM_CACHE to a writable folder")


def _resumable(run: Path) -> bool:
    """Whether a killed training left ``run/last.pt`` to continue from, with every checkpoint
    in ``run`` readable (a resumed run also reads and finally copies ``best.pt``: one
    unreadable file would wedge the entry, so any of them means "start again")."""
    if not (run / "last.pt").exists():
        return False
    for ckpt in sorted(run.glob("*.pt")):
        try:
            torch.load(ckpt, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any failure means "start again"
            warnings.warn(f"{ckpt} is unreadable ({type(e).__name__}); training from scratch",
                          RuntimeWarning, stacklevel=3)
            return False
    return True


BUILD_PREFIX = "deploygym: first use: "


def announce_build(action: str, where: Path, typical: str = "") -> None:
    """One line on stderr before an expensive first-use build (``action``: "training the
    digits/cnn network"): what, how long it typically takes, and where the result is cached,
    so the wait is expected and happens once."""
    took = f" (typically {typical})" if typical else ""
    print(f"{BUILD_PREFIX}{action}{took}; done once, then read from {where}",
          file=sys.stderr, flush=True)


def train_once(d: Path, load: Callable[[Path], T | None],
               train: Callable[[Path, bool], dict[str, Any]], what: str = "model",
               typical: str = "") -> T:
    """The trained artifact in cache folder ``d``, training it first if needed.

    Under ``d``'s lock: ``load(d)`` returns the verified artifact or ``None`` (absent or
    failing verification, which ``load`` reports). Otherwise the stale ``model.pt`` /
    ``meta.json`` are removed and ``train(run_dir, resume)`` trains into ``d/run``
    (``resume`` is true when a killed training left a readable ``run/last.pt``) and returns
    the metadata to record; ``run/best.pt`` becomes ``d/model.pt`` (atomically) and the
    metadata plus its sha256 become ``d/meta.json``. The result is loaded and verified again.
    ``typical`` (e.g. ``"4 min on 2 CPU cores"``) is announced before training.
    """
    with entry_lock(d) as writable:
        found = load(d)
        if found is not None:
            return found
        if not writable:
            raise read_only_miss(d, what)
        for stale in ("model.pt", "meta.json"):
            (d / stale).unlink(missing_ok=True)
        run = d / "run"
        resume = _resumable(run)
        announce_build(("resuming the training of " if resume else "training ") + what, d,
                       typical)
        if not resume and run.exists():
            shutil.rmtree(run)
        meta = train(run, resume)
        atomic_copy(run / "best.pt", d / "model.pt")
        atomic_write_json({**meta, "sha256": file_digest(d / "model.pt")}, d / "meta.json")
        found = load(d)
        if found is None:
            raise RuntimeError(f"freshly trained {what} in {d} failed verification")
        return found
