"""The shallow decoder (Erichson et al. 2020, Proc. R. Soc. A 476): an MLP from the K sensor
readings of a fixed layout to the whole field.

Here its output is a linear path plus an MLP: the linear path starts at the ridge regression
from (noisy, partly failed) readings to the field fitted on the training block with its ridge
λ chosen on validation, the MLP's last layer starts at zero. Training adds the condition's
noise and sensor failures to every batch (a failed reading is replaced by the training mean of
its sensor); the best epoch on validation is kept, epoch 0 (the ridge map) included, so the
decoder is never worse on validation than the linear estimator it starts from.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from fields.regimes.early_stop import BestOnValidation
from fields.regimes.evaluate import Measured, score
from fields.regimes.noise import Condition

RIDGE_LAMS = (1e-8, 1e-6, 1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)


@dataclass
class ShallowConfig:
    hidden: tuple[int, ...] = (128, 128)
    epochs: int = 40
    steps_per_epoch: int = 50
    batch_size: int = 64
    lr: float = 1e-3
    patience: int = 8
    copies: int = 4  # noisy copies of the training readings for the ridge fit
    seed: int = 0


class ShallowDecoder(nn.Module):
    """Linear path + MLP from ``k`` standardised readings to ``n_out`` standardised cells."""

    def __init__(self, k: int, n_out: int, hidden: tuple[int, ...] = (128, 128)) -> None:
        super().__init__()
        self.linear = nn.Linear(k, n_out)
        layers: list[nn.Module] = []
        c = k
        for h in hidden:
            layers += [nn.Linear(c, h), nn.ReLU()]
            c = h
        last = nn.Linear(c, n_out)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.mlp = nn.Sequential(*layers, last)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.linear(z) + self.mlp(z)


class ShallowReconstructor:
    """A shallow decoder on one fixed layout, with its standardisation; see :meth:`predict`."""

    def __init__(self, sensors: np.ndarray, train: np.ndarray, valid: np.ndarray,
                 hidden: tuple[int, ...]) -> None:
        self.sensors = np.asarray(sensors, dtype=np.int64)
        self.shape = train.shape[1:]
        self.cells = np.flatnonzero(valid.reshape(-1))
        flat = train.reshape(len(train), -1).astype(np.float64)
        self.mean = flat.mean(0)
        self.sigma = float((flat[:, self.cells] - self.mean[self.cells]).std()) or 1.0
        self.net = ShallowDecoder(len(self.sensors), len(self.cells), hidden)
        self.ridge_state: dict[str, Any] | None = None

    def standard_inputs(self, measured: np.ndarray, working: np.ndarray) -> np.ndarray:
        """``(B, K)`` standardised readings; failed sensors read 0 (their training mean)."""
        pos = np.searchsorted(self.sensors, working)
        if (pos >= len(self.sensors)).any() or (self.sensors[np.minimum(
                pos, len(self.sensors) - 1)] != working).any():
            raise ValueError("a working sensor is not part of this decoder's layout")
        z = np.zeros((len(measured), len(self.sensors)))
        flat = measured.reshape(len(measured), -1)
        z[:, pos] = (flat[:, working] - self.mean[working]) / self.sigma
        return z

    def targets(self, values: np.ndarray) -> np.ndarray:
        flat = values.reshape(len(values), -1)[:, self.cells]
        return (flat - self.mean[self.cells]) / self.sigma

    @torch.no_grad()
    def predict(self, measured: np.ndarray, working: np.ndarray) -> np.ndarray:
        z = torch.from_numpy(self.standard_inputs(measured, working).astype(np.float32))
        out = self.net(z).double().numpy() * self.sigma + self.mean[self.cells]
        full = np.zeros((len(measured), int(np.prod(self.shape))), dtype=np.float32)
        full[:, self.cells] = out
        return full.reshape(len(measured), *self.shape)


def corrupt(z: np.ndarray, cond: Condition, rng: np.random.Generator) -> np.ndarray:
    """Standardised readings under ``cond``: noise (std ``cond.noise`` in these units, as the
    field std is the unit) and each sensor failed with probability ``cond.drop``."""
    z = z + rng.standard_normal(z.shape) * cond.noise
    if cond.drop:
        z = np.where(rng.random(z.shape) < cond.drop, 0.0, z)
    return z


def _ridge(z: np.ndarray, t: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    zm, tm = z.mean(0), t.mean(0)
    zc = z - zm
    w = np.linalg.solve(zc.T @ zc + lam * len(z) * np.eye(z.shape[1]), zc.T @ (t - tm))
    return w, tm - zm @ w


def fit_shallow(sensors: np.ndarray, train: np.ndarray, val_sets: list[Measured],
                valid: np.ndarray, cond: Condition, cfg: ShallowConfig,
                weight: np.ndarray | None = None) -> tuple[ShallowReconstructor, dict[str, Any]]:
    """Fit the decoder of layout ``sensors`` on ``train`` ``(T, H, W)`` for condition ``cond``;
    ``val_sets``: the validation block measured under ``cond`` on this layout."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng([cfg.seed, 7])
    rec = ShallowReconstructor(sensors, train, valid, cfg.hidden)
    z0 = (train.reshape(len(train), -1)[:, rec.sensors] - rec.mean[rec.sensors]) / rec.sigma
    t = rec.targets(train)
    copies = cfg.copies if (cond.noise or cond.drop) else 1
    z_aug = np.concatenate([corrupt(z0, cond, rng) if copies > 1 else z0 for _ in range(copies)])
    t_aug = np.concatenate([t] * copies)
    best = (np.inf, 0.0)
    for lam in RIDGE_LAMS:
        w, b = _ridge(z_aug, t_aug, lam)
        _set_linear(rec.net, w, b)
        e = score(rec.predict, val_sets, valid, weight)
        if e < best[0]:
            best = (e, lam)
    _set_linear(rec.net, *_ridge(z_aug, t_aug, best[1]))
    rec.ridge_state = copy.deepcopy(rec.net.state_dict())  # the linear estimator alone
    tracker = BestOnValidation(rec.net, best[0], cfg.patience)
    opt = torch.optim.Adam(rec.net.parameters(), lr=cfg.lr)
    tt = torch.from_numpy(t.astype(np.float32))
    for epoch in range(1, cfg.epochs + 1):
        rec.net.train()
        for _ in range(cfg.steps_per_epoch):
            idx = rng.integers(len(train), size=cfg.batch_size)
            zb = torch.from_numpy(corrupt(z0[idx], cond, rng).astype(np.float32))
            loss = ((rec.net(zb) - tt[idx]) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        rec.net.eval()
        if tracker.update(epoch, score(rec.predict, val_sets, valid, weight)):
            break
    info = tracker.restore()
    return rec, {**info, "ridge_lam": best[1]}


def _set_linear(net: ShallowDecoder, w: np.ndarray, b: np.ndarray) -> None:
    with torch.no_grad():
        net.linear.weight.copy_(torch.from_numpy(w.T.astype(np.float32)))
        net.linear.bias.copy_(torch.from_numpy(b.astype(np.float32)))
