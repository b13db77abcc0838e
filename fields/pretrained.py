"""Layout-general Voronoi-CNNs trained on demand and cached under a hash of their config.

>>> from fields.pretrained import get_reconstructor
>>> pre = get_reconstructor("cylinder")        # trains once (a few minutes on 2 cores)
>>> pre.rec.predict(values, layout)            # doctest: +SKIP

Cache layout (``$DEPLOYGYM_CACHE/fields/models/<dataset>-<inputs>-<hash>/``): ``model.pt``
(best-on-validation weights, mean field, anomaly std, scaler), ``meta.json`` (config, test
metrics, sha256 of ``model.pt``, provenance) and ``run/`` (the training run: TensorBoard,
``last.pt``, so a killed training resumes). A file that fails its sha256 check or does not load
is reported and retrained. The networks see random layouts with every count in ``sensors``,
so they serve any layout with up to ``max(sensors)`` sensors (the SensorPlacement env).
"""

from __future__ import annotations

import dataclasses
import json
import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fields.field_data import FieldData, field_digest
from fields.pinned import pinned_model
from fields.train import FieldTrainConfig, Reconstructor, prepare, train
from fields.voronoi import MinMaxScaler, SensorGrid
from models.cache import cache_root as deploygym_cache
from models.cache import config_hash, train_once, verified_meta
from models.io import provenance
from models.readers import DELETE, load_weights, read_torch

# Per-dataset recipes of the networks behind the SensorPlacement environments (CPU budgets).
RECIPES: dict[str, dict[str, Any]] = {
    "cylinder": {"stride": 3, "coarsen": 4, "sensors": (1, 2, 3, 4, 6, 8, 12, 16)},
    "coads-sst": {"coarsen": 3, "sensors": (1, 2, 3, 5, 10, 20, 30)},
    "navy-uwnd": {"coarsen": 3, "sensors": (1, 2, 3, 5, 10, 20, 30)},
}
DEFAULTS: dict[str, Any] = {"inputs": "improved", "target": "anomaly", "width": 8, "depth": 7,
                            "kernel": 5, "batch_size": 8, "epochs": 50, "steps_per_epoch": 24,
                            "lr": 3e-3, "patience": 50, "train_layouts": 32, "eval_layouts": 2,
                            "max_eval": 16, "seed": 0}
# Bump when a change to the training code makes cached networks stale.
CACHE_VERSION = 1
# Config entries that do not change the trained network.
_NOT_IN_KEY = ("device", "progress", "resume", "run_dir", "threads")


@dataclass
class FieldBlocks:
    """The processed field and its time-ordered blocks, without a network (for estimators
    that need no training, such as gappy POD)."""

    cfg: FieldTrainConfig
    grid: SensorGrid
    data: FieldData
    train: FieldData
    val: FieldData
    test: FieldData
    rec: None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


def get_blocks(dataset: str = "cylinder", *, data: FieldData | None = None,
               progress: bool = True, **overrides: Any) -> FieldBlocks:
    """The blocks a :func:`get_reconstructor` network of the same options would be trained on."""
    cfg = resolve_config(dataset, progress=progress, **overrides)
    full, tr, va, te = prepare(cfg, data)
    return FieldBlocks(cfg, SensorGrid.from_field(full), full, tr, va, te)


@dataclass
class Pretrained:
    """A trained reconstructor with the data blocks it was trained and validated on."""

    rec: Reconstructor
    cfg: FieldTrainConfig
    data: FieldData  # after stride/coarsen
    train: FieldData
    val: FieldData
    test: FieldData
    meta: dict[str, Any]

    @property
    def grid(self) -> SensorGrid:
        return self.rec.grid


def resolve_config(dataset: str, **overrides: Any) -> FieldTrainConfig:
    """Recipe of ``dataset``, then the defaults, then ``overrides``."""
    known = {f.name for f in dataclasses.fields(FieldTrainConfig)}
    unknown = set(overrides) - known
    if unknown:
        raise TypeError(f"unknown Voronoi-CNN options {sorted(unknown)}; valid: {sorted(known)}")
    kw = {**DEFAULTS, **RECIPES.get(dataset, {}), **overrides, "dataset": dataset}
    for key in ("sensors", "eval_sensors", "split"):
        if key in kw:
            kw[key] = tuple(kw[key])
    return FieldTrainConfig(**kw)


def model_dir(cfg: FieldTrainConfig, root: Path | None = None,
              data_digest: str | None = None) -> Path:
    """The cache folder of the network of ``cfg``: keyed by the config and, for a field that is
    not one of the suite's named fields, by ``data_digest``
    (:func:`fields.field_data.field_digest` of the field), so two fields under one name never
    share a network."""
    key = {k: v for k, v in json.loads(json.dumps(asdict(cfg))).items() if k not in _NOT_IN_KEY}
    if data_digest is not None:
        key["data"] = data_digest
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", cfg.dataset).strip("_")[:48] or "field"
    return (root or deploygym_cache() / "fields" / "models") / (
        f"{safe}-{cfg.inputs}-{config_hash({'v': CACHE_VERSION, **key})}")


def _read(cfg: FieldTrainConfig, d: Path, data: FieldData | None,
          fix: str = DELETE) -> Pretrained:
    """The verified Voronoi-CNN in ``d``; any problem raises, naming the file and ``fix``."""
    meta = verified_meta(d, fix=fix)
    ck = read_torch(d / "model.pt", fix, keys=("model", "scaler", "mean", "std"),
                    kind="Voronoi-CNN")
    full, tr, va, te = prepare(cfg, data)
    grid = SensorGrid.from_field(full)
    rec = Reconstructor(cfg, grid, MinMaxScaler(*ck["scaler"]), full.spherical,
                        ck["mean"].numpy(), ck["std"])
    load_weights(rec.net, ck["model"], d / "model.pt", fix)
    rec.net.eval()
    for p in rec.net.parameters():
        p.requires_grad_(False)
    return Pretrained(rec, cfg, full, tr, va, te, meta)


def _load(cfg: FieldTrainConfig, d: Path, data: FieldData | None) -> Pretrained | None:
    meta_path, weights = d / "meta.json", d / "model.pt"
    if not meta_path.exists() and not weights.exists():
        return None
    try:
        return _read(cfg, d, data)
    except Exception as e:  # noqa: BLE001 - any failure means "rebuild it"
        warnings.warn(f"cached Voronoi-CNN in {d} is unusable ({type(e).__name__}: {e}); "
                      f"retraining it", RuntimeWarning, stacklevel=3)
        return None


def get_reconstructor(dataset: str = "cylinder", *, device: str = "cpu",
                      cache_root: str | Path | None = None, progress: bool = True,
                      data: FieldData | None = None, use_pinned: bool = True,
                      **overrides: Any) -> Pretrained:
    """A trained layout-general Voronoi-CNN for ``dataset`` (from the cache or trained now).

    Args:
        dataset: a name of :func:`fields.load.load_field`, or the name of ``data``.
        device: where the network lives (training uses it too).
        cache_root: folder instead of ``$DEPLOYGYM_CACHE/fields/models``.
        data: the loaded field (else loaded by name; must be the unprocessed field). Its
            content hash enters the cache key, as it does for a file named in ``dataset``
            (``oisst:PATH``); the suite's named fields are keyed by name.
        use_pinned: load the committed network (:mod:`fields.pinned`) when one was trained
            with exactly this config (only for fields loaded by name).
        overrides: any :class:`fields.train.FieldTrainConfig` field; they enter the cache key.
    """
    from fields.load import FIELDS, load_field

    cfg = resolve_config(dataset, device=device, progress=progress, **overrides)
    if data is None and dataset not in FIELDS:  # a user's file: keyed by what it holds now
        data = load_field(dataset, progress=progress)
    d = model_dir(cfg, Path(cache_root) if cache_root else None,
                  field_digest(data) if data is not None else None)
    pinned = pinned_model(d.name) if use_pinned and data is None else None
    if pinned is not None:
        return _read(cfg, pinned, None, f"the pinned Voronoi-CNN is damaged: restore it with "
                                        f"`git checkout -- fields/pinned_models/{pinned.name}`")

    def fit(run: Path, resume: bool) -> dict[str, Any]:
        cfg.run_dir, cfg.resume = str(run), resume
        result = train(cfg, data)
        metrics = {k: v for k, v in result["metrics"].items() if k != "history"}
        return {"config": result["config"], **metrics, **provenance(cfg.seed)}

    return train_once(d, lambda d: _load(cfg, d, data), fit,
                      what=f"the {dataset} Voronoi-CNN",
                      typical=f"{cfg.epochs} epochs × {cfg.steps_per_epoch} steps, a few minutes "
                              f"on 2 CPU cores")
