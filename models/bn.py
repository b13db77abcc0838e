"""Revisited batch-norm initialization (Davis & Frank, ECCV 2022, arXiv:2110.13989).

Three pieces, each usable alone:

* :class:`RevisitedBatchNorm2d`: BN whose scale starts at ``γ₀ = c_γ`` (default 0.1) instead of 1,
  and which keeps that value through :meth:`reset_parameters` (so model builders that reset
  their layers do not silently undo it).
* :func:`param_groups`: optimizer groups that train every BN scale at ``lr / c`` (default
  ``c = 100``) and exempt all BN parameters and biases from weight decay.
* :class:`InputBatchNorm`: an affine BN over the raw input channels placed first in the
  network, ``γ₀ = c_γ · 0.58`` and ``β`` frozen at 0, replacing fixed dataset mean/std.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

BN_KINDS = ("standard", "revisited")
INPUT_NORMS = ("dataset", "bn")
INPUT_BN_FACTOR = 0.58  # γ₀ of the input BN is c_γ × 0.58 (paper, sec. 4)


class RevisitedBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` with the scale initialised to ``gamma_init`` and the shift to 0."""

    def __init__(self, num_features: int, gamma_init: float = 0.1, **kwargs) -> None:
        self.gamma_init = float(gamma_init)
        super().__init__(num_features, **kwargs)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.affine:
            with torch.no_grad():
                self.weight.fill_(self.gamma_init)
                self.bias.zero_()


class InputBatchNorm(RevisitedBatchNorm2d):
    """Online input normalisation: affine BN on the input channels with ``β`` frozen at 0."""

    def __init__(self, num_channels: int, gamma_init: float = 0.1 * INPUT_BN_FACTOR) -> None:
        super().__init__(num_channels, gamma_init=gamma_init)
        self.bias.requires_grad_(False)


class DatasetNormalize(nn.Module):
    """Fixed ``(x − mean) / std`` with per-channel dataset statistics."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def make_norm(kind: str = "standard", gamma_init: float = 0.1) -> Callable[[int], nn.Module]:
    """A factory ``num_features -> BN layer`` for ``kind`` in :data:`BN_KINDS`."""
    if kind == "standard":
        return nn.BatchNorm2d
    if kind == "revisited":
        return lambda n: RevisitedBatchNorm2d(n, gamma_init=gamma_init)
    raise ValueError(f"unknown BN kind {kind!r}; choose one of {BN_KINDS}")


def make_input_norm(kind: str, in_channels: int, mean: Sequence[float] | None,
                    std: Sequence[float] | None, gamma_init: float = 0.1) -> nn.Module:
    """The network's first layer: dataset mean/std (``'dataset'``) or :class:`InputBatchNorm`."""
    if kind == "dataset":
        if mean is None or std is None:
            mean, std = [0.5] * in_channels, [0.5] * in_channels
        if len(mean) != in_channels or len(std) != in_channels:
            raise ValueError(f"mean/std have {len(mean)}/{len(std)} entries for {in_channels} channels")
        return DatasetNormalize(mean, std)
    if kind == "bn":
        return InputBatchNorm(in_channels, gamma_init=gamma_init * INPUT_BN_FACTOR)
    raise ValueError(f"unknown input normalisation {kind!r}; choose one of {INPUT_NORMS}")


def _is_norm(m: nn.Module) -> bool:
    return isinstance(m, nn.modules.batchnorm._BatchNorm | nn.GroupNorm | nn.LayerNorm)


def param_groups(model: nn.Module, lr: float, weight_decay: float, *,
                 bn_lr_div: float | None = None, no_decay_norm_bias: bool = False) -> list[dict]:
    """Optimizer parameter groups.

    Args:
        bn_lr_div: if set, BN scales train at ``lr / bn_lr_div`` (the paper's ``c``, 100).
        no_decay_norm_bias: exempt every normalisation parameter and every bias from decay.
    """
    scales, no_decay, decay = [], [], []
    seen: set[int] = set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            is_norm = _is_norm(module)
            if bn_lr_div is not None and is_norm and name == "weight":
                scales.append(p)
            elif no_decay_norm_bias and (is_norm or name == "bias"):
                no_decay.append(p)
            else:
                decay.append(p)
    groups = [{"params": decay, "lr": lr, "weight_decay": weight_decay, "name": "decay"}]
    if no_decay:
        groups.append({"params": no_decay, "lr": lr, "weight_decay": 0.0, "name": "no_decay"})
    if scales:
        groups.append({"params": scales, "lr": lr / bn_lr_div,
                       "weight_decay": 0.0 if no_decay_norm_bias else weight_decay,
                       "name": "bn_scale"})
    return groups


def bn_layers(model: nn.Module) -> list[tuple[str, nn.modules.batchnorm._BatchNorm]]:
    """Every affine BN layer of ``model`` with its qualified name."""
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine]


def gamma_drift(model: nn.Module, gamma_init: float | dict[str, float]) -> dict[str, float]:
    """Mean ``|γ − γ₀|`` and mean ``γ`` over all BN scales (excluding the input BN)."""
    diffs, gammas = [], []
    for name, m in bn_layers(model):
        if isinstance(m, InputBatchNorm):
            continue
        g0 = gamma_init[name] if isinstance(gamma_init, dict) else gamma_init
        w = m.weight.detach().float()
        diffs.append((w - g0).abs().mean().item())
        gammas.append(w.mean().item())
    n = max(len(diffs), 1)
    return {"gamma_abs_drift": sum(diffs) / n, "gamma_mean": sum(gammas) / n}
