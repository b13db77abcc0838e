"""Voronoi-CNN inputs: nearest-sensor image, sensor mask, distance transform, land mask.

For a fixed sensor layout the nearest-sensor map is computed once with a k-d tree (on 3-D unit
vectors for latitude/longitude grids, so distances are great-circle distances and longitude
wraps around) and stored as the flat index of each cell's nearest sensor. Whole batches, even
with a different layout per sample, then cost a single ``gather``.

Input variants (channels), the three changes of arXiv:2408.12531 switched on one at a time:

* ``'faithful'`` (Voronoi-CNN, arXiv:2101.00554): Voronoi image in physical units with 0 on
  land, binary sensor mask.
* ``'distance'``: + distance transform (distance to the nearest sensor over ``dist_scale``,
  clipped to [0, 1]; great-circle distance with the longitude wrap on lat/lon grids).
* ``'scaled'``: the Voronoi image (and the distance, when present) scaled to [−1, 1].
* ``'land'``: + a separate land-mask channel (1 = land/body).
* ``'improved'``: all three.
* ``'improved_xy'`` (deploygym's, not P3's): ``'improved'`` plus position channels, (y, x)
  scaled to [−1, 1] on planar grids, (sin lat, cos lon, sin lon) on lat/lon grids. A
  convolution is translation-equivariant, so without them a reading means the same wherever
  its sensor sits, which is wrong for a wake behind a fixed body or a field on the globe.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree

from fields.field_data import FieldData

EARTH_RADIUS_KM = 6371.0


@dataclass(frozen=True)
class InputSpec:
    """Which of P3's three input changes a variant uses."""

    distance: bool = False
    scaled: bool = False
    land: bool = False
    position: bool = False

    def channels(self, spherical: bool = False) -> int:
        return 2 + self.distance + self.land + (3 if spherical else 2) * self.position


INPUT_SPECS: dict[str, InputSpec] = {
    "faithful": InputSpec(),
    "distance": InputSpec(distance=True),
    "scaled": InputSpec(scaled=True),
    "land": InputSpec(land=True),
    "improved": InputSpec(distance=True, scaled=True, land=True),
    "improved_xy": InputSpec(distance=True, scaled=True, land=True, position=True),
}
INPUT_KINDS = tuple(INPUT_SPECS)
IN_CHANNELS = {k: spec.channels() for k, spec in INPUT_SPECS.items()}  # planar grids


def haversine_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray,
                 lon2: np.ndarray) -> np.ndarray:
    """Great-circle distance in km between points given in degrees."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2) - np.radians(lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


@dataclass
class Layout:
    """A sensor layout with its precomputed nearest-sensor map on the grid."""

    sensors: np.ndarray  # (K,) flat cell indices
    source: torch.Tensor  # (H*W,) int64: flat index of each cell's nearest sensor
    distance: torch.Tensor  # (H, W) float32: km on the sphere, cells on a plane
    mask: torch.Tensor  # (H, W) float32: 1 at sensors

    @property
    def k(self) -> int:
        return len(self.sensors)


class MinMaxScaler:
    """Affine map of ``[lo, hi]`` onto ``[−1, 1]`` (fitted on valid training values)."""

    def __init__(self, lo: float, hi: float) -> None:
        if not hi > lo:
            raise ValueError(f"cannot scale a constant field (min {lo} = max {hi})")
        self.lo, self.hi = float(lo), float(hi)

    @classmethod
    def fit(cls, data: FieldData) -> MinMaxScaler:
        v = data.values[data.mask]
        return cls(float(v.min()), float(v.max()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.lo) * (2.0 / (self.hi - self.lo)) - 1.0

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return (y + 1.0) * ((self.hi - self.lo) / 2.0) + self.lo


class SensorGrid:
    """Cell geometry and static valid mask of a field; builds layouts and network inputs."""

    def __init__(self, shape: tuple[int, int], valid: np.ndarray, *, spherical: bool,
                 lat: np.ndarray | None = None, lon: np.ndarray | None = None,
                 dist_scale: float | None = None) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        h, w = self.shape
        self.spherical = spherical
        self.valid_np = np.asarray(valid, dtype=bool).reshape(h, w)
        if not self.valid_np.any():
            raise ValueError("the grid has no valid cell to place a sensor on")
        self.valid = torch.from_numpy(self.valid_np.copy())
        if spherical:
            if lat is None or lon is None:
                raise ValueError("a spherical grid needs lat and lon")
            la, lo = np.meshgrid(np.radians(lat), np.radians(lon), indexing="ij")
            self.points = np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo),
                                    np.sin(la)], axis=-1).reshape(-1, 3)
            self.lat, self.lon = np.asarray(lat), np.asarray(lon)
            self.cell_weight = np.cos(la).reshape(-1)  # cell area ∝ cos(lat)
            self.dist_scale = dist_scale or EARTH_RADIUS_KM * np.pi / 4
        else:
            yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
            self.points = np.stack([yy, xx], axis=-1).reshape(-1, 2).astype(np.float64)
            self.cell_weight = np.ones(h * w)
            self.dist_scale = dist_scale or max(h, w) / 4
        self.cell_weight = np.clip(self.cell_weight, 1e-6, None)
        self.weight = torch.from_numpy(self.cell_weight.reshape(h, w).astype(np.float32))
        if spherical:
            pos = [np.sin(la), np.cos(lo), np.sin(lo)]
        else:
            pos = [yy / max(h - 1, 1) * 2 - 1, xx / max(w - 1, 1) * 2 - 1]
        self.position = [torch.from_numpy(np.asarray(c, dtype=np.float32)) for c in pos]
        self._valid_idx = np.flatnonzero(self.valid_np.reshape(-1))

    @classmethod
    def from_field(cls, data: FieldData, dist_scale: float | None = None) -> SensorGrid:
        if data.spherical:
            return cls(data.shape, data.valid, spherical=True, lat=data.coords["lat"],
                       lon=data.coords["lon"], dist_scale=dist_scale)
        return cls(data.shape, data.valid, spherical=False, dist_scale=dist_scale)

    def layout(self, sensors: np.ndarray) -> Layout:
        """Precompute the nearest-sensor map of ``sensors`` (flat cell indices)."""
        sensors = np.asarray(sensors, dtype=np.int64).reshape(-1)
        h, w = self.shape
        if len(sensors) == 0 or len(np.unique(sensors)) != len(sensors):
            raise ValueError("a layout needs at least one sensor and no duplicate cells")
        if sensors.min() < 0 or sensors.max() >= h * w:
            raise ValueError(f"sensor indices must lie in [0, {h * w})")
        if not self.valid_np.reshape(-1)[sensors].all():
            raise ValueError("a sensor sits on an invalid (land/body) cell")
        dist, nearest = cKDTree(self.points[sensors]).query(self.points, k=1)
        if self.spherical:  # chord length on the unit sphere → great-circle distance
            dist = 2 * EARTH_RADIUS_KM * np.arcsin(np.clip(dist / 2, 0, 1))
        mask = np.zeros(h * w, dtype=np.float32)
        mask[sensors] = 1
        return Layout(sensors=sensors, source=torch.from_numpy(sensors[nearest]),
                      distance=torch.from_numpy(dist.reshape(h, w).astype(np.float32)),
                      mask=torch.from_numpy(mask.reshape(h, w)))

    def random_layout(self, k: int, rng: np.random.Generator) -> Layout:
        """``k`` distinct valid cells drawn with probability ∝ cell area (seeded by ``rng``)."""
        if not 0 < k <= len(self._valid_idx):
            raise ValueError(f"cannot place {k} sensors on {len(self._valid_idx)} valid cells")
        p = self.cell_weight[self._valid_idx]
        sensors = rng.choice(self._valid_idx, size=k, replace=False, p=p / p.sum())
        return self.layout(np.sort(sensors))

    def voronoi(self, values: torch.Tensor, layouts: Layout | list[Layout]) -> torch.Tensor:
        """Nearest-sensor images ``(B, H, W)`` of ``values`` ``(B, H, W)`` (one gather)."""
        b = values.shape[0]
        flat = values.reshape(b, -1)
        if isinstance(layouts, Layout):
            return flat.index_select(1, layouts.source.to(values.device)).view_as(values)
        src = self._stack(layouts, "source", b).to(values.device)
        return flat.gather(1, src).view_as(values)

    def inputs(self, values: torch.Tensor, layouts: Layout | list[Layout], kind: str,
               scaler: MinMaxScaler | None = None) -> torch.Tensor:
        """Network input ``(B, C, H, W)`` of variant ``kind`` for snapshots ``values``.

        Channel order: Voronoi image, sensor mask, [distance], [land mask].
        """
        if kind not in INPUT_SPECS:
            raise ValueError(f"unknown input kind {kind!r}; choose one of {INPUT_KINDS}")
        spec = INPUT_SPECS[kind]
        b, dev = values.shape[0], values.device
        valid = self.valid.to(dev)
        if spec.scaled:
            if scaler is None:
                raise ValueError(f"the {kind!r} inputs need a MinMaxScaler fitted on training "
                                 f"data")
            values = scaler.forward(values)
        channels = [self.voronoi(values, layouts) * valid, self._stack(layouts, "mask", b).to(dev)]
        if spec.distance:
            dist = (self._stack(layouts, "distance", b).to(dev) / self.dist_scale).clamp(max=1.0)
            channels.append(dist * 2 - 1 if spec.scaled else dist)
        if spec.land:
            channels.append((~valid).to(values.dtype).expand(b, -1, -1))
        if spec.position:
            channels += [c.to(device=dev, dtype=values.dtype).expand(b, -1, -1)
                         for c in self.position]
        return torch.stack(channels, dim=1)

    @staticmethod
    def _stack(layouts: Layout | list[Layout], attr: str, b: int) -> torch.Tensor:
        if isinstance(layouts, Layout):
            t = getattr(layouts, attr)
            return t.unsqueeze(0).expand(b, *t.shape)
        if len(layouts) != b:
            raise ValueError(f"{len(layouts)} layouts for a batch of {b}")
        return torch.stack([getattr(lay, attr) for lay in layouts])
