"""Fixed transfer sets with their teacher logits, built once and cached on disk.

>>> from models.zoo import get_trained
>>> teacher = get_trained("fashion-mnist", "cnn")
>>> images, logits = cached_teacher_logits(teacher, teacher_fingerprint(teacher), "opengl",
...                                        n=10_000, seed=0, balanced=True)   # doctest: +SKIP

Cache layout (``$DEPLOYGYM_CACHE``, default ``~/.cache/deploygym``)::

    transfer/<source>-<hash>/data.pt     {"images": uint8 or float [N, C, H, W], "logits": [N, K]}
                            /meta.json   the config (hashed into the folder name), sha256 of
                                         data.pt, relative entropy, command, versions

The hash covers the teacher's fingerprint, the source name and options, ``n``, ``seed``, the
image shape and whether the set is class-balanced. On load the sha256 and the shapes are
checked; a file that fails is reported with a warning and rebuilt.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from distill.guided import balanced_filter, class_histogram, relative_entropy, teacher_logits
from distill.pool import boundary_pool
from distill.sources import get_source, source_fingerprint
from distill.sources.base import batch_seed
from models.cache import (
    announce_build,
    cache_root,
    config_hash,
    entry_lock,
    file_digest,
    read_only_miss,
    state_dict_sha256,
    verified_meta,
)
from models.io import atomic_torch_save, atomic_write_json, provenance
from models.readers import DELETE, read_torch

# Committed cache entries of the default environments' transfer sets (same folder names).
PINNED_DIR = Path(__file__).resolve().parent / "pinned_transfer"
# Bump when a change to sources/filtering makes cached transfer sets stale.
# 2: the opengl source redraws flat renders.
CACHE_VERSION = 2


@dataclass
class TransferSet:
    """A fixed transfer set: images ``[N, C, H, W]`` float32 in ``[0, 1]`` and teacher logits
    ``[N, K]`` (both on CPU). Unpacks as ``images, logits = ...`` (and indexes like that pair).

    ``balance`` (balanced sets) is :meth:`distill.guided.BalancedSet.balance` of the stored
    images: the teacher's top-class histogram, its relative entropy, the fallback's share.
    """

    images: torch.Tensor
    logits: torch.Tensor
    balance: dict[str, Any] | None = None

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter((self.images, self.logits))

    def __getitem__(self, i: int) -> torch.Tensor:
        return (self.images, self.logits)[i]


def pinned_dir(name: str) -> Path | None:
    """The committed copy of the cache entry ``name`` (transfer sets the default environments
    use, so their first use builds nothing), or ``None``."""
    d = PINNED_DIR / name
    return d if (d / "meta.json").exists() else None


def teacher_fingerprint(teacher: nn.Module) -> str:
    """A short key identifying a teacher's weights: the sha256 recorded by the model cache
    (``teacher.meta['sha256']``) when present, otherwise a hash of its state dict."""
    meta = getattr(teacher, "meta", None)
    if isinstance(meta, dict) and meta.get("sha256"):
        return str(meta["sha256"])[:16]
    return state_dict_sha256(teacher)[:16]


def _key_value(v: Any) -> Any:
    """A source option as it enters a cache key: tensors and arrays by a sha256 of their
    contents (a user's images), everything else as given."""
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().contiguous().numpy()
    if isinstance(v, np.ndarray):
        h = hashlib.sha256(f"{v.dtype}{v.shape}".encode())
        h.update(np.ascontiguousarray(v).tobytes())
        return f"sha256:{h.hexdigest()[:16]}"
    return v


def transfer_config(teacher_key: str, source_name: str, n: int, seed: int,
                    image_size: tuple[int, int], channels: int, balanced: bool,
                    source_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """The dictionary hashed into a cached transfer set's folder name (a registered source
    adds the fingerprint of its code, :func:`distill.sources.source_fingerprint`)."""
    config = {"v": CACHE_VERSION, "teacher": teacher_key, "source": source_name, "n": int(n),
              "seed": int(seed), "image_size": list(image_size), "channels": int(channels),
              "balanced": bool(balanced),
              "source_kwargs": {k: _key_value(v) for k, v in sorted((source_kwargs or {}).items())}}
    code = source_fingerprint(source_name)
    if code is not None:
        config["source_code"] = code
    return config


def transfer_dir(config: dict[str, Any], cache_dir: str | Path | None = None) -> Path:
    safe = config["source"].replace("+", "_").replace(":", "-").replace("/", "-")
    return (Path(cache_dir) if cache_dir else cache_root()) / "transfer" / f"{safe}-{config_hash(config)}"


def _teacher_shape(teacher: nn.Module) -> tuple[tuple[int, int], int]:
    shape = getattr(teacher, "input_shape", None)
    if shape is None:
        raise ValueError("the teacher has no input_shape; pass image_size= and channels=")
    return (int(shape[1]), int(shape[2])), int(shape[0])


def _read(d: Path, config: dict[str, Any], fix: str = DELETE) -> TransferSet:
    """The verified transfer set in ``d``; any problem raises, naming the file and ``fix``."""
    meta = verified_meta(d, "data.pt", config, fix)
    balance = meta.get("balance")
    n = balance["n"] if balance else config["n"]
    data = read_torch(d / "data.pt", fix, keys=("images", "logits"), kind="transfer set")
    images, logits = data["images"], data["logits"]
    if images.dtype == torch.uint8:
        images = images.float().div_(255)
    h, w = config["image_size"]
    if tuple(images.shape) != (n, config["channels"], h, w) or len(logits) != len(images):
        raise ValueError(f"{d / 'data.pt'}: unexpected shapes {tuple(images.shape)} / "
                         f"{tuple(logits.shape)}; {fix}")
    return TransferSet(images, logits.float(), balance)


def _load(d: Path, config: dict[str, Any]) -> TransferSet | None:
    if not (d / "meta.json").exists() and not (d / "data.pt").exists():
        return None
    try:
        return _read(d, config)
    except Exception as e:  # noqa: BLE001 - any failure means "rebuild it"
        warnings.warn(f"cached transfer set in {d} is unusable ({type(e).__name__}: {e}); "
                      f"rebuilding it", RuntimeWarning, stacklevel=3)
        return None


def build_transfer_set(teacher: nn.Module, source_name: str, n: int, seed: int, *,
                       image_size: tuple[int, int], channels: int, balanced: bool = False,
                       num_classes: int | None = None, batch_size: int = 512,
                       source_kwargs: dict[str, Any] | None = None,
                       progress: bool = True, max_draw_factor: int = 20,
                       fallback: str = "fill") -> TransferSet:
    """Draw ``n`` images of ``source_name`` (class-balanced through the teacher if
    ``balanced``) and label them with the teacher. Not cached; see :func:`cached_teacher_logits`."""
    src = get_source(source_name, image_size=image_size, channels=channels, **(source_kwargs or {}))
    if balanced:
        k = num_classes or int(teacher(torch.zeros(1, channels, *image_size,
                                                   device=next(teacher.parameters()).device)).shape[1])
        bs = balanced_filter(teacher, src, n, k, seed=seed, batch_size=batch_size,
                             max_draw=max_draw_factor * n, fallback=fallback,
                             progress=progress, desc=f"transfer set {source_name}")
        return TransferSet(bs.images, bs.logits, bs.balance())
    xs, ls = [], []
    for k in tqdm(range(-(-n // batch_size)), desc=f"transfer set {source_name}", unit="batch",
                  disable=not progress, leave=False):
        x = src.sample(min(batch_size, n - k * batch_size), batch_seed(seed, k))
        xs.append(x)
        ls.append(teacher_logits(teacher, x, batch_size))
    return TransferSet(torch.cat(xs), torch.cat(ls))


def cached_teacher_logits(teacher: nn.Module, teacher_key: str, source_name: str, n: int,
                          seed: int, *, image_size: tuple[int, int] | None = None,
                          channels: int | None = None, balanced: bool = False,
                          num_classes: int | None = None, batch_size: int = 512,
                          source_kwargs: dict[str, Any] | None = None,
                          cache_dir: str | Path | None = None, progress: bool = True,
                          store_uint8: bool = True, max_draw_factor: int = 20,
                          fallback: str = "fill") -> TransferSet:
    """A fixed transfer set and its teacher logits, from the disk cache or built now.

    Args:
        teacher: the teacher network (its device is used).
        teacher_key: identifies the teacher's weights in the cache key; use
            :func:`teacher_fingerprint`.
        source_name: any name or mixture accepted by :func:`distill.sources.get_source`.
        n, seed: number of images and the seed they are drawn from.
        image_size, channels: default the teacher's ``input_shape``.
        balanced: keep ``n`` images with uniform teacher-predicted classes (P2's filter).
        source_kwargs: constructor options of the source (e.g. ``dataset="fashion-mnist"``
            for ``target`` and ``noise``); part of the key.
        max_draw_factor: with ``balanced``, draw at most this many times ``n`` images before
            treating short classes by ``fallback`` (:func:`distill.guided.balanced_filter`:
            ``fill`` them with the images the teacher rates most likely for them, or
            ``shrink`` every class to the shortest one). The result's ``balance`` says which.
        store_uint8: store images as 8-bit (4× smaller; images are quantized to 1/255 before
            the teacher labels them, so logits and images always agree).

    Returns:
        ``TransferSet(images, logits)`` on CPU.
    """
    if n < 1:
        raise ValueError(f"n must be ≥ 1, got {n}")
    if image_size is None or channels is None:
        t_size, t_ch = _teacher_shape(teacher)
        image_size, channels = image_size or t_size, channels or t_ch
    image_size = (int(image_size[0]), int(image_size[1])) if not isinstance(image_size, int) \
        else (image_size, image_size)
    config = transfer_config(teacher_key, source_name, n, seed, image_size, channels, balanced,
                             source_kwargs)
    config["uint8"] = bool(store_uint8)
    if balanced:
        config["max_draw_factor"] = int(max_draw_factor)
        if fallback != "fill":  # the older key stays valid for the default
            config["fallback"] = fallback
    d = transfer_dir(config, cache_dir)
    pinned = pinned_dir(d.name)
    if pinned is not None:
        return _read(pinned, config, f"the pinned transfer set is damaged: restore it with "
                                     f"`git checkout -- distill/pinned_transfer/{pinned.name}`")
    with entry_lock(d) as writable:
        cached = _load(d, config)
        if cached is not None:
            return cached
        if not writable:
            raise read_only_miss(d, "transfer set")
        announce_build(f"building transfer set {source_name!r} ({n} images"
                       + (", class-balanced through the teacher" if balanced else "") + ")", d,
                       "under a minute to a few minutes per source on 2 CPU cores")
        ts = build_transfer_set(teacher, source_name, n, seed, image_size=image_size,
                                channels=channels, balanced=balanced, num_classes=num_classes,
                                batch_size=batch_size, source_kwargs=source_kwargs,
                                progress=progress, max_draw_factor=max_draw_factor,
                                fallback=fallback)
        return _store(d, config, ts, teacher, batch_size, store_uint8, seed)


def _store(d: Path, config: dict[str, Any], ts: TransferSet, teacher: nn.Module,
           batch_size: int, store_uint8: bool, seed: int) -> TransferSet:
    """Write a built transfer set into its cache entry ``d`` (8-bit images relabelled by the
    teacher when ``store_uint8``) with its ``meta.json``; returns the set as stored."""
    images, logits = ts
    if store_uint8:
        q = images.mul(255).round_().clamp_(0, 255).to(torch.uint8)
        images = q.float().div_(255)
        logits = teacher_logits(teacher, images, batch_size)
        stored = q
    else:
        stored = images
    atomic_torch_save({"images": stored, "logits": logits}, d / "data.pt")
    k = logits.shape[1]
    balance = None
    if ts.balance is not None:  # of the stored (8-bit) images' logits
        top = logits.argmax(1)
        balance = {**ts.balance, "teacher_class_counts": class_histogram(top, k).tolist(),
                   "relative_entropy": relative_entropy(top, k)}
    meta = {"config": config, "sha256": file_digest(d / "data.pt"),
            "relative_entropy": relative_entropy(logits.argmax(1), k),
            "class_counts": torch.bincount(logits.argmax(1), minlength=k).tolist(),
            "balance": balance, **provenance(seed)}
    atomic_write_json(meta, d / "meta.json")
    return TransferSet(images, logits.float(), balance)


def cached_boundary_pool(teacher: nn.Module, teacher_key: str, images: torch.Tensor, seed: int,
                         cache_dir: str | Path | None = None,
                         progress: Callable[[int], None] | None = None,
                         **attack_kwargs: Any) -> TransferSet:
    """:func:`distill.pool.boundary_pool` of ``images``, cached on disk.

    The key covers the teacher, a sha256 of ``images``, ``seed`` and the attack options, so a
    run that is restarted (or split over processes) attacks each pool once. ``progress`` is
    called with the number of images attacked, only when the samples are built.
    """
    digest = hashlib.sha256(images.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]
    config = {"v": CACHE_VERSION, "kind": "boundary", "teacher": teacher_key, "images": digest,
              "n": len(images), "seed": int(seed), "attack": dict(sorted(attack_kwargs.items()))}
    d = (Path(cache_dir) if cache_dir else cache_root()) / "boundary" / config_hash(config)
    with entry_lock(d) as writable:
        try:
            verified_meta(d, "data.pt", config)
            data = torch.load(d / "data.pt", map_location="cpu", weights_only=True)
            return TransferSet(data["images"], data["logits"].float())
        except Exception as e:  # noqa: BLE001 - missing or unusable: build it
            if (d / "meta.json").exists():
                warnings.warn(f"cached boundary samples in {d} are unusable ({e}); rebuilding",
                              RuntimeWarning, stacklevel=2)
        if not writable:
            raise read_only_miss(d, "boundary samples")
        adv, logits = boundary_pool(teacher, images, seed=seed, progress=progress,
                                    **attack_kwargs)
        atomic_torch_save({"images": adv, "logits": logits}, d / "data.pt")
        atomic_write_json({"config": config, "sha256": file_digest(d / "data.pt"),
                           **provenance(seed)}, d / "meta.json")
        return TransferSet(adv, logits)


__all__ = ["TransferSet", "build_transfer_set", "cached_boundary_pool", "cached_teacher_logits",
           "teacher_fingerprint", "transfer_config", "transfer_dir"]
