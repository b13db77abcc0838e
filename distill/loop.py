"""The step-level distillation API shared by ``python -m distill.train``, the benchmark and the
DistillSource environment.

>>> trainer = KDTrainer(teacher, student, torch.optim.SGD(student.parameters(), 0.05),
...                     temperature=4.0, augment="heavy", mixup_alpha=1.0)   # doctest: +SKIP
>>> stats = trainer.step(images)           # one student update on a batch of source images
>>> evaluate(student, data.test, teacher=teacher)["acc"]                     # doctest: +SKIP

A step: (optional) adversarial boundary samples replace part of the batch → augmentation
policy → mixup → teacher logits on the final images (or given logits when the images are used
as they are) → ``kd_loss`` → one optimizer (and scheduler) step. All randomness comes from the
trainer's own generator (seeded, saved in :meth:`KDTrainer.state_dict`), so a resumed run
continues with the numbers of an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from distill.attack import boundary_attack
from distill.augment import Policy, get_policy
from distill.kd import kd_loss, mix_targets, mixup_batch
from models.datasets import Split
from models.guards import NonFiniteLossError


@dataclass
class AttackSettings:
    """On-the-fly boundary samples: ``fraction`` of each batch is replaced by the attack's
    samples (each attacked image gives up to four), with the bold-driver settings of
    :func:`distill.attack.boundary_attack`."""

    fraction: float = 0.25
    step: float = 2.0 / 255
    max_iter: int = 30
    confidence: float = 0.9
    deep_steps: int = 4

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"attack fraction must be in (0, 1], got {self.fraction}")
        if self.max_iter < 1:
            raise ValueError(f"attack max_iter must be ≥ 1, got {self.max_iter}")


@dataclass
class StepStats:
    """What one :meth:`KDTrainer.step` did."""

    loss: float
    agreement: float     # share of the batch where student and teacher argmax agree
    batch_size: int
    attacked: int        # boundary samples in the batch
    lr: float


class KDTrainer:
    """One student distilled from one teacher, step by step.

    Args:
        teacher: the teacher (kept in eval mode, never updated).
        student: the network being trained.
        optimizer: over the student's parameters.
        temperature: ``T`` of the KD loss.
        hard_weight: weight of the one-hot term of :func:`distill.kd.kd_loss`.
        augment: policy name (``none``, ``standard``, ``heavy``) or a :class:`Policy`.
        mixup_alpha: Beta parameter of mixup; 0 disables it.
        attack: :class:`AttackSettings` to add boundary samples on the fly, or ``None``.
        scheduler: optional lr scheduler stepped after every update.
        device: where teacher and student run.
        seed: seeds the trainer's generator (augmentation, mixup, attack targets).
    """

    def __init__(self, teacher: nn.Module, student: nn.Module, optimizer: torch.optim.Optimizer,
                 *, temperature: float = 4.0, hard_weight: float = 0.0,
                 augment: str | Policy = "none", mixup_alpha: float = 0.0,
                 attack: AttackSettings | None = None,
                 scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
                 device: str | torch.device = "cpu", seed: int = 0,
                 channels_last: bool = True) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if mixup_alpha < 0:
            raise ValueError(f"mixup_alpha must be ≥ 0, got {mixup_alpha}")
        self.device = torch.device(device)
        self.fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.teacher = teacher.to(self.device).to(memory_format=self.fmt).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.student = student.to(self.device).to(memory_format=self.fmt)
        self.optimizer, self.scheduler = optimizer, scheduler
        self.temperature, self.hard_weight = float(temperature), float(hard_weight)
        shape = getattr(student, "input_shape", None) or getattr(teacher, "input_shape", None)
        if isinstance(augment, str):
            if augment != "none" and shape is None:
                raise ValueError("augmentation needs the image size: pass a Policy")
            augment = get_policy(augment, tuple(shape[1:]) if shape else (1, 1))
        self.policy = augment
        self.mixup_alpha, self.attack = float(mixup_alpha), attack
        self.gen = torch.Generator().manual_seed(int(seed))
        self.steps = 0

    # -- one update ---------------------------------------------------------------------------
    def prepare(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None,
                                                     torch.Tensor | None, int]:
        """Attack, augment and mix a batch; returns ``(x, perm, lam, attacked)``."""
        x, attacked = images, 0
        if self.attack is not None:
            x, attacked = self._add_boundary_samples(x)
        if self.policy.name != "none":
            x = self.policy(x, self.gen)
        perm = lam = None
        if self.mixup_alpha > 0:
            x, perm, lam = mixup_batch(x, self.gen, self.mixup_alpha)
        return x, perm, lam, attacked

    def _add_boundary_samples(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        b = len(x)
        k = max(1, math.ceil(self.attack.fraction * b / 4))
        a = self.attack
        bs = boundary_attack(self.teacher, x[:k].to(self.device), self.gen, step=a.step,
                             max_iter=a.max_iter, confidence=a.confidence, deep_steps=a.deep_steps)
        adv = bs.images.to(x.device)
        if len(adv) == 0:
            return x, 0
        out = torch.cat([adv, x[k:]])[:b]  # boundary samples first, then unattacked images
        if len(out) < b:  # fewer samples than attacked images: refill with the originals
            out = torch.cat([out, x[: b - len(out)]])
        return out, min(len(adv), b)

    def step(self, images: torch.Tensor, teacher_logits: torch.Tensor | None = None,
             labels: torch.Tensor | None = None) -> StepStats:
        """One student update on ``images`` (``[B, C, H, W]`` in ``[0, 1]``, any device).

        ``teacher_logits`` (e.g. from :func:`distill.logits.cached_teacher_logits`) are used
        only when the batch reaches the loss unchanged (no augmentation, mixup or attack);
        otherwise the teacher labels the transformed images. ``labels`` feed the one-hot term
        (mixed along with mixup).
        """
        if images.ndim != 4:
            raise ValueError(f"expected images [B, C, H, W], got shape {tuple(images.shape)}")
        x, perm, lam, attacked = self.prepare(images)
        unchanged = x is images
        x = x.to(self.device, non_blocking=True).contiguous(memory_format=self.fmt)
        if teacher_logits is not None and unchanged:
            t = teacher_logits.to(self.device)
        else:
            with torch.no_grad():
                t = self.teacher(x)
        if labels is not None:
            labels = labels.to(self.device)
            if attacked:  # boundary samples have no true label: use the teacher's
                labels = None
            elif perm is not None:
                labels = mix_targets(labels, perm, lam, t.shape[1])
        self.student.train()
        s = self.student(x)
        loss = kd_loss(s, t, self.temperature, labels=labels, hard_weight=self.hard_weight)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"KD loss is {loss.item()} at step {self.steps}; lower the "
                                     f"learning rate or the temperature")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        lr = self.optimizer.param_groups[0]["lr"]
        if self.scheduler is not None:
            self.scheduler.step()
        self.steps += 1
        agree = (s.detach().argmax(1) == t.argmax(1)).float().mean().item()
        return StepStats(loss.item(), agree, len(x), attacked, lr)

    # -- checkpoints --------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to continue: student, optimizer, scheduler, generator, step."""
        return {"student": self.student.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler else None,
                "generator": self.gen.get_state(), "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.student.load_state_dict(state["student"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.gen.set_state(state["generator"])
        self.steps = int(state["steps"])


_TEACHER_PRED: dict[tuple, torch.Tensor] = {}


@torch.no_grad()
def teacher_predictions(teacher: nn.Module, split: Split, device: torch.device,
                        batch_size: int = 1000) -> torch.Tensor:
    """The teacher's argmax on ``split`` (CPU), memoized per teacher weights and split, so
    repeated evaluations of many students do not re-run the teacher."""
    from distill.logits import teacher_fingerprint

    key = (teacher_fingerprint(teacher), id(split.images), split.images.data_ptr(), len(split))
    if key not in _TEACHER_PRED:
        if len(_TEACHER_PRED) > 16:
            _TEACHER_PRED.clear()
        teacher.eval()
        _TEACHER_PRED[key] = torch.cat([teacher(split.images[i:i + batch_size].to(device)).argmax(1).cpu()
                                        for i in range(0, len(split), batch_size)])
    return _TEACHER_PRED[key]


@torch.no_grad()
def evaluate(student: nn.Module, split: Split, teacher: nn.Module | None = None,
             device: str | torch.device | None = None, batch_size: int = 1000) -> dict[str, float]:
    """Student accuracy on a labelled split, and its agreement with ``teacher`` (share of
    images with the same argmax) when a teacher is given; both in eval mode."""
    dev = torch.device(device) if device is not None else next(student.parameters()).device
    was = student.training
    student.eval()
    try:
        pred = torch.cat([student(split.images[i:i + batch_size].to(dev)).argmax(1).cpu()
                          for i in range(0, len(split), batch_size)])
    finally:
        student.train(was)
    n = max(len(split), 1)
    out = {"acc": (pred == split.labels).sum().item() / n}
    if teacher is not None:
        q = teacher_predictions(teacher, split, dev, batch_size)
        out.update(agreement=(pred == q).sum().item() / n,
                   teacher_acc=(q == split.labels).sum().item() / n)
    return out


def cosine_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup: int = 0
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up then cosine decay to 0 over ``total_steps`` updates."""
    def factor(s: int) -> float:
        if s < warmup:
            return (s + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(s - warmup, total_steps) / max(total_steps - warmup, 1)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


__all__ = ["AttackSettings", "KDTrainer", "NonFiniteLossError", "StepStats", "cosine_schedule",
           "evaluate", "teacher_predictions"]
