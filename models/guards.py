"""Guards every trainer shares: divergence detection and readable configuration mismatches.

A run that diverges must stop with a named error that says what to change and where the last
good checkpoint is, never finish with NaN weights or a collapsed model recorded as a result.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.readers import read_torch


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/inf loss or NaN/inf parameters."""


class DivergenceError(FloatingPointError):
    """Training stayed finite but blew up (loss far above chance)."""


def check_loss(loss: torch.Tensor, where: str, fix: str) -> None:
    """``NonFiniteLossError`` naming ``where`` and ``fix`` unless ``loss`` is finite."""
    if not torch.isfinite(loss).all():
        raise NonFiniteLossError(f"loss is {loss.detach().float().mean().item()} {where}; {fix}")


def check_parameters(model: nn.Module, where: str, fix: str) -> None:
    """``NonFiniteLossError`` naming the first non-finite parameters of ``model``."""
    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        names = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise NonFiniteLossError(f"{len(bad)} parameter tensors are NaN/inf {where} ({names}); "
                                 f"{fix}")


def check_not_exploding(mean_loss: float, num_classes: int, where: str, fix: str,
                        factor: float = 10.0) -> None:
    """``DivergenceError`` when a classifier's mean cross-entropy over an epoch exceeds
    ``factor`` × the loss of a uniform guess (ln C): finite, but no longer learning."""
    chance = math.log(max(num_classes, 2))
    if mean_loss > factor * chance:
        raise DivergenceError(f"training diverged {where}: mean loss {mean_loss:.3g} is over "
                              f"{factor:g}× the loss of a uniform guess ({chance:.3g}); {fix}")


def config_differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    """``"lr: 0.1 → 0.2, epochs: 3 → 5"``: the keys whose values differ (or exist in one)."""
    missing = object()

    def show(v: Any) -> str:
        return "(absent)" if v is missing else repr(v)

    parts = [f"{k}: {show(old.get(k, missing))} → {show(new.get(k, missing))}"
             for k in sorted(set(old) | set(new), key=str)
             if old.get(k, missing) != new.get(k, missing)]
    return ", ".join(parts) or "(no difference)"


#: What to do with a checkpoint that cannot be read when resuming.
RESUME_FIX = "delete it to start over without --resume, or choose another --run-dir"


def resume_checkpoint(last_path: Path, resume: bool, config: dict[str, Any], *,
                      keys: Iterable[str], map_location: Any = "cpu") -> dict[str, Any] | None:
    """The checkpoint ``last_path`` a run continues from (``resume``), or ``None`` for a
    fresh run; never a checkpoint of another configuration.

    ``resume`` without a checkpoint is a :class:`FileNotFoundError`, a checkpoint whose
    ``config`` differs from ``config`` a :class:`ValueError` naming the differing options,
    and a fresh run into a folder that already holds a checkpoint a :class:`FileExistsError`.
    """
    if not resume:
        if last_path.exists():
            raise FileExistsError(f"{last_path.parent} already holds a run; pass --resume to "
                                  f"continue it or choose another --run-dir")
        return None
    if not last_path.exists():
        raise FileNotFoundError(f"--resume: no checkpoint at {last_path}; start without --resume")
    state = read_torch(last_path, RESUME_FIX, keys=keys, map_location=map_location)
    if state["config"] != config:
        raise ValueError(f"--resume: {last_path} was written by a different configuration "
                         f"({config_differences(state['config'], config)}); "
                         f"resume with the same options or choose another --run-dir")
    return state
