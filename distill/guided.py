"""Teacher-guided transfer-set construction: predicted-class statistics and class-balanced
filtering (P2: a good transfer set makes the teacher predict every class about equally)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from distill.sources.base import Source, batch_seed


@torch.no_grad()
def teacher_logits(teacher: nn.Module, images: torch.Tensor, batch_size: int = 512,
                   device: str | torch.device | None = None) -> torch.Tensor:
    """Teacher logits for ``images`` in eval mode, computed in batches, returned on CPU."""
    dev = torch.device(device) if device is not None else next(teacher.parameters()).device
    was_training = teacher.training
    teacher.eval()
    try:
        out = [teacher(images[i:i + batch_size].to(dev)).float().cpu()
               for i in range(0, len(images), batch_size)]
    finally:
        teacher.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def class_histogram(pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts of each predicted class, ``[num_classes]``."""
    return torch.bincount(pred.flatten().long(), minlength=num_classes)[:num_classes]


def relative_entropy(pred: torch.Tensor, num_classes: int) -> float:
    """Entropy of the predicted-class histogram divided by ``log C``: 1 = perfectly balanced,
    0 = a single class."""
    counts = class_histogram(pred, num_classes).double()
    p = counts / counts.sum().clamp_min(1)
    h = -(p[p > 0] * p[p > 0].log()).sum().item()
    return h / math.log(num_classes)


def source_relative_entropy(teacher: nn.Module, source: Source, num_classes: int, n: int = 2048,
                            seed: int = 0, batch_size: int = 512) -> float:
    """Relative entropy of the teacher's predicted classes on ``n`` images of ``source``."""
    preds = [teacher_logits(teacher, x, batch_size).argmax(1)
             for x in source.batches(batch_size, seed, num_batches=-(-n // batch_size))]
    return relative_entropy(torch.cat(preds)[:n], num_classes)


FALLBACKS = ("fill", "shrink")


@dataclass
class BalancedSet:
    """Result of :func:`balanced_filter`."""

    images: torch.Tensor       # [N, C, H, W]
    logits: torch.Tensor       # teacher logits of the kept images, [N, K]
    classes: torch.Tensor      # teacher-predicted class each image was kept for, [N]
    drawn: int                 # images drawn from the source
    filled_by_argmax: int      # how many slots were filled by a true argmax prediction
    requested: int = 0         # n asked for
    fallback: str = "fill"

    @property
    def counts(self) -> torch.Tensor:
        return torch.bincount(self.classes, minlength=self.logits.shape[1])

    def balance(self) -> dict[str, object]:
        """What the pool really is: the teacher's top-class histogram of the kept images, its
        relative entropy, and how many slots the fallback filled."""
        k = self.logits.shape[1]
        top = self.logits.argmax(1)
        fallback_filled = len(self.images) - self.filled_by_argmax
        return {"requested": self.requested, "n": len(self.images), "drawn": self.drawn,
                "fallback": self.fallback, "fallback_filled": fallback_filled,
                "fallback_fraction": fallback_filled / max(len(self.images), 1),
                "teacher_class_counts": class_histogram(top, k).tolist(),
                "relative_entropy": relative_entropy(top, k),
                "top_class_is_assigned": float((top == self.classes).float().mean())
                if len(top) else 0.0}


def balanced_filter(teacher: nn.Module, source: Source, n: int, num_classes: int, seed: int = 0,
                    batch_size: int = 512, max_draw: int | None = None,
                    fallback: str = "fill", progress: bool = False,
                    desc: str = "balanced set") -> BalancedSet:
    """Keep ``n`` images whose teacher-predicted classes are uniform (``n / C`` per class).

    Images are drawn batch by batch from ``source``; an image fills a free slot of its argmax
    class. If some classes are still short after ``max_draw`` images (default ``20 n``):

    * ``fallback="fill"``: their slots get the unused images the teacher rates most likely for
      them (whose top class is usually still another one), so the result has ``n`` images;
    * ``fallback="shrink"``: every class keeps only as many images as the shortest one has, so
      the result is balanced by the teacher's top class but smaller than ``n``.

    :meth:`BalancedSet.balance` reports which happened and how far. ``progress`` shows a bar
    over the images drawn (it moves every batch) with the number kept so far.
    """
    if fallback not in FALLBACKS:
        raise ValueError(f"fallback must be one of {FALLBACKS}, got {fallback!r}")
    max_draw = max_draw if max_draw is not None else 20 * n
    quota = torch.full((num_classes,), n // num_classes, dtype=torch.long)
    quota[: n % num_classes] += 1
    kept_x: list[torch.Tensor] = []
    kept_l: list[torch.Tensor] = []
    kept_c: list[torch.Tensor] = []
    spare_x, spare_l = [], []
    have = torch.zeros(num_classes, dtype=torch.long)
    drawn, k = 0, 0
    bar = tqdm(total=max_draw, desc=desc, unit="img", disable=not progress, leave=False)
    while drawn < max_draw and bool((have < quota).any()):
        x = source.sample(batch_size, batch_seed(seed, k))
        k += 1
        drawn += len(x)
        bar.update(len(x))
        bar.set_postfix_str(f"kept {int(have.sum())}/{n}", refresh=False)
        logits = teacher_logits(teacher, x, batch_size)
        pred = logits.argmax(1)
        take = torch.zeros(len(x), dtype=torch.bool)
        for c in torch.unique(pred).tolist():
            idx = torch.nonzero(pred == c).flatten()[: int(quota[c] - have[c])]
            take[idx] = True
            have[c] += len(idx)
        kept_x.append(x[take])
        kept_l.append(logits[take])
        kept_c.append(pred[take])
        spare_x.append(x[~take])
        spare_l.append(logits[~take])
    bar.close()
    by_argmax = int(have.sum())
    short = quota - have
    if fallback == "shrink":
        cls = torch.cat(kept_c)
        per = int(have.min())
        if per == 0:
            missing = torch.nonzero(have == 0).flatten().tolist()
            raise ValueError(f"the teacher never predicted classes {missing} in {drawn} images "
                             f"of {source.name!r}: a balanced pool is empty; draw more "
                             f"(max_draw) or use fallback='fill' (reported as such)")
        keep = torch.cat([torch.nonzero(cls == c).flatten()[:per] for c in range(num_classes)])
        keep = keep.sort().values
        return BalancedSet(torch.cat(kept_x)[keep], torch.cat(kept_l)[keep], cls[keep], drawn,
                           len(keep), n, fallback)
    if bool((short > 0).any()):
        sx, sl = torch.cat(spare_x), torch.cat(spare_l)
        logp = torch.log_softmax(sl, 1)
        used = torch.zeros(len(sx), dtype=torch.bool)
        for c in torch.nonzero(short > 0).flatten().tolist():
            score = logp[:, c].masked_fill(used, -math.inf)
            idx = torch.topk(score, min(int(short[c]), int((~used).sum()))).indices
            used[idx] = True
            kept_x.append(sx[idx])
            kept_l.append(sl[idx])
            kept_c.append(torch.full((len(idx),), c, dtype=torch.long))
    return BalancedSet(torch.cat(kept_x), torch.cat(kept_l), torch.cat(kept_c), drawn, by_argmax,
                       n, fallback)
