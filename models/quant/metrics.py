"""Accuracy and divergence of a network under a bit plan, over a whole split."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from models.quant.wrapper import DynamicQuantizer


def kl_fp_q(fp_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """Per-example ``KL(softmax(fp) ‖ softmax(q))`` in nats."""
    lp = F.log_softmax(fp_logits, dim=-1)
    lq = F.log_softmax(q_logits, dim=-1)
    return (lp.exp() * (lp - lq)).sum(dim=-1)


@torch.no_grad()
def evaluate_plan(qnet: DynamicQuantizer, images: torch.Tensor, labels: torch.Tensor,
                  plan: torch.Tensor | np.ndarray | int, batch_size: int = 1000) -> dict[str, float]:
    """FP accuracy, quantized accuracy and mean KL of ``qnet`` on ``images`` under ``plan``.

    ``plan`` is one int, ``[n_layers]`` or ``[N, n_layers]`` (one plan per image).
    """
    dev = next(qnet.parameters()).device
    n = len(labels)
    full = qnet.as_plan(plan, n)
    fp_ok = q_ok = 0
    kl = 0.0
    for i in range(0, n, batch_size):
        x = images[i:i + batch_size].to(dev)
        y = labels[i:i + batch_size].to(dev)
        out = qnet(x, full[i:i + batch_size], return_fp=True)
        fp_ok += int((out.fp_logits.argmax(1) == y).sum())
        q_ok += int((out.logits.argmax(1) == y).sum())
        kl += float(kl_fp_q(out.fp_logits, out.logits).sum())
    return {"fp_acc": fp_ok / n, "q_acc": q_ok / n, "drop": (fp_ok - q_ok) / n, "kl": kl / n}
