"""``deploygym/SensorPlacement-v0``: place K sensors so a Voronoi-CNN reconstructs the field."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from fields.classical.placement import qr_placement, random_placement
from fields.classical.pod import POD, GappyPODChoice, cell_weights, relative_l2_np, select_gappy_pod
from fields.figures import reconstruction_figure
from fields.load import as_field
from fields.pretrained import FieldBlocks, Pretrained, get_blocks, get_reconstructor
from fields.voronoi_cnn import relative_l2, rmse

SPLITS = ("val", "test", "train")
ESTIMATORS = ("cnn", "gappy_pod")


class SensorPlacementEnv(gym.Env):
    """Place sensors one at a time; reward = drop in a Voronoi-CNN's reconstruction error.

    ## Description
    Papers P3 (arXiv:2408.12531) and Voronoi-CNN (arXiv:2101.00554) reconstruct a whole field
    from a few point sensors. Here the agent chooses *where* the ``n_sensors`` sensors go. A
    pretrained, layout-general Voronoi-CNN (improved inputs, trained on random layouts with
    1 … 16 (cylinder) or 1 … 30 (geo fields) sensors; cached on disk under a hash of its
    config by :func:`fields.pretrained.get_reconstructor`, trained on first use with a progress
    bar) reconstructs a batch of held-out snapshots (validation block of a time-ordered split
    by default) from the sensors placed so far. With ``estimator="gappy_pod"`` the scorer is
    Tikhonov-regularised gappy POD on the training block's modes instead (no network to train;
    rank and λ chosen on validation), the classical estimator QR pivoting is designed for.

    ## Action Space
    ``Discrete(H·W)``: the flat index ``row · W + col`` of the cell of the next sensor on the
    network's grid (cylinder 28×48, COADS SST 30×60 by default). ``action_masks()`` (for
    sb3-contrib's MaskablePPO) is True on valid (fluid/ocean) cells that hold no sensor yet.
    An action outside ``[0, H·W)`` or not an integer raises ``ValueError``; a masked action
    (land, body or an occupied cell) is moved to the nearest free valid cell and counted in
    ``info["n_repaired"]``.

    ## Observation Space
    ``Box(0, 1, (2·H·W + 1,), float32)``: the sensor occupancy map (1 at sensors), the current
    mean absolute reconstruction error over the snapshot batch divided by its maximum (before
    the first sensor: the error of the training-mean field), and the fraction of sensors
    placed.

    ## Rewards
    With ``e_t`` the mean relative L2 error over the batch after ``t`` sensors and ``e_0`` the
    error of the training-mean field (the no-sensor baseline): ``r_t = (e_{t−1} − e_t) / e_0``.
    The episode return is ``1 − e_K / e_0``, the fraction of the mean-field error the layout
    removes (negative if the reconstruction is worse than the mean field).

    ## Starting State
    No sensor; ``batch`` snapshots drawn without replacement from ``split`` with
    ``self.np_random`` (all of them if the split is smaller). ``reset(options={"indices":
    [...], "split": "test"})`` fixes the snapshots (evaluation).

    ## Episode End
    Terminates after ``n_sensors`` placements; never truncated. ``info`` at every step holds
    ``rel_l2`` (``e_t``), ``rel_l2_mean_field`` (``e_0``), ``n_placed``, ``cell``,
    ``repaired``; at the end also ``rmse``, ``improvement`` (``1 − e_K/e_0``), ``sensors``,
    ``n_repaired``, ``rel_l2_random`` (a random layout of the same size drawn from
    ``self.np_random``) and ``rel_l2_qr`` (QR pivoting on POD modes of the training block,
    through PySensors), all three scored by the env's estimator; ``rel_l2_gappy_pod`` (the agent's
    layout) and ``rel_l2_qr_gappy_pod`` (the QR layout) scored by gappy POD, the classical
    estimator (rank and λ chosen on validation); ``beats_random``, ``beats_qr``, ``split``
    and ``indices``.

    ## Arguments
    * ``dataset`` (``"cylinder"``): ``"cylinder"``, ``"coads-sst"``, ``"navy-uwnd"`` or any
      :func:`fields.load.load_field` name (``"oisst:SST_FILE[:LSMASK_FILE]"``: NOAA OISST,
      netCDF-3 or netCDF-4).
    * ``field``: your own field instead of ``dataset``, anything
      :func:`fields.load.as_field` takes: an array ``[T, H, W]`` (NaN = invalid cell; a mask
      and lat/lon through ``as_field(values, mask=..., lat=..., lon=...)``), an xarray
      ``DataArray``, a netCDF-3/4 file ``"PATH[:VARIABLE]"`` or a
      :class:`fields.field_data.FieldData`. Its Voronoi-CNN is cached under a hash of its
      content, so two fields never share a network.
    * ``n_sensors`` (8): sensors per episode (at most the largest count the network saw).
    * ``split`` (``"val"``), ``batch`` (8): held-out snapshots scored per episode.
    * ``model``: overrides of the network's :class:`fields.train.FieldTrainConfig` (enter the
      cache key), e.g. ``{"width": 16, "epochs": 30}``; or ``pretrained=`` a
      :class:`fields.pretrained.Pretrained`.
    * ``estimator`` (``"gappy_pod"``): ``"gappy_pod"`` or ``"cnn"`` (the Voronoi-CNN); with
      gappy POD ``n_sensors`` may be any count up to the number of valid cells and ``model``
      only selects the data processing (``stride``, ``coarsen``, ``climatology``, ``split``).
    * ``device`` (``"cpu"``), ``cache_dir``, ``progress``, ``render_mode`` (``None`` or
      ``"rgb_array"``: truth, reconstruction, error and sensors of the first snapshot).

    ## Version History
    * v1: gappy POD is the default estimator (the layout-general Voronoi-CNN lost to it on
      random layouts by a wide margin, so rewards scored by it misled the agent);
      ``SensorPlacementGappyPOD-v0`` is now ``SensorPlacement-v1``.
    * v0: the Voronoi-CNN scores each layout (``estimator="cnn"``).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 2}

    def __init__(self, dataset: str = "cylinder", n_sensors: int = 8, split: str = "val",
                 batch: int = 8, model: dict[str, Any] | None = None,
                 pretrained: Pretrained | FieldBlocks | None = None, device: str = "cpu",
                 cache_dir: str | None = None, progress: bool = True,
                 render_mode: str | None = None, estimator: str = "gappy_pod",
                 field: Any = None) -> None:
        data = None
        if field is not None:
            if pretrained is not None:
                raise ValueError("pass field= or pretrained=, not both")
            data = as_field(field)
            dataset = data.name
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if int(batch) < 1:
            raise ValueError(f"batch must be ≥ 1, got {batch}")
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
        self.estimator = estimator
        if estimator == "cnn":
            self.pre = pretrained or get_reconstructor(dataset, device=device,
                                                       cache_root=cache_dir, progress=progress,
                                                       data=data, **(model or {}))
            if self.pre.rec is None:
                raise ValueError("estimator='cnn' needs a Pretrained network, not FieldBlocks")
            max_k = max(self.pre.cfg.sensors)
        else:
            self.pre = pretrained or get_blocks(dataset, data=data, progress=progress,
                                                **(model or {}))
            max_k = int(self.pre.grid.valid_np.sum())
        if not 1 <= int(n_sensors) <= max_k:
            raise ValueError(f"n_sensors must be in [1, {max_k}] (the counts the network was "
                             f"trained on); got {n_sensors}. Pass model={{'sensors': [...]}} to "
                             f"train a network for more.")
        self.n_sensors, self.split, self.batch = int(n_sensors), split, int(batch)
        self.render_mode = render_mode
        self.rec, self.grid = self.pre.rec, self.pre.grid
        self.device = self.rec.device if self.rec is not None else torch.device("cpu")
        self._valid = self.grid.valid.to(self.device)
        self._area = self.grid.weight.to(self.device) if self.pre.data.spherical else None
        h, w = self.grid.shape
        self.n_cells = h * w
        self.valid_flat = self.grid.valid_np.reshape(-1)
        if self.valid_flat.sum() < self.n_sensors:
            raise ValueError(f"the grid has {self.valid_flat.sum()} valid cells, fewer than "
                             f"n_sensors={self.n_sensors}")
        self.action_space = spaces.Discrete(self.n_cells)
        self.observation_space = spaces.Box(0.0, 1.0, (2 * self.n_cells + 1,), dtype=np.float32)
        self._cell_yx = np.stack(np.unravel_index(np.arange(self.n_cells), (h, w)), axis=1)
        self._pod = POD(self.pre.train, self.grid.valid_np)
        self._qr = qr_placement(self._pod, self.grid.valid_np, self.n_sensors)
        self._gappy_choice: GappyPODChoice | None = None
        if self.rec is not None:
            self._mean = self.rec.mean
        else:
            mean = np.zeros(self.n_cells, dtype=np.float32)
            mean[self._pod.cells] = self._pod.mean
            self._mean = torch.from_numpy(mean.reshape(h, w)).to(self.device)
        self._needs_reset = True

    # ----------------------------------------------------------------------------- core
    def _block(self, split: str):
        return {"train": self.pre.train, "val": self.pre.val, "test": self.pre.test}[split]

    @torch.no_grad()
    def _score(self, sensors: np.ndarray) -> tuple[float, float, torch.Tensor]:
        """Mean rel. L2 and RMSE over the batch, and the reconstructions."""
        if len(sensors) == 0:
            pred = self._mean.expand_as(self._x)
        elif self.estimator == "cnn":
            pred = self.rec.predict(self._x, self.grid.layout(np.sort(sensors)))
        else:
            c = self.gappy_pod_choice()
            pred = torch.from_numpy(self._pod.gappy(self._x.cpu().numpy(), np.asarray(sensors),
                                                    c.rank, c.lam)).to(self.device)
        return (relative_l2(pred, self._x, self._valid, self._area).mean().item(),
                rmse(pred, self._x, self._valid, self._area).mean().item(), pred)

    def gappy_pod_choice(self) -> GappyPODChoice:
        """Gappy POD's rank and λ for ``n_sensors``, chosen once on the validation block with
        random layouts (a stream of its own, seed 0)."""
        if self._gappy_choice is None:
            rng = np.random.default_rng([0, 11, self.n_sensors])
            lays = [random_placement(self.grid.valid_np, self.n_sensors, rng) for _ in range(5)]
            self._gappy_choice = select_gappy_pod(self._pod, self.pre.val, lays,
                                                  self.grid.valid_np, self._weight())
        return self._gappy_choice

    def _weight(self) -> np.ndarray | None:
        return cell_weights(self.pre.data) if self.pre.data.spherical else None

    def gappy_pod_error(self, sensors: np.ndarray) -> float:
        """Mean relative L2 of gappy POD with layout ``sensors`` on the episode's snapshots."""
        c = self.gappy_pod_choice()
        x = self._x.cpu().numpy()
        pred = self._pod.gappy(x, np.asarray(sensors), c.rank, c.lam)
        return float(relative_l2_np(pred, x, self.grid.valid_np, self._weight()).mean())

    def _obs(self) -> np.ndarray:
        occ = np.zeros(self.n_cells, dtype=np.float32)
        occ[self.sensors] = 1.0
        err = ((self._pred - self._x).abs().mean(0) * self._valid).reshape(-1).cpu().numpy()
        err = err / max(float(err.max()), 1e-12)
        frac = np.array([len(self.sensors) / self.n_sensors], dtype=np.float32)
        return np.concatenate([occ, err.astype(np.float32), frac])

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        split = options.pop("split", self.split)
        if split not in SPLITS:
            raise ValueError(f"options['split'] must be one of {SPLITS}, got {split!r}")
        block = self._block(split)
        if "indices" in options:
            idx = np.asarray(options.pop("indices"), dtype=np.int64).reshape(-1)
            if len(idx) == 0 or idx.min() < 0 or idx.max() >= len(block):
                raise ValueError(f"options['indices'] must be non-empty indices into the "
                                 f"{split} block of {len(block)} snapshots")
        else:
            idx = np.sort(self.np_random.choice(len(block), size=min(self.batch, len(block)),
                                                replace=False))
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; use 'split', 'indices'")
        self._split, self._idx = split, idx
        self._x = torch.from_numpy(block.values[idx]).to(self.device)
        self.sensors: list[int] = []
        self.n_repaired = 0
        self._e0, self._rmse0, self._pred = self._score(np.array([], dtype=np.int64))
        self._e = self._e0
        self._needs_reset = False
        self._last_info = {"rel_l2": self._e0, "rel_l2_mean_field": self._e0, "n_placed": 0,
                           "split": split, "indices": idx.copy()}
        return self._obs(), dict(self._last_info)

    def _repair(self, cell: int) -> int:
        free = self.action_masks()
        if free[cell]:
            return cell
        cand = np.flatnonzero(free)
        d = ((self._cell_yx[cand] - self._cell_yx[cell]) ** 2).sum(1)
        return int(cand[np.argmin(d)])

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError("call reset() before step() (and after an episode ends)")
        a = np.asarray(action)
        if a.size != 1 or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"action must be one integer cell index, got {action!r}")
        cell = int(a.reshape(-1)[0])
        if not 0 <= cell < self.n_cells:
            raise ValueError(f"action {cell} is outside [0, {self.n_cells}) (grid "
                             f"{self.grid.shape[0]}×{self.grid.shape[1]})")
        placed = self._repair(cell)
        repaired = placed != cell
        self.n_repaired += int(repaired)
        self.sensors.append(placed)
        e_prev = self._e
        self._e, err_rmse, self._pred = self._score(np.array(self.sensors))
        reward = (e_prev - self._e) / max(self._e0, 1e-12)
        done = len(self.sensors) == self.n_sensors
        info: dict[str, Any] = {"rel_l2": self._e, "rel_l2_mean_field": self._e0,
                                "n_placed": len(self.sensors), "cell": placed,
                                "repaired": repaired}
        if done:
            e_rand = self._score(random_placement(self.grid.valid_np, self.n_sensors,
                                                  self.np_random))[0]
            e_qr = self._score(self._qr)[0]
            info |= {"rmse": err_rmse, "improvement": 1 - self._e / max(self._e0, 1e-12),
                     "sensors": np.array(self.sensors), "n_repaired": self.n_repaired,
                     "rel_l2_random": e_rand, "rel_l2_qr": e_qr,
                     "rel_l2_gappy_pod": self.gappy_pod_error(np.array(self.sensors)),
                     "rel_l2_qr_gappy_pod": self.gappy_pod_error(self._qr),
                     "beats_random": float(self._e < e_rand), "beats_qr": float(self._e < e_qr),
                     "split": self._split, "indices": self._idx.copy()}
        self._needs_reset = done
        self._last_info = info
        return self._obs(), float(reward), done, False, info

    def action_masks(self) -> np.ndarray:
        """True on valid cells without a sensor (sb3-contrib MaskablePPO)."""
        m = self.valid_flat.copy()
        m[list(getattr(self, "sensors", []))] = False
        return m

    def qr_layout(self) -> np.ndarray:
        """The QR-pivoting layout of ``n_sensors`` sensors (flat cell indices)."""
        return self._qr.copy()

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        if not hasattr(self, "_x"):
            raise RuntimeError("call reset() before render()")
        truth = self._x[0].cpu().numpy()
        recon = self._pred[0].cpu().numpy()
        return reconstruction_figure(
            truth, recon, self.grid.valid_np, np.array(self.sensors, dtype=np.int64),
            title=f"{self.pre.cfg.dataset}: {len(self.sensors)}/{self.n_sensors} sensors, "
                  f"rel L2 {self._e:.4f} (mean field {self._e0:.4f})")
