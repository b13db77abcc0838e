"""The pools of ``benchmarks/kd_sources.py``: per source a class-balanced pool drawn once
(seed 0) through the teacher with its balance measured, DeepInversion's inverted images, and
their boundary-share variants; all cached on disk, built on demand."""

from __future__ import annotations

import json
import time
from typing import Any

import torch

from distill.boundary import with_boundary_share
from distill.datafree import DeepInversionConfig, deep_inversion
from distill.guided import relative_entropy
from distill.logits import cached_boundary_pool, cached_teacher_logits, teacher_fingerprint
from distill.pool import Pool
from models.cache import cache_root, config_hash, entry_lock
from models.io import atomic_torch_save, atomic_write_json


class Pools:
    """Base pools (balanced, measured) and their boundary-share variants, built on demand."""

    def __init__(self, sc: dict[str, Any], teacher, data, progress: bool) -> None:
        self.sc, self.teacher, self.data, self.progress = sc, teacher, data, progress
        self.key = teacher_fingerprint(teacher)
        self.base: dict[str, tuple[torch.Tensor, torch.Tensor, dict[str, Any]]] = {}
        self.pools: dict[tuple[str, float], Pool] = {}
        self.reports: dict[str, dict[str, Any]] = {}

    def get(self, source: str, share: float) -> Pool:
        """The pool of ``source`` with ``share`` boundary samples (built once per run)."""
        if (source, share) not in self.pools:
            self.pools[(source, share)] = self._build(source, share)
        return self.pools[(source, share)]

    def balance(self, source: str) -> dict[str, Any]:
        """The measured balance of ``source``'s base pool (also kept in ``reports``)."""
        return self._base(source)[2]

    def _build(self, source: str, share: float) -> Pool:
        images, logits, _ = self._base(source)
        if share == 0:
            return Pool(images, logits)
        x, lg, rep = with_boundary_share(
            self.teacher, images, logits, share, seed=0,
            attack=lambda im: cached_boundary_pool(self.teacher, self.key, im, seed=0,
                                                   max_iter=self.sc["attack_iter"]))
        self.reports.setdefault(source, {})[f"boundary_{share}"] = rep
        return Pool(x, lg)

    def _base(self, source: str):
        if source not in self.base:
            i, t0 = self.data.info, time.perf_counter()
            if source == "deepinversion":
                images, logits, balance = self._deep_inversion()
            else:
                # the target source is the training split: a larger draw would only repeat it
                n = min(self.sc["pool"], len(self.data.train)) if source == "target" else self.sc["pool"]
                ts = cached_teacher_logits(
                    self.teacher, self.key, source, n, 0, image_size=i.image_size,
                    channels=i.in_channels, balanced=source != "target",
                    num_classes=i.num_classes, max_draw_factor=self.sc["max_draw_factor"],
                    source_kwargs={"dataset": "fashion-mnist"}, progress=self.progress)
                images, logits = ts
                balance = ts.balance or {"n": len(images), "fallback_fraction": 0.0,
                                         "relative_entropy": relative_entropy(
                                             logits.argmax(1), logits.shape[1])}
            self.base[source] = (images, logits, balance)
            self.reports.setdefault(source, {})["balance"] = balance
            print(f"pool {source}: {len(images)} images, teacher relative entropy "
                  f"{balance['relative_entropy']:.3f}, fallback {balance['fallback_fraction']:.1%} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
        return self.base[source]

    def _deep_inversion(self):
        sc, k = self.sc, self.data.info.num_classes
        cfg = DeepInversionConfig(iterations=sc["di_iterations"])
        conf = {"teacher": self.key, "n": sc["di_pool"], "cfg": cfg.__dict__, "v": 1}
        d = cache_root() / "deepinversion" / config_hash(conf)
        with entry_lock(d):
            if (d / "data.pt").exists():
                saved = torch.load(d / "data.pt", weights_only=True)
                return saved["images"], saved["logits"], json.loads((d / "report.json").read_text())
            x, lg, rep = deep_inversion(self.teacher, sc["di_pool"], k, seed=0, cfg=cfg,
                                        progress=self.progress)
            rep = {**rep, "n": len(x), "fallback_fraction": 0.0}
            atomic_torch_save({"images": x, "logits": lg}, d / "data.pt")
            atomic_write_json(rep, d / "report.json")
            return x, lg, rep
