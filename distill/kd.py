"""Knowledge-distillation losses and mixup helpers.

The loss of P2/P4 (Hinton et al.): ``T² · KL(softmax(t / T) ‖ softmax(s / T))``, averaged over
the batch, optionally mixed with a hard (one-hot) cross-entropy term::

    loss = (1 − w) · T² · KL(teacher ‖ student) + w · CE(student, one_hot)

The one-hot targets are the true labels when given, otherwise the teacher's argmax (the
data-free case, where no labels exist). Mixup (P2 uses it always) mixes *images*; the teacher
then labels the mixed images itself, so no target mixing is needed for the KD term. When
labels are used (the hard term), :func:`mix_targets` mixes their one-hot vectors with the same
permutation and ``lam``.

>>> s, t = torch.randn(8, 10), torch.randn(8, 10)
>>> float(kd_loss(t, t, 4.0)) == 0.0
True
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from distill.augment import mixup


def soft_targets(teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """The teacher's softened class probabilities ``softmax(t / T)``."""
    _check_temperature(temperature)
    return F.softmax(teacher_logits.float() / temperature, dim=1)


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}; P2 uses 2 (general) to 20 "
                         f"(synthetic data), its code 5")


def kd_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
          reduction: str = "batchmean") -> torch.Tensor:
    """``T² · KL(softmax(t/T) ‖ softmax(s/T))``; ``reduction`` ``'batchmean'`` or ``'none'``
    (per-example, ``[B]``)."""
    _check_temperature(temperature)
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} differ; the student must have the "
                         f"teacher's number of classes")
    log_p_s = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_p_t = F.log_softmax(teacher_logits.detach().float() / temperature, dim=1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(1) * temperature ** 2
    if reduction == "none":
        return kl
    if reduction != "batchmean":
        raise ValueError(f"reduction must be 'batchmean' or 'none', got {reduction!r}")
    return kl.mean()


def hard_targets(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class indices ``[B]`` → one-hot ``[B, K]``; probability rows ``[B, K]`` pass through."""
    if labels.ndim == 1:
        return F.one_hot(labels.long(), num_classes).float()
    if labels.ndim == 2 and labels.shape[1] == num_classes:
        return labels.float()
    raise ValueError(f"labels must be class indices [B] or probabilities [B, {num_classes}], "
                     f"got shape {tuple(labels.shape)}")


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
            labels: torch.Tensor | None = None, hard_weight: float = 0.0) -> torch.Tensor:
    """Distillation loss: ``(1 − w)·T²·KL(teacher ‖ student) + w·CE(student, one-hot)``.

    Args:
        student_logits, teacher_logits: ``[B, K]``; the teacher's are detached.
        temperature: softening temperature ``T`` (> 0).
        labels: hard targets for the one-hot term, class indices ``[B]`` or (mixed) one-hot
            rows ``[B, K]``; default the teacher's argmax.
        hard_weight: ``w`` in ``[0, 1]``; 0 = pure KD (the P2 recipe).

    Returns:
        A scalar loss (batch mean).
    """
    if not 0.0 <= hard_weight <= 1.0:
        raise ValueError(f"hard_weight must be in [0, 1], got {hard_weight}")
    loss = kd_kl(student_logits, teacher_logits, temperature) if hard_weight < 1.0 else None
    if hard_weight == 0.0:
        return loss
    k = student_logits.shape[1]
    target = hard_targets(teacher_logits.argmax(1) if labels is None else labels, k)
    ce = -(target.to(student_logits.device) * F.log_softmax(student_logits.float(), 1)).sum(1).mean()
    return ce if loss is None else (1.0 - hard_weight) * loss + hard_weight * ce


class MixedBatch(NamedTuple):
    """A mixup result: ``images = lam·x + (1 − lam)·x[perm]``."""

    images: torch.Tensor
    perm: torch.Tensor
    lam: torch.Tensor  # [B]


def mixup_batch(x: torch.Tensor, gen: torch.Generator, alpha: float = 1.0,
                per_example: bool = True) -> MixedBatch:
    """Mixup of a batch with ``lam ~ Beta(alpha, alpha)`` drawn from ``gen`` (one per image
    unless ``per_example=False``); ``alpha = 0`` returns the batch unchanged (``lam = 1``)."""
    if alpha < 0:
        raise ValueError(f"mixup alpha must be ≥ 0, got {alpha}")
    if alpha == 0:
        b = x.shape[0]
        return MixedBatch(x, torch.arange(b, device=x.device),
                          torch.ones(b, dtype=x.dtype, device=x.device))
    return MixedBatch(*mixup(x, gen, alpha=alpha, per_example=per_example))


def mix_targets(targets: torch.Tensor, perm: torch.Tensor, lam: torch.Tensor,
                num_classes: int | None = None) -> torch.Tensor:
    """Mix targets like their images: class indices (needs ``num_classes``) become one-hot
    first; rows of probabilities or logits are mixed linearly."""
    if targets.ndim == 1:
        if num_classes is None:
            raise ValueError("mixing class indices needs num_classes")
        targets = hard_targets(targets, num_classes)
    lv = lam.to(targets.device, targets.dtype).view(-1, 1)
    return lv * targets + (1 - lv) * targets[perm.to(targets.device)]


__all__ = ["MixedBatch", "hard_targets", "kd_kl", "kd_loss", "mix_targets", "mixup_batch",
           "soft_targets"]
