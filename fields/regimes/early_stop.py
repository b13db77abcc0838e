"""Best-on-validation bookkeeping shared by the learned reconstructors' training loops."""

from __future__ import annotations

import copy
from typing import Any

from torch import nn


class BestOnValidation:
    """Keeps the epoch and weights of the lowest validation error seen so far (epoch 0: the
    starting point), counts epochs without improvement, and decays a learning-rate scale
    every ``lr_patience`` of them.

    Args:
        net: the network whose weights are kept.
        first: the validation error at epoch 0.
        patience: stop after this many epochs without improvement.
        lr_patience, lr_decay: multiply :attr:`lr_scale` by ``lr_decay`` after every
            ``lr_patience`` epochs without improvement (0: never).
    """

    def __init__(self, net: nn.Module, first: float, patience: int, lr_patience: int = 0,
                 lr_decay: float = 1.0) -> None:
        self.net, self.patience = net, patience
        self.lr_patience, self.lr_decay, self.lr_scale = lr_patience, lr_decay, 1.0
        self.best, self.epoch, self.bad = first, 0, 0
        self.weights = copy.deepcopy(net.state_dict())
        self.history = [first]

    def update(self, epoch: int, error: float) -> bool:
        """Record ``error`` at ``epoch``; ``True`` when training should stop."""
        self.history.append(error)
        if error < self.best:
            self.best, self.epoch, self.bad = error, epoch, 0
            self.weights = copy.deepcopy(self.net.state_dict())
            return False
        self.bad += 1
        if self.lr_patience and self.bad % self.lr_patience == 0:
            self.lr_scale *= self.lr_decay
        return self.bad >= self.patience

    def restore(self) -> dict[str, Any]:
        """Load the best weights; the run's summary (best epoch, epochs run, best error and
        the validation history)."""
        self.net.load_state_dict(self.weights)
        return {"best_epoch": self.epoch, "epochs_run": len(self.history) - 1,
                "best_val_rel_l2": self.best,
                "val_history": [round(v, 6) for v in self.history]}
