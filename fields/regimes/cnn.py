"""A Voronoi-CNN (:class:`fields.reconstructor.Reconstructor`) trained for noisy, failing sensors.

Every training sample draws a condition from the evaluation grid: Gaussian noise of that level
on the readings and, for conditions with failures, one of several pre-built variants of its
layout with that fraction of sensors removed (the Voronoi image is then built from the working
sensors, as at test time). Validation is the mean relative L2 over the validation sets of every
condition; the best epoch (epoch 0 = the mean field, as the output layer starts at zero) is
kept, with early stopping and a reduce-on-plateau learning rate.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from fields.field_data import FieldData
from fields.reconstructor import Reconstructor
from fields.regimes.early_stop import BestOnValidation
from fields.regimes.evaluate import Measured, Predictor, score
from fields.regimes.noise import Condition, working_sensors
from fields.train import FieldTrainConfig
from fields.voronoi import Layout, SensorGrid
from fields.voronoi_cnn import masked_mse
from models.guards import check_loss

DROP_VARIANTS = 8  # failed-sensor variants pre-built per training layout and failure rate


def cnn_predictor(rec: Reconstructor, batch: int = 64) -> Predictor:
    """The network as a predictor of measured fields (Voronoi map of the working sensors)."""
    @torch.no_grad()
    def predict(measured: np.ndarray, working: np.ndarray) -> np.ndarray:
        rec.net.eval()
        lay = rec.grid.layout(np.sort(working))
        x = torch.from_numpy(measured).to(rec.device)
        out = [rec.predict(x[i:i + batch], lay).cpu().numpy() for i in range(0, len(x), batch)]
        return np.concatenate(out)

    return predict


def _variants(grid: SensorGrid, pool: list[np.ndarray], conditions: list[Condition],
              seed: int) -> dict[float, list[list[Layout]]]:
    """Per failure rate: for every pool layout, its layouts with that fraction failed."""
    rng = np.random.default_rng([seed, 11])
    out: dict[float, list[list[Layout]]] = {0.0: [[grid.layout(np.sort(s))] for s in pool]}
    for drop in sorted({c.drop for c in conditions if c.drop}):
        out[drop] = [[grid.layout(np.sort(working_sensors(s, drop, rng)))
                      for _ in range(DROP_VARIANTS)] for s in pool]
    return out


def fit_cnn(cfg: FieldTrainConfig, grid: SensorGrid, tr: FieldData, pool: list[np.ndarray],
            val_sets: list[Measured], conditions: list[Condition], sigma: float,
            spherical: bool) -> tuple[Reconstructor, dict[str, Any]]:
    """Train on ``tr`` with layouts from ``pool`` under the ``conditions``; ``sigma``: the
    field std that noise levels multiply."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng([cfg.seed, 13])
    rec = Reconstructor.from_training(cfg, grid, tr, spherical)
    layouts = _variants(grid, pool, conditions, cfg.seed)
    opt = torch.optim.Adam(rec.net.parameters(), lr=cfg.lr)
    x_train = torch.from_numpy(tr.values).to(rec.device)
    valid, weight = grid.valid_np, (grid.cell_weight.reshape(grid.shape) if spherical else None)
    predict = cnn_predictor(rec)
    best = BestOnValidation(rec.net, score(predict, val_sets, valid, weight), cfg.patience,
                            cfg.lr_patience, cfg.lr_decay)
    updates, t0 = 0, time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        rec.net.train()
        for _ in range(cfg.steps_per_epoch):
            idx = rng.integers(len(tr), size=cfg.batch_size)
            conds = [conditions[j] for j in rng.integers(len(conditions), size=len(idx))]
            lays = [layouts[c.drop][j][rng.integers(len(layouts[c.drop][j]))]
                    for c, j in zip(conds, rng.integers(len(pool), size=len(idx)), strict=True)]
            xb = x_train[torch.from_numpy(idx).to(rec.device)]
            level = torch.tensor([c.noise * sigma for c in conds], dtype=xb.dtype,
                                 device=rec.device).view(-1, 1, 1)
            noisy = xb + level * torch.randn_like(xb)  # only the sensor cells are read
            loss = masked_mse(rec.net(grid.inputs(noisy, lays, cfg.inputs, rec.scaler)),
                              rec.target(xb), rec.valid, rec.weight)
            check_loss(loss, f"at epoch {epoch}", "lower the learning rate")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            warm = min(1.0, (updates + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
            for g in opt.param_groups:
                g["lr"] = cfg.lr * warm * best.lr_scale
            opt.step()
            updates += 1
        if best.update(epoch, score(predict, val_sets, valid, weight)):
            break
    info = best.restore()
    return rec, {**info, "updates": updates, "train_time_s": time.perf_counter() - t0,
                 "stopped_early": info["epochs_run"] < cfg.epochs}


def epochs_note(info: dict[str, Any]) -> str:
    """'best epoch 23 of 31 (early stop)' style note for a run."""
    how = "early stop" if info.get("stopped_early") else "epoch budget reached"
    return f"best epoch {info['best_epoch']} of {info['epochs_run']} ({how})"



