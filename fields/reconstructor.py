"""A Voronoi-CNN with the input and output conventions of its variant (:class:`Reconstructor`).

The network reads the Voronoi inputs of a sensor layout (``fields.voronoi``) and predicts the
field either as an anomaly from the training-mean field in units of its standard deviation
(``target='anomaly'``) or in the paper's raw convention (physical units for the faithful
inputs, the [−1, 1] scaling for the improved ones).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from fields.field_data import FieldData
from fields.voronoi import INPUT_SPECS, Layout, MinMaxScaler, SensorGrid
from fields.voronoi_cnn import VoronoiCNN, relative_l2, rmse

if TYPE_CHECKING:
    from fields.train import FieldTrainConfig

TARGETS = ("anomaly", "raw")


class Reconstructor:
    """A network plus the input/output conventions of its variant.

    ``mean``/``std``: training-mean field ``(H, W)`` and the standard deviation of the
    anomalies about it over valid cells (used by the ``'anomaly'`` target).
    """

    def __init__(self, cfg: FieldTrainConfig, grid: SensorGrid, scaler: MinMaxScaler,
                 spherical: bool, mean: np.ndarray, std: float) -> None:
        if cfg.target not in TARGETS:
            raise ValueError(f"unknown target {cfg.target!r}; choose one of {TARGETS}")
        out_k = cfg.out_kernel or (7 if spherical else 3)
        self.cfg, self.grid, self.scaler = cfg, grid, scaler
        self.device = torch.device(cfg.device)
        self.net = VoronoiCNN(INPUT_SPECS[cfg.inputs].channels(spherical), cfg.width, cfg.depth,
                              cfg.kernel, out_k, cfg.norm).to(self.device)
        if cfg.target == "anomaly":  # the untrained network predicts the mean field
            last = self.net.net[-1]
            torch.nn.init.zeros_(last.weight)
            torch.nn.init.zeros_(last.bias)
        self.valid = grid.valid.to(self.device)
        self.weight = grid.weight.to(self.device) if spherical else None
        self.mean = torch.as_tensor(np.asarray(mean, dtype=np.float32), device=self.device)
        self.std = float(std)

    @classmethod
    def from_training(cls, cfg: FieldTrainConfig, grid: SensorGrid, tr: FieldData,
                      spherical: bool) -> Reconstructor:
        """Fit the scaler, mean field and anomaly std on the training block ``tr``."""
        mean = np.where(grid.valid_np, tr.values.mean(0), 0).astype(np.float32)
        std = float((tr.values - mean)[:, grid.valid_np].std()) or 1.0
        return cls(cfg, grid, MinMaxScaler.fit(tr), spherical, mean, std)

    def target(self, values: torch.Tensor) -> torch.Tensor:
        """Training target: anomaly / std, or (raw) physical units (faithful) or [−1, 1]."""
        if self.cfg.target == "anomaly":
            return (values - self.mean) / self.std
        return self.scaler.forward(values) if INPUT_SPECS[self.cfg.inputs].scaled else values

    def output(self, out: torch.Tensor) -> torch.Tensor:
        """Network output → physical units."""
        if self.cfg.target == "anomaly":
            return out * self.std + self.mean
        return self.scaler.inverse(out) if INPUT_SPECS[self.cfg.inputs].scaled else out

    def predict(self, values: torch.Tensor, layouts: Layout | list[Layout]) -> torch.Tensor:
        """Reconstruction in physical units from the sensor readings of ``values``."""
        return self.output(self.net(self.grid.inputs(values, layouts, self.cfg.inputs,
                                                     self.scaler)))

    def state(self) -> dict[str, Any]:
        """What a checkpoint needs besides the weights to rebuild this reconstructor."""
        return {"scaler": (self.scaler.lo, self.scaler.hi), "mean": self.mean.cpu(),
                "std": self.std}

    @torch.no_grad()
    def evaluate(self, data: FieldData, layouts: list[Layout]) -> dict[str, float]:
        self.net.eval()
        x = torch.from_numpy(data.values).to(self.device)
        rel, err = [], []
        for lay in layouts:
            for i in range(0, len(x), self.cfg.batch_size):
                xb = x[i:i + self.cfg.batch_size]
                pred = self.predict(xb, lay)
                rel.append(relative_l2(pred, xb, self.valid, self.weight))
                err.append(rmse(pred, xb, self.valid, self.weight))
        r, e = torch.cat(rel), torch.cat(err)
        per_layout = r.view(len(layouts), -1).mean(1)
        return {"rel_l2": r.mean().item(), "rmse": e.mean().item(),
                "rel_l2_layout_std": per_layout.std().item() if len(layouts) > 1 else 0.0}
