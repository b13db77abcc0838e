"""Boundary samples as a measured share of a transfer set (P2).

P2 attacks part of a class-balanced pool (:func:`distill.attack.boundary_attack`, about four
samples per attacked image) and trains on the pool plus those samples. Here the attacked
images are a shuffled, class-stratified subset, the samples make up a chosen ``share`` of a
pool of fixed size, and the report says what was kept: the classes of the attacked images and
of the samples, and how confident the teacher is on them (a boundary sample should not be at
0.99). Augmentation runs at training time on every pool image, so it is applied *after* the
attack; :func:`confidence_after` measures how far it moves the samples off the boundary.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from distill.guided import class_histogram, relative_entropy, teacher_logits
from distill.pool import boundary_pool
from distill.sources.base import gen_for

Attack = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def stratified_order(classes: torch.Tensor, seed: int) -> torch.Tensor:
    """A permutation of ``range(len(classes))`` that takes classes in turn (each class shuffled,
    the class order shuffled per round), so every prefix is as class-balanced as it can be."""
    gen = gen_for(seed)
    per = [idx[torch.randperm(len(idx), generator=gen)]
           for idx in (torch.nonzero(classes == c).flatten()
                       for c in torch.unique(classes).tolist())]
    out, r = [], 0
    while any(r < len(p) for p in per):
        round_ = torch.stack([p[r] for p in per if r < len(p)])
        out.append(round_[torch.randperm(len(round_), generator=gen)])
        r += 1
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


def confidence_stats(logits: torch.Tensor) -> dict[str, float]:
    """Teacher max-softmax of a set of samples: mean, 10/50/90% quantiles, share below 0.9."""
    if len(logits) == 0:
        return {"mean": math.nan, "q10": math.nan, "q50": math.nan, "q90": math.nan,
                "below_0.9": math.nan}
    conf = logits.float().softmax(1).amax(1)
    q = torch.quantile(conf, torch.tensor([0.1, 0.5, 0.9]))
    return {"mean": float(conf.mean()), "q10": float(q[0]), "q50": float(q[1]),
            "q90": float(q[2]), "below_0.9": float((conf < 0.9).float().mean())}


def with_boundary_share(teacher: nn.Module, images: torch.Tensor, logits: torch.Tensor,
                        share: float, seed: int, attack: Attack | None = None,
                        chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """A pool of ``len(images)`` images of which ``share`` are boundary samples.

    The attacked images and the kept originals both follow :func:`stratified_order` of the
    teacher's classes; images are attacked a chunk at a time until ``share · N`` samples exist
    (then a seeded random subset of them is kept, so no sample kind is favoured).

    Args:
        attack: ``images → (samples, their teacher logits)``; default
            :func:`distill.pool.boundary_pool` with its defaults (pass a cached one to reuse).
    """
    if not 0.0 <= share < 1.0:
        raise ValueError(f"share must be in [0, 1), got {share}")
    n, k = len(images), logits.shape[1]
    order = stratified_order(logits.argmax(1), seed)
    n_b = round(share * n)
    attack = attack or (lambda x: boundary_pool(teacher, x, seed=seed))
    adv, adv_l, used = [], [], 0
    while sum(len(a) for a in adv) < n_b and used < n:
        want = n_b - sum(len(a) for a in adv)
        take = order[used: used + min(max(math.ceil(want / 4), 1), chunk)]
        used += len(take)
        x, lg = attack(images[take])
        adv.append(x)
        adv_l.append(lg)
    adv_x = torch.cat(adv) if adv else images[:0]
    adv_lg = torch.cat(adv_l) if adv_l else logits[:0]
    keep = torch.randperm(len(adv_x), generator=gen_for(seed + 1))[:n_b].sort().values
    adv_x, adv_lg = adv_x[keep], adv_lg[keep]
    base = order[: n - len(adv_x)].sort().values
    out_x = torch.cat([images[base], adv_x])
    out_l = torch.cat([logits[base], adv_lg])
    attacked = order[:used]
    report = {"share_requested": share, "share": len(adv_x) / max(len(out_x), 1),
              "boundary_samples": len(adv_x), "attacked_images": int(used),
              "attacked_class_counts": class_histogram(logits[attacked].argmax(1), k).tolist(),
              "sample_class_counts": class_histogram(adv_lg.argmax(1), k).tolist(),
              "sample_relative_entropy": relative_entropy(adv_lg.argmax(1), k)
              if len(adv_lg) else math.nan,
              "pool_relative_entropy": relative_entropy(out_l.argmax(1), k),
              "sample_confidence": confidence_stats(adv_lg),
              "original_confidence": confidence_stats(logits[base])}
    return out_x, out_l, report


@torch.no_grad()
def confidence_after(teacher: nn.Module, images: torch.Tensor,
                     augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
                     seed: int = 0) -> dict[str, float]:
    """:func:`confidence_stats` of the teacher on ``augment(images)`` (what training sees)."""
    x = augment(images.clone(), gen_for(seed))
    return confidence_stats(teacher_logits(teacher, x))


__all__ = ["confidence_after", "confidence_stats", "stratified_order", "with_boundary_share"]
