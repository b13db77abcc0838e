"""Trained networks on demand, cached on disk under a hash of their configuration.

>>> from models.zoo import get_trained
>>> teacher = get_trained("fashion-mnist", "cnn")        # the committed network (models.zoo)
>>> small = get_trained("digits", "cnn", width=4)         # trains once, then from the cache
>>> teacher.meta["test_acc"]                              # doctest: +SKIP
0.92...

Cache layout (``$DEPLOYGYM_CACHE``, default ``~/.cache/deploygym``)::

    models/<dataset>-<arch>-<hash>/model.pt      best-on-validation weights
                                  /meta.json     config, accuracy, sha256 of model.pt,
                                                 command, versions, training time
                                  /run/          the training run (TensorBoard, last.pt)

A file whose sha256 does not match its metadata (or that does not load) is reported with a
warning and retrained; a training that was killed resumes from its last checkpoint.
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import fields
from pathlib import Path
from typing import Any

from models.cache import (
    cache_root,
    config_hash,
    file_digest,
    state_dict_sha256,
    train_once,
    verified_meta,
)
from models.cli import parse_kv
from models.datasets import DatasetSplits, data_sha256, load_dataset
from models.io import atomic_torch_save, atomic_write_json, provenance
from models.nets import DeployNet, build_model
from models.readers import DELETE, load_weights, read_json, read_torch
from models.train import TrainConfig, build_for, train

# Recipes per (dataset, arch); unlisted pairs use TrainConfig's defaults.
RECIPES: dict[tuple[str, str], dict[str, Any]] = {
    ("fashion-mnist", "cnn"): {"width": 16, "epochs": 15, "lr": 0.05, "batch_size": 128},
    ("fashion-mnist", "resnet8"): {"epochs": 10, "lr": 0.05},
    ("fashion-mnist", "resnet20"): {"epochs": 10, "lr": 0.05},
    ("digits", "cnn"): {"width": 8, "epochs": 30, "lr": 0.05, "batch_size": 64, "hflip": False},
}


def resolve_config(dataset: str, arch: str, **overrides: Any) -> TrainConfig:
    """The full training config of ``(dataset, arch)``: recipe, then ``overrides``."""
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(overrides) - known
    if unknown:
        raise TypeError(f"unknown training options {sorted(unknown)}; valid: {sorted(known)}")
    cfg = {**RECIPES.get((dataset, arch), {}), **overrides, "dataset": dataset, "arch": arch}
    return TrainConfig(**cfg)


# Bump when a change to the training code makes cached networks stale.
CACHE_VERSION = 1


def model_dir(cfg: TrainConfig, root: Path | None = None) -> Path:
    key = config_hash({"v": CACHE_VERSION, **cfg.result_key()})
    return (root or cache_root()) / "models" / f"{cfg.dataset}-{cfg.arch}-{key}"


def _load_verified(cfg: TrainConfig, d: Path, device: str,
                   data: DatasetSplits | None = None) -> DeployNet | None:
    """The cached network, or ``None`` (with a warning) when it is absent or fails verification."""
    meta_path, weights = d / "meta.json", d / "model.pt"
    if not meta_path.exists() and not weights.exists():
        return None
    try:
        meta = verified_meta(d)
        if data is None:
            data = load_dataset(cfg.dataset, cfg.data_root, download=cfg.download)
        net = build_for(cfg, data)
        load_weights(net, read_torch(weights, DELETE, kind="state dict"), weights, DELETE)
    except Exception as e:  # noqa: BLE001 - any failure means "rebuild it"
        warnings.warn(f"cached model in {d} is unusable ({type(e).__name__}: {e}); retraining it",
                      RuntimeWarning, stacklevel=3)
        return None
    net.meta = meta
    return net.to(device).eval()


def get_trained(dataset: str, arch: str, *, device: str = "cpu", cache_dir: str | Path | None = None,
                progress: bool = True, use_pinned: bool = True, data: DatasetSplits | None = None,
                **cfg: Any) -> DeployNet:
    """A trained network for ``(dataset, arch)``, from the cache or trained now.

    Args:
        dataset, arch: names as in :func:`models.datasets.load_dataset` and
            :func:`models.nets.build_model`.
        device: where the returned network lives (training uses it too).
        cache_dir: overrides ``$DEPLOYGYM_CACHE``.
        use_pinned: return the committed network (:mod:`models.zoo`) when its recipe
            equals the requested one, without training or touching the cache.
        data: a user's :class:`models.datasets.DatasetSplits` to train on instead of the
            named dataset (``dataset`` is then only its name, for the recipe and the folder):
            the cache key holds its content hash (:func:`models.datasets.data_sha256`), so
            two datasets under one name never share a network.
        cfg: any :class:`models.train.TrainConfig` field (``width``, ``epochs``, ``bn``,
            ``seed``, ...); they enter the cache key unless they do not change the result.

    Returns:
        The network in eval mode, with ``net.meta`` holding its metadata (``test_acc``, ...).
    """
    if data is not None:
        cfg = {**cfg, "data_sha256": data_sha256(data)}
    tc = resolve_config(dataset, arch, progress=progress, device=device, **cfg)
    entry = entry_for_recipe(tc.result_key()) if use_pinned else None
    if entry is not None:
        return load_entry(entry, device)
    d = model_dir(tc, Path(cache_dir) if cache_dir else None)

    def fit(run: Path, resume: bool) -> dict[str, Any]:
        tc.run_dir, tc.resume = str(run), resume
        result = train(tc, data)
        return {"dataset": dataset, "arch": arch, "config": tc.result_key(),
                **result["metrics"], **provenance(tc.seed)}

    typical = (f"{tc.epochs} epochs, ~{max(1, round(tc.epochs * 15 / 60))} min on 2 CPU cores"
               if dataset == "fashion-mnist" else f"{tc.epochs} epochs")
    return train_once(d, lambda d: _load_verified(tc, d, device, data), fit,
                      what=f"the {dataset}/{arch} network", typical=typical)


# ------------------------------------------------ pinned (committed) networks
DIR = Path(__file__).resolve().parent / "pinned_weights"
INDEX = DIR / "pinned.json"
RESTORE_INDEX = "restore it with `git checkout -- models/pinned_weights/pinned.json`"


class PinnedFileError(ValueError):
    """A pinned weights file is missing or does not match its recorded checksum."""


def pinned_index() -> dict[str, Any]:
    """Every pinned entry by key (empty if the index is absent)."""
    return read_json(INDEX, RESTORE_INDEX, kind="pinned index") if INDEX.exists() else {}


def pin_key(dataset: str, arch: str, options: dict[str, Any] | None = None) -> str:
    """``fashion-mnist/cnn``, or with training options ``fashion-mnist/cnn?seed=1``."""
    opts = "&".join(f"{k}={options[k]}" for k in sorted(options or {}))
    return f"{dataset}/{arch}" + (f"?{opts}" if opts else "")


def pinned_entry(dataset: str, arch: str,
                 options: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The entry of ``(dataset, arch)`` trained with ``options``, or ``None``."""
    return pinned_index().get(pin_key(dataset, arch, options))


def entry_for_recipe(recipe: dict[str, Any]) -> dict[str, Any] | None:
    """The entry trained with exactly ``recipe`` (a ``TrainConfig.result_key()``), or ``None``."""
    return next((e for e in pinned_index().values() if e["recipe"] == recipe), None)


def load_entry(entry: dict[str, Any], device: str = "cpu") -> DeployNet:
    """The network of ``entry`` after checking its file's sha256 (``PinnedFileError`` if not)."""
    path = DIR / entry["file"]
    if not path.exists() or file_digest(path) != entry["file_sha256"]:
        raise PinnedFileError(
            f"the pinned network {path} is missing or its sha256 differs from {INDEX.name}; "
            f"restore it with `git checkout -- models/pinned_weights/{entry['file']}`")
    a = entry["architecture"]
    net = build_model(entry["recipe"]["arch"], num_classes=a["num_classes"],
                      in_channels=a["in_channels"], image_size=tuple(a["image_size"]),
                      width=a["width"], mean=a["mean"], std=a["std"])
    fix = f"restore it with `git checkout -- models/pinned_weights/{entry['file']}`"
    load_weights(net, read_torch(path, fix, kind="state dict"), path, fix)
    net.meta = {**entry["metrics"], "config": entry["recipe"], "sha256": entry["file_sha256"],
                "pinned": True}
    return net.to(device).eval()


def load_pinned(dataset: str, arch: str, device: str = "cpu",
                options: dict[str, Any] | None = None) -> DeployNet | None:
    """The pinned network of ``(dataset, arch)`` trained with ``options`` (``None`` if none)."""
    entry = pinned_entry(dataset, arch, options)
    return None if entry is None else load_entry(entry, device)


def pin(dataset: str, arch: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Save the model-cache network of ``(dataset, arch)`` trained with ``options`` (trained now
    if needed) as a pinned network, with its recipe, checksums and accuracy."""
    from models.datasets import load_dataset

    options = dict(options or {})
    net = get_trained(dataset, arch, use_pinned=False, **options).cpu().eval()
    info = load_dataset(dataset).info
    DIR.mkdir(parents=True, exist_ok=True)
    suffix = "".join(f"-{k}{options[k]}" for k in sorted(options))
    path = DIR / f"{dataset}-{arch}{suffix}.pt"
    atomic_torch_save(net.state_dict(), path)
    recipe = resolve_config(dataset, arch, progress=False, **options)
    entry = {"file": path.name, "file_sha256": file_digest(path),
             "weights_sha256": state_dict_sha256(net), "recipe": recipe.result_key(),
             "architecture": {"num_classes": info.num_classes, "in_channels": info.in_channels,
                              "image_size": list(info.image_size), "width": recipe.width,
                              "mean": list(info.mean), "std": list(info.std)},
             "metrics": {k: net.meta[k] for k in ("test_acc", "best_val_acc") if k in net.meta},
             **provenance(recipe.seed)}
    index = pinned_index()
    index[pin_key(dataset, arch, options)] = entry
    atomic_write_json(index, INDEX)
    return entry


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m models.zoo",
                                description="Pin the model-cache network of a recipe.")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--arch", default="cnn")
    p.add_argument("--kw", "--teacher-kw", nargs="*", default=[], metavar="KEY:VALUE",
                   dest="kw", help="training options other than the recipe's, e.g. seed:1")
    args = p.parse_args(argv)
    try:
        options = parse_kv(args.kw, "--kw")
    except ValueError as e:
        p.error(str(e))
    entry = pin(args.dataset, args.arch, options)
    print(f"pinned {pin_key(args.dataset, args.arch, options)}: test acc "
          f"{entry['metrics'].get('test_acc')}, weights sha256 {entry['weights_sha256']}")


if __name__ == "__main__":
    main()
