"""One distillation phase of a DistillSource episode, and the student's evaluation on a probe.

A phase is ``updates_per_phase`` KD updates of the student on batches drawn from the source
pools with the agent's mixture weights (a one-hot mixture in discrete mode). Each batch:

1. **data**: per-source counts from a seeded multinomial, random images of each pool (half
   of them from the source's boundary pool when the attack is on), augmentation and mixup;
2. **teacher**: cached pool logits, or a teacher forward when the images were augmented or
   mixed (the teacher must label what the student sees);
3. **update**: :meth:`distill.loop.KDTrainer.step` on the final images and logits
   (``distill.kd.kd_loss``, T²·KL(teacher‖student), non-finite check, one Adam step).

Steps 1–2 are done here rather than inside the trainer so that each part can be timed and so
that batches mix several pools with their cached logits. Every random draw comes from the
episode's generator (the trainer's), so an episode is a pure function of its seed and actions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from distill.guided import relative_entropy, teacher_logits
from distill.kd import kd_kl, mixup_batch
from distill.loop import KDTrainer
from envs.distill_source.config import DistillSourceConfig
from envs.distill_source.resources import Pool, Resources
from models.nets import build_model


def build_student(cfg: DistillSourceConfig, res: Resources, seed: int,
                  builder: Callable[[int, tuple[int, int, int]], nn.Module] | None = None
                  ) -> nn.Module:
    """A freshly initialised student (``cfg.student_arch``, or the user's ``builder`` from
    :func:`envs.distill_source.teacher.student_builder`); its weights are a function of
    ``seed`` only."""
    info = res.data.info
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if builder is not None:
            return builder(int(info.num_classes), res.image_shape).to(cfg.device)
        kw = {"depth": cfg.student_depth} if cfg.student_arch == "cnn" else {}
        net = build_model(cfg.student_arch, num_classes=info.num_classes,
                          in_channels=info.in_channels, image_size=info.image_size,
                          width=cfg.student_width, mean=info.mean, std=info.std, **kw)
    return net.to(cfg.device)


@dataclass
class PhaseTimes:
    """Seconds spent in each part of a phase."""

    data: float = 0.0
    teacher: float = 0.0
    update: float = 0.0

    def add(self, other: PhaseTimes) -> None:
        self.data += other.data
        self.teacher += other.teacher
        self.update += other.update


def draw_batch(pools: list[Pool], weights: np.ndarray, batch_size: int, attack: bool,
               gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images, cached teacher logits and the source index of each row of one batch."""
    w = torch.as_tensor(weights, dtype=torch.float64)
    counts = torch.bincount(torch.multinomial(w, batch_size, replacement=True, generator=gen),
                            minlength=len(pools)).tolist()
    xs, ls, srcs = [], [], []
    for s, (pool, c) in enumerate(zip(pools, counts, strict=True)):
        if c == 0:
            continue
        n_adv = c // 2 if attack and pool.boundary is not None else 0
        for p, n in ((pool, c - n_adv), (pool.boundary, n_adv)):
            if n == 0:
                continue
            idx = torch.randint(0, len(p), (n,), generator=gen).to(p.images.device)
            xs.append(p.images[idx])
            ls.append(p.logits[idx])
        srcs.append(torch.full((c,), s, dtype=torch.long))
    return torch.cat(xs), torch.cat(ls), torch.cat(srcs)


class PhaseRunner:
    """The student and its :class:`distill.loop.KDTrainer` (optimizer and the episode's
    generator)."""

    def __init__(self, cfg: DistillSourceConfig, res: Resources, seed: int,
                 builder: Callable[[int, tuple[int, int, int]], nn.Module] | None = None) -> None:
        self.cfg, self.res = cfg, res
        self.student = build_student(cfg, res, seed, builder)
        opt = torch.optim.Adam(self.student.parameters(), lr=cfg.lr)
        # augmentation and mixup happen in run() (timed apart); the trainer gets final images
        self.trainer = KDTrainer(res.teacher, self.student, opt, temperature=cfg.temperature,
                                 device=cfg.device, seed=seed)
        self.gen = self.trainer.gen
        self.last_batch: torch.Tensor | None = None
        self.last_sources: torch.Tensor | None = None

    def draw(self, weights: np.ndarray, augment: str, attack: bool
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
        """The next batch of the phase (images after augmentation and mixup), its cached
        logits, the source of each row, and whether the teacher must label it again."""
        cfg, res = self.cfg, self.res
        x, logits, srcs = draw_batch(res.pools, weights, cfg.batch_size, attack, self.gen)
        relabel = augment != "none" or cfg.mixup_alpha > 0
        if augment != "none":
            x = res.policies[augment](x, self.gen)
        if cfg.mixup_alpha > 0:
            x = mixup_batch(x, self.gen, cfg.mixup_alpha).images
        return x, logits, srcs, relabel

    def run(self, weights: np.ndarray, augment: str, attack: bool) -> tuple[float, PhaseTimes]:
        """One phase; returns the mean KD loss over its updates and the time per part."""
        cfg, res = self.cfg, self.res
        times, losses = PhaseTimes(), []
        self.student.train()
        for _ in range(cfg.updates_per_phase):
            t0 = time.perf_counter()
            x, logits, srcs, relabel = self.draw(weights, augment, attack)
            t1 = time.perf_counter()
            if relabel:
                logits = teacher_logits(res.teacher, x, batch_size=len(x))
                logits = logits.to(x.device)
            t2 = time.perf_counter()
            losses.append(self.trainer.step(x, logits).loss)
            t3 = time.perf_counter()
            times.add(PhaseTimes(t1 - t0, t2 - t1, t3 - t2))
        self.last_batch, self.last_sources = x.detach(), srcs
        return float(np.mean(losses)), times


@dataclass
class ProbeResult:
    """The student against the teacher on one set of images."""

    agreement: float              # fraction where student argmax == teacher argmax
    loss: float                   # T²·KL(teacher ‖ student), batch mean
    per_class: np.ndarray         # agreement per teacher-predicted class (0 when absent)
    accuracy: float | None        # against labels, when given
    balanced: float = 0.0         # mean of per_class over the classes the teacher predicts
    student_entropy: float = 0.0  # relative entropy of the student's predicted classes


@torch.no_grad()
def probe(student: nn.Module, images: torch.Tensor, t_logits: torch.Tensor, num_classes: int,
          temperature: float, labels: torch.Tensor | None = None,
          batch_size: int = 1024) -> ProbeResult:
    """Evaluate ``student`` (in eval mode) on ``images`` with the teacher's ``t_logits``."""
    was = student.training
    student.eval()
    try:
        s_logits = torch.cat([student(images[i:i + batch_size])
                              for i in range(0, len(images), batch_size)])
    finally:
        student.train(was)
    s_pred, t_pred = s_logits.argmax(1), t_logits.argmax(1)
    agree = (s_pred == t_pred).float()
    counts = torch.bincount(t_pred, minlength=num_classes).float()
    hits = torch.bincount(t_pred, weights=agree, minlength=num_classes)
    per_class = torch.where(counts > 0, hits / counts.clamp_min(1), torch.zeros_like(hits))
    acc = float((s_pred == labels).float().mean()) if labels is not None else None
    present = counts > 0
    return ProbeResult(float(agree.mean()), float(kd_kl(s_logits, t_logits, temperature)),
                       per_class.cpu().numpy(), acc, float(per_class[present].mean()),
                       relative_entropy(s_pred, num_classes))
