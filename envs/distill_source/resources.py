"""The expensive parts of a DistillSource environment, built once per process and shared.

* the teacher (:func:`models.zoo.get_trained`, cached on disk) and the dataset;
* one **pool** per source: ``pool_size`` images drawn once (OpenGL shaders rendered once, not
  per phase) with their teacher logits, cached on disk by :mod:`distill.logits`;
* the **probe** that the reward is measured on: held-out target images (validation split), or,
  data-free, a held-out mix of every source (drawn with another seed than the pools);
* the **evaluation** slice of the target test split (reported in ``info``, never observed);
* optional **boundary pools**: adversarial samples around the teacher's decision boundaries
  (:func:`distill.attack.boundary_attack`) from a class-stratified subset of each pool, cached.

All environments built with the same options share one set of resources.
"""

from __future__ import annotations

import json
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from distill.attack import boundary_attack
from distill.augment import Policy, get_policy
from distill.boundary import stratified_order
from distill.guided import relative_entropy, teacher_logits
from distill.logits import cached_teacher_logits, pinned_dir, teacher_fingerprint
from distill.sources import OpenGLUnavailableError
from envs.distill_source.config import AUGMENT_LEVELS, DistillSourceConfig
from envs.distill_source.teacher import check_classifier, check_teacher, load_pinned
from models.cache import (
    announce_build,
    cache_root,
    config_hash,
    entry_lock,
    file_digest,
    read_only_miss,
    verified_meta,
)
from models.datasets import DatasetSplits, load_dataset
from models.io import atomic_torch_save, atomic_write_json, provenance
from models.readers import DELETE, read_torch

# Sources whose constructor takes the teacher's dataset (its images or its mean/std).
_NEEDS_DATASET = ("target", "noise")
# 2: its pools changed with the opengl source's flat-render redraw; 3: class-stratified subset
BOUNDARY_CACHE_VERSION = 3


class SourceUnavailableError(RuntimeError):
    """A source named in ``sources=`` cannot produce images on this machine."""


@dataclass
class Pool:
    """Images ``[N, C, H, W]`` and teacher logits ``[N, K]`` of one source, on the env's device."""

    name: str
    images: torch.Tensor
    logits: torch.Tensor
    relative_entropy: float
    boundary: Pool | None = None

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class Resources:
    teacher: nn.Module
    data: DatasetSplits
    pools: list[Pool]
    probe_images: torch.Tensor
    probe_logits: torch.Tensor
    probe_labels: torch.Tensor | None     # only for the target probe
    eval_images: torch.Tensor
    eval_logits: torch.Tensor
    eval_labels: torch.Tensor
    policies: dict[str, Policy] = field(default_factory=dict)
    teacher_sha256: str = ""  # the weights' sha256 (``models.cache.state_dict_sha256``)

    @property
    def num_classes(self) -> int:
        return int(self.data.info.num_classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (int(self.data.info.in_channels), *self.data.info.image_size)


def source_kwargs(name: str, dataset: str, data: DatasetSplits | None = None
                  ) -> dict[str, Any]:
    """What ``target`` and ``noise`` learn of the teacher's data: the dataset's name, or, for
    data the user passed (``data``), its training images and its mean/std."""
    if name not in _NEEDS_DATASET:
        return {}
    if data is None:
        return {"dataset": dataset}
    if name == "target":
        return {"images": data.train.images}
    return {"mean": list(data.info.mean), "std": list(data.info.std)}


def _transfer_set(cfg: DistillSourceConfig, teacher: nn.Module, key: str, name: str, n: int,
                  seed: int, shape: tuple[int, int, int], user_data: DatasetSplits | None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        return cached_teacher_logits(teacher, key, name, n, seed, image_size=shape[1:],
                                     channels=shape[0], balanced=cfg.balanced,
                                     source_kwargs=source_kwargs(name, cfg.dataset, user_data),
                                     cache_dir=cfg.cache_dir, progress=cfg.progress)
    except OpenGLUnavailableError as e:
        raise SourceUnavailableError(f"source {name!r} cannot render: {e}. Or drop it from "
                                     f"sources=") from e
    except FileNotFoundError as e:
        raise SourceUnavailableError(f"source {name!r} has no data on this machine: {e}. Or "
                                     f"drop it from sources=") from e


def _read_boundary(d: Path, conf: dict, pinned_fix: str | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The verified boundary pool in ``d`` (``None`` if absent; a warning if unusable).
    With ``pinned_fix`` (a committed pool) any problem raises, naming the file and that fix."""
    try:
        verified_meta(d, "data.pt", conf, pinned_fix or DELETE)
        data = read_torch(d / "data.pt", pinned_fix or DELETE, keys=("images", "logits"),
                          kind="boundary pool")
        return data["images"], data["logits"]
    except FileNotFoundError:
        if pinned_fix:
            raise
        return None
    except Exception as e:  # noqa: BLE001 - any failure means "rebuild it"
        if pinned_fix:
            raise
        warnings.warn(f"boundary pool in {d} is unusable ({e}); rebuilding it",
                      RuntimeWarning, stacklevel=2)
        return None


def _boundary_pool(cfg: DistillSourceConfig, teacher: nn.Module, key: str, pool: Pool) -> Pool:
    """Boundary samples of ``attack_images`` images of ``pool`` (a shuffled, class-stratified
    subset by the teacher's classes), committed for the default envs or cached on disk."""
    conf = {"v": BOUNDARY_CACHE_VERSION, "teacher": key, "source": pool.name,
            "pool_size": cfg.pool_size, "pool_seed": cfg.pool_seed, "n": cfg.attack_images,
            "balanced": cfg.balanced, "shape": list(pool.images.shape[1:])}
    name = f"boundary-{pool.name}-{config_hash(conf)}"
    pinned = pinned_dir(name)
    found = _read_boundary(pinned, conf, f"the pinned boundary pool is damaged: restore it "
                                         f"with `git checkout -- distill/pinned_transfer/{name}`"
                           ) if pinned is not None else None
    d = Path(cfg.cache_dir or cache_root()) / "distill_source" / name
    with nullcontext(True) if found is not None else entry_lock(d) as writable:
        found = found or _read_boundary(d, conf)
        if found is None and not writable:
            raise read_only_miss(d, "boundary pool")
        if found is None:
            announce_build(f"attacking {cfg.attack_images} {pool.name} images for boundary "
                           f"samples", d, "a minute or two per source on 2 CPU cores")
            dev = next(teacher.parameters()).device
            gen = torch.Generator().manual_seed(cfg.pool_seed)
            pick = stratified_order(pool.logits.argmax(1).cpu(), cfg.pool_seed)[: cfg.attack_images]
            x = pool.images[pick.to(pool.images.device)].to(dev)
            b = boundary_attack(teacher, x, gen)
            images = b.images.cpu() if len(b.images) else x.cpu()
            logits = teacher_logits(teacher, images)
            atomic_torch_save({"images": images, "logits": logits}, d / "data.pt")
            atomic_write_json({"config": conf, "sha256": file_digest(d / "data.pt"),
                               "success_rate": float(b.success.float().mean()),
                               "iterations": b.iterations, **provenance(cfg.pool_seed)},
                              d / "meta.json")
            found = images, logits
    images, logits = found
    dev = pool.images.device
    return Pool(f"{pool.name}/boundary", images.to(dev), logits.float().to(dev),
                relative_entropy(logits.argmax(1), logits.shape[1]))


def _teacher(cfg: DistillSourceConfig, teacher: nn.Module | None,
             data: DatasetSplits | None) -> tuple[nn.Module, str]:
    """The teacher on the env's device, frozen, and its weights' sha256. The default teacher
    is loaded (pinned, else trained) and checked against ``teacher_sha256``; a user's teacher
    is checked only against an explicit sha256."""
    expected = cfg.teacher_sha256
    if teacher is None:
        if data is not None and data.info.name != cfg.dataset:
            raise ValueError(f"data= ({data.info.name!r}) without teacher=: the default teacher "
                             f"is the {cfg.dataset}/{cfg.teacher_arch} network; pass teacher= "
                             f"your network trained on this data")
        teacher = load_pinned(cfg.dataset, cfg.teacher_arch, cfg.device, cfg.teacher_cfg)
    elif expected == "pinned":
        expected = None  # a user's teacher: its sha256 is recorded, not compared
    if teacher is None:
        from models.zoo import get_trained

        teacher = get_trained(cfg.dataset, cfg.teacher_arch, device=cfg.device,
                              progress=cfg.progress, **cfg.teacher_cfg)
    if not isinstance(teacher, nn.Module):
        raise TypeError(f"teacher must be a torch.nn.Module, got {type(teacher).__name__}")
    sha = check_teacher(teacher, cfg.dataset, cfg.teacher_arch, expected, cfg.teacher_cfg)
    teacher = teacher.to(torch.device(cfg.device)).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher, sha


def build_resources(cfg: DistillSourceConfig, teacher: nn.Module | None = None,
                    data: DatasetSplits | None = None) -> Resources:
    """Load (or train) the teacher and build every pool, probe and evaluation set."""
    dev = torch.device(cfg.device)
    user_data = data
    teacher, sha = _teacher(cfg, teacher, data)
    data = data if data is not None else load_dataset(cfg.dataset)
    shape = (int(data.info.in_channels), *map(int, data.info.image_size))
    check_classifier(teacher, "teacher", shape, int(data.info.num_classes), dev)
    key = teacher_fingerprint(teacher)
    pools = []
    for name in tqdm(cfg.sources, desc="source pools", disable=not cfg.progress, leave=False):
        x, logit = _transfer_set(cfg, teacher, key, name, cfg.pool_size, cfg.pool_seed, shape,
                                 user_data)
        pools.append(Pool(name, x.to(dev), logit.to(dev),
                          relative_entropy(logit.argmax(1), logit.shape[1])))
    if cfg.attack or cfg.control_attack:
        for p in pools:
            p.boundary = _boundary_pool(cfg, teacher, key, p)
    labels = None
    if cfg.probe == "target":
        n = min(cfg.probe_size, len(data.val))
        probe_x = data.val.images[:n].to(dev)
        probe_l = teacher_logits(teacher, probe_x)
        labels = data.val.labels[:n].to(dev)
    else:  # held-out mix of the sources: same sources, another seed than the pools
        per = -(-cfg.probe_size // cfg.n_sources)
        parts = [_transfer_set(cfg, teacher, key, name, per, cfg.pool_seed + 1, shape,
                               user_data) for name in cfg.sources]
        probe_x = torch.cat([p[0] for p in parts])[: cfg.probe_size].to(dev)
        probe_l = torch.cat([p[1] for p in parts])[: cfg.probe_size]
    n_eval = min(cfg.eval_size, len(data.test))
    eval_x = data.test.images[:n_eval].to(dev)
    policies = {lvl: get_policy(lvl, shape[1:]) for lvl in AUGMENT_LEVELS}
    return Resources(teacher, data, pools, probe_x, probe_l.to(dev), labels, eval_x,
                     teacher_logits(teacher, eval_x).to(dev), data.test.labels[:n_eval].to(dev),
                     policies, sha)


_SHARED: dict[tuple, Resources] = {}


def get_resources(cfg: DistillSourceConfig, teacher: nn.Module | None = None,
                  data: DatasetSplits | None = None) -> Resources:
    """Resources for ``cfg``, shared by every env of this process built with the same options."""
    k = (cfg.dataset, cfg.teacher_arch, json.dumps(cfg.teacher_cfg, sort_keys=True, default=str),
         cfg.sources, cfg.probe, cfg.pool_size, cfg.probe_size, cfg.eval_size, cfg.pool_seed,
         cfg.balanced, cfg.attack or cfg.control_attack, cfg.attack_images, cfg.device,
         cfg.cache_dir, cfg.teacher_sha256, id(teacher), id(data))
    if k not in _SHARED:
        _SHARED[k] = build_resources(cfg, teacher, data)
    return _SHARED[k]
