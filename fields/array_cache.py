"""On-disk cache of generated fields: ``$DEPLOYGYM_CACHE/fields/<name>-<hash>.npz``.

Every file stores its arrays plus ``__meta__`` (the config as JSON and a sha256 of the array
bytes). Files are written to a temporary file in the same folder and renamed into place, and
verified on load; a file that fails verification is reported and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from models.cache import cache_root, config_hash
from models.io import atomic_write


def cache_dir() -> Path:
    """``$DEPLOYGYM_CACHE/fields`` (default ``~/.cache/deploygym/fields``)."""
    return cache_root() / "fields"


def arrays_sha256(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(key.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


class CacheError(RuntimeError):
    """A cache file exists but is unreadable or does not match its checksum."""


def save_arrays(path: Path, arrays: dict[str, np.ndarray], config: dict[str, Any]) -> None:
    """Write ``arrays`` and their checksum atomically (temp file + ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"config": config, "sha256": arrays_sha256(arrays)})
    atomic_write(path, lambda f: np.savez(f, __meta__=np.array(meta), **arrays))


def load_arrays(path: Path, config: dict[str, Any]) -> dict[str, np.ndarray]:
    """Load and verify a cache file written by :func:`save_arrays` for ``config``."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["__meta__"]))
            arrays = {k: z[k] for k in z.files if k != "__meta__"}
    except Exception as e:  # zipfile/ValueError/KeyError/OSError: any unreadable file
        raise CacheError(f"cache file {path} is unreadable ({type(e).__name__}: {e})") from e
    if meta.get("config") != json.loads(json.dumps(config)):
        raise CacheError(f"cache file {path} was written for a different config")
    if meta.get("sha256") != arrays_sha256(arrays):
        raise CacheError(f"cache file {path} fails its sha256 check (corrupted)")
    return arrays


def cached(name: str, config: dict[str, Any], build: Callable[[], dict[str, np.ndarray]],
           *, refresh: bool = False) -> dict[str, np.ndarray]:
    """Return the arrays for ``config`` from the cache, building and storing them if needed."""
    path = cache_dir() / f"{name}-{config_hash(config)}.npz"
    if path.exists() and not refresh:
        try:
            return load_arrays(path, config)
        except CacheError as e:
            warnings.warn(f"{e}; rebuilding it", stacklevel=2)
    arrays = build()
    save_arrays(path, arrays, config)
    return arrays


def cache_path(name: str, config: dict[str, Any]) -> Path:
    return cache_dir() / f"{name}-{config_hash(config)}.npz"
