"""Adversarial boundary samples (P2/P4): a targeted L∞ iterative attack on the teacher with the
"bold driver" step rule, keeping the pair of images on both sides of the decision boundary and
then pushing each member deeper into its own class.

Per image: step ×``grow`` while the target class is not reached; when a step crosses with
max softmax ≥ ``confidence`` it overshot, so the step is ×``shrink`` and the move reverted;
a step that crosses with max softmax < ``confidence`` stops the attack near the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

KINDS = ("source_side", "target_side", "source_deep", "target_deep")


@dataclass
class BoundarySamples:
    """Images around the teacher's decision boundaries, four per successful source image."""

    images: torch.Tensor   # [M, C, H, W] in [0, 1]
    origin: torch.Tensor   # index of the source image each sample comes from, [M]
    kind: torch.Tensor     # index into KINDS, [M]
    classes: torch.Tensor  # teacher-predicted class of each sample, [M]
    success: torch.Tensor  # per source image: crossed below the confidence bound, [N] bool
    iterations: int


def _grad_step(teacher: nn.Module, x: torch.Tensor, cls: torch.Tensor, step: torch.Tensor,
               x0: torch.Tensor | None, eps: float | None) -> torch.Tensor:
    """One signed-gradient step decreasing CE(teacher(x), cls), projected to [0, 1] (and the
    ε-ball around ``x0`` when given)."""
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(teacher(x), cls, reduction="sum")
    (g,) = torch.autograd.grad(loss, x)
    out = x.detach() - step.view(-1, 1, 1, 1) * g.sign()
    if eps is not None and x0 is not None:
        out = torch.max(torch.min(out, x0 + eps), x0 - eps)
    return out.clamp_(0.0, 1.0)


@torch.no_grad()
def _predict(teacher: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    p = teacher(x).softmax(1)
    conf, pred = p.max(1)
    return pred, conf


def boundary_attack(teacher: nn.Module, x: torch.Tensor, gen: torch.Generator,
                    targets: torch.Tensor | None = None, step: float = 2.0 / 255,
                    max_iter: int = 60, confidence: float = 0.9, grow: float = 1.1,
                    shrink: float = 0.5, deep_steps: int = 4, eps: float | None = None
                    ) -> BoundarySamples:
    """Boundary samples for a batch ``x`` (on the teacher's device).

    Args:
        targets: target class per image; default a uniformly random class other than the
            teacher's prediction.
        step: initial L∞ step; each image then adapts its own (bold driver).
        deep_steps: signed-gradient steps, at the image's final step size, that push each
            member of the pair deeper into its own predicted class.
        eps: optional L∞ bound around the source image.
    """
    was_training = teacher.training
    teacher.eval()
    try:
        return _attack(teacher, x, gen, targets, step, max_iter, confidence, grow, shrink,
                       deep_steps, eps)
    finally:
        teacher.train(was_training)


def _attack(teacher, x, gen, targets, step, max_iter, confidence, grow, shrink, deep_steps, eps):
    n, dev = len(x), x.device
    x0 = x.detach().clone()
    pred0, _ = _predict(teacher, x0)
    if targets is None:
        num_classes = teacher(x0[:1]).shape[1]
        shift = torch.randint(1, num_classes, (n,), generator=gen).to(dev)
        targets = (pred0 + shift) % num_classes
    targets = targets.to(dev)
    cur, steps = x0.clone(), torch.full((n,), float(step), device=dev)
    before, after = x0.clone(), x0.clone()
    done = torch.zeros(n, dtype=torch.bool, device=dev)
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - reported as iterations
        act = torch.nonzero(~done).flatten()
        if len(act) == 0:
            break
        new = _grad_step(teacher, cur[act], targets[act], steps[act], x0[act], eps)
        pred, conf = _predict(teacher, new)
        crossed = pred == targets[act]
        overshoot = crossed & (conf >= confidence)
        good = crossed & (conf < confidence)
        moving = ~crossed
        steps[act[overshoot]] *= shrink  # revert: cur stays where it was
        g_idx = act[good]
        before[g_idx], after[g_idx] = cur[g_idx], new[good]
        done[g_idx] = True
        m_idx = act[moving]
        cur[m_idx] = new[moving]
        steps[m_idx] *= grow
    ok = torch.nonzero(done).flatten()
    src_cls, _ = _predict(teacher, before[ok]) if len(ok) else (targets[:0], None)
    tgt_cls = targets[ok]
    deep_s, deep_t = before[ok].clone(), after[ok].clone()
    for _ in range(deep_steps):
        if len(ok) == 0:
            break
        deep_s = _grad_step(teacher, deep_s, src_cls, steps[ok], None, None)
        deep_t = _grad_step(teacher, deep_t, tgt_cls, steps[ok], None, None)
    images = torch.cat([before[ok], after[ok], deep_s, deep_t])
    with torch.no_grad():
        classes = torch.cat([_predict(teacher, im)[0] if len(im) else src_cls
                             for im in (before[ok], after[ok], deep_s, deep_t)])
    kind = torch.arange(4, device=dev).repeat_interleave(len(ok))
    return BoundarySamples(images.detach(), ok.repeat(4), kind, classes, done, it)
