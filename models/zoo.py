"""Trained networks on demand, cached on disk under a hash of their configuration.

>>> from models.zoo import get_trained
>>> teacher = get_trained("fashion-mnist", "cnn")        # the committed network (models.pinned)
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

import warnings
from dataclasses import fields
from pathlib import Path
from typing import Any

from models.cache import cache_root, config_hash, train_once, verified_meta
from models.datasets import load_dataset
from models.io import provenance
from models.nets import DeployNet
from models.pinned import entry_for_recipe, load_entry
from models.readers import DELETE, load_weights, read_torch
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


def _load_verified(cfg: TrainConfig, d: Path, device: str) -> DeployNet | None:
    """The cached network, or ``None`` (with a warning) when it is absent or fails verification."""
    meta_path, weights = d / "meta.json", d / "model.pt"
    if not meta_path.exists() and not weights.exists():
        return None
    try:
        meta = verified_meta(d)
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
                progress: bool = True, use_pinned: bool = True, **cfg: Any) -> DeployNet:
    """A trained network for ``(dataset, arch)``, from the cache or trained now.

    Args:
        dataset, arch: names as in :func:`models.datasets.load_dataset` and
            :func:`models.nets.build_model`.
        device: where the returned network lives (training uses it too).
        cache_dir: overrides ``$DEPLOYGYM_CACHE``.
        use_pinned: return the committed network (:mod:`models.pinned`) when its recipe
            equals the requested one, without training or touching the cache.
        cfg: any :class:`models.train.TrainConfig` field (``width``, ``epochs``, ``bn``,
            ``seed``, ...); they enter the cache key unless they do not change the result.

    Returns:
        The network in eval mode, with ``net.meta`` holding its metadata (``test_acc``, ...).
    """
    tc = resolve_config(dataset, arch, progress=progress, device=device, **cfg)
    entry = entry_for_recipe(tc.result_key()) if use_pinned else None
    if entry is not None:
        return load_entry(entry, device)
    d = model_dir(tc, Path(cache_dir) if cache_dir else None)

    def fit(run: Path, resume: bool) -> dict[str, Any]:
        tc.run_dir, tc.resume = str(run), resume
        result = train(tc)
        return {"dataset": dataset, "arch": arch, "config": tc.result_key(),
                **result["metrics"], **provenance(tc.seed)}

    typical = (f"{tc.epochs} epochs, ~{max(1, round(tc.epochs * 15 / 60))} min on 2 CPU cores"
               if dataset == "fashion-mnist" else f"{tc.epochs} epochs")
    return train_once(d, lambda d: _load_verified(tc, d, device), fit,
                      what=f"the {dataset}/{arch} network", typical=typical)
