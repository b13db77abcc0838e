"""A teacher held fixed while data-free methods backpropagate through it, and forward hooks on
it: batch statistics at its BN layers, features before its classifier."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def frozen(teacher: nn.Module) -> Iterator[nn.Module]:
    """The teacher in eval mode with no parameter gradients (inputs still get theirs);
    its modes and ``requires_grad`` flags are restored afterwards."""
    was_training = teacher.training
    flags = [(p, p.requires_grad) for p in teacher.parameters()]
    teacher.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield teacher
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        teacher.train(was_training)


class BNStatLoss:
    """``Σ_l ‖μ_l(x) − μ_l^run‖₂ + ‖σ²_l(x) − σ²_l^run‖₂`` over the teacher's BN layers, where
    ``μ_l(x), σ²_l(x)`` are the per-channel statistics of the batch entering layer ``l`` and the
    running ones are what the teacher saw in training (DeepInversion's feature prior)."""

    def __init__(self, teacher: nn.Module) -> None:
        self.layers = [m for m in teacher.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                       and m.running_mean is not None]
        if not self.layers:
            raise ValueError("the teacher has no batch-norm layers with running statistics: "
                             "DeepInversion needs them")
        self.terms: list[torch.Tensor] = []
        self.handles = [m.register_forward_hook(self._hook) for m in self.layers]

    def _hook(self, module: nn.Module, inputs: tuple[torch.Tensor], _out: torch.Tensor) -> None:
        x = inputs[0]
        dims = [0, *range(2, x.ndim)]
        mean, var = x.mean(dims), x.var(dims, unbiased=False)
        self.terms.append(torch.linalg.vector_norm(mean - module.running_mean)
                          + torch.linalg.vector_norm(var - module.running_var))

    def pop(self) -> torch.Tensor:
        """The loss of the last forward (and reset)."""
        loss = torch.stack(self.terms).sum()
        self.terms = []
        return loss

    def close(self) -> None:
        for h in self.handles:
            h.remove()


class PenultimateFeatures:
    """The input of the teacher's last ``nn.Linear`` at each forward (DAFL's activation term)."""

    def __init__(self, teacher: nn.Module) -> None:
        linears = [m for m in teacher.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError("the teacher has no nn.Linear classifier to read features from")
        self.value: torch.Tensor | None = None
        self.handle = linears[-1].register_forward_hook(self._hook)

    def _hook(self, _m: nn.Module, inputs: tuple[torch.Tensor], _out: torch.Tensor) -> None:
        self.value = inputs[0]

    def close(self) -> None:
        self.handle.remove()
