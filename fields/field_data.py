"""The container every field source returns, a user's array as one, its content hash, and
time-ordered splits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import numpy as np


@dataclass
class FieldData:
    """A stack of 2-D snapshots on a fixed grid.

    Attributes:
        name: short identifier, e.g. ``'coads-sst'``.
        values: ``(T, H, W)`` float32; invalid cells hold 0 (never NaN).
        mask: ``(T, H, W)`` bool, True where the value is valid (ocean, fluid).
        coords: coordinate axes; ``'lat'``/``'lon'`` (degrees) on spherical grids or
            ``'y'``/``'x'`` on planar ones, plus the sample axis (``'time'`` or ``'depth'``).
        sample_axis: name of the leading axis in ``coords``.
        spherical: True for latitude/longitude grids (distances on the sphere, lon wraps).
        units: physical units of ``values``.
        attrs: free-form provenance (source file, variable, time units, ...).
    """

    name: str
    values: np.ndarray
    mask: np.ndarray
    coords: dict[str, np.ndarray]
    sample_axis: str
    spherical: bool
    units: str = ""
    attrs: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.values.ndim != 3 or self.values.shape != self.mask.shape:
            raise ValueError(f"{self.name}: values {self.values.shape} and mask "
                             f"{self.mask.shape} must both be (T, H, W)")
        if not np.isfinite(self.values).all():
            raise ValueError(f"{self.name}: values contain NaN/inf; mask them instead")

    def __len__(self) -> int:
        return self.values.shape[0]

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape[1], self.values.shape[2]

    @property
    def valid(self) -> np.ndarray:
        """``(H, W)`` cells valid in every snapshot (the static land/body mask is its negation)."""
        return self.mask.all(axis=0)

    def subset(self, index: slice | np.ndarray) -> FieldData:
        coords = dict(self.coords)
        coords[self.sample_axis] = self.coords[self.sample_axis][index]
        return replace(self, values=self.values[index], mask=self.mask[index], coords=coords)

    def coarsen(self, factor: int) -> FieldData:
        """Block-average ``factor × factor`` cells; a coarse cell is valid if all its cells are.

        Trailing rows/columns that do not fill a block are dropped.
        """
        if factor == 1:
            return self
        t, h, w = self.values.shape
        hc, wc = h // factor, w // factor
        if hc < 1 or wc < 1:
            raise ValueError(f"cannot coarsen a {h}×{w} grid by {factor}")

        def blocks(a: np.ndarray) -> np.ndarray:
            return a[:, :hc * factor, :wc * factor].reshape(t, hc, factor, wc, factor)

        mask = blocks(self.mask).all(axis=(2, 4))
        values = np.where(mask, blocks(self.values).mean(axis=(2, 4)), 0).astype(np.float32)
        coords = dict(self.coords)
        for name, n in ((("lat", hc), ("lon", wc)) if self.spherical else (("y", hc), ("x", wc))):
            coords[name] = coords[name][:n * factor].reshape(n, factor).mean(1)
        return replace(self, values=values, mask=mask, coords=coords,
                       attrs=self.attrs | {"coarsened": str(factor)})

    def grid_latlon(self) -> tuple[np.ndarray, np.ndarray]:
        """``(lat, lon)`` in degrees, each ``(H, W)``; only for spherical grids."""
        if not self.spherical:
            raise ValueError(f"{self.name} is on a planar grid; it has no latitude/longitude")
        lat, lon = np.meshgrid(self.coords["lat"], self.coords["lon"], indexing="ij")
        return lat, lon


def from_array(values: np.ndarray, mask: np.ndarray | None = None, *,
               lat: np.ndarray | None = None, lon: np.ndarray | None = None,
               time: np.ndarray | None = None, name: str = "array", units: str = ""
               ) -> FieldData:
    """A :class:`FieldData` from snapshots ``values`` ``[T, H, W]``.

    Invalid cells are those where ``mask`` (``[T, H, W]`` or ``[H, W]``, True = valid) is
    False, ``values`` is NaN/inf, or a masked array is masked. With ``lat``/``lon`` (degrees,
    lengths ``H`` and ``W``) the grid is on the sphere (latitude is stored ascending); without,
    it is planar with cell-index coordinates. ``time`` (length ``T``, monotonic) defaults to
    ``0 … T−1``.
    """
    if np.ma.isMaskedArray(values):
        mask = ~np.ma.getmaskarray(values) & (True if mask is None else np.asarray(mask, bool))
        values = np.ma.getdata(values)
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 3 or min(v.shape) < 1:
        raise ValueError(f"a field must be an array [T, H, W], got shape {v.shape}")
    t, h, w = v.shape
    m = np.isfinite(v)
    if mask is not None:
        mk = np.asarray(mask, dtype=bool)
        if mk.shape not in ((h, w), (t, h, w)):
            raise ValueError(f"mask must be [H, W] = {(h, w)} or [T, H, W] = {v.shape}, got "
                             f"{mk.shape}")
        m &= np.broadcast_to(mk, v.shape)
    if not m.all(axis=0).any():
        raise ValueError(f"{name}: no cell is valid in every snapshot (check mask= and NaNs)")
    time = np.arange(t, dtype=np.float64) if time is None else np.asarray(time, np.float64)
    if time.shape != (t,):
        raise ValueError(f"time must have length T = {t}, got shape {time.shape}")
    if (lat is None) != (lon is None):
        raise ValueError("pass both lat= and lon= (a grid on the sphere) or neither (planar)")
    if lat is None:
        coords = {"time": time, "y": np.arange(h, dtype=np.float64),
                  "x": np.arange(w, dtype=np.float64)}
    else:
        la, lo = np.asarray(lat, np.float64).reshape(-1), np.asarray(lon, np.float64).reshape(-1)
        if la.shape != (h,) or lo.shape != (w,):
            raise ValueError(f"lat must have H = {h} and lon W = {w} values, got {la.shape} "
                             f"and {lo.shape}")
        if la[0] > la[-1]:  # north → south: store ascending like every other field
            la, v, m = la[::-1], v[:, ::-1], m[:, ::-1]
        coords = {"time": time, "lat": la.copy(), "lon": lo.copy()}
    return FieldData(name=name, values=np.where(m, v, 0).astype(np.float32),
                     mask=np.ascontiguousarray(m), coords=coords, sample_axis="time",
                     spherical=lat is not None, units=units)


def field_digest(data: FieldData) -> str:
    """A short sha256 of a field's content (values, mask, coordinates, grid kind), not of its
    name or provenance: two different fields under one name get different digests."""
    h = hashlib.sha256(f"{data.sample_axis}|{data.spherical}|{data.values.shape}".encode())
    h.update(np.ascontiguousarray(data.values, dtype=np.float32).tobytes())
    h.update(np.ascontiguousarray(data.mask, dtype=bool).tobytes())
    for k in sorted(data.coords):
        h.update(k.encode())
        h.update(np.ascontiguousarray(data.coords[k], dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


def split_sizes(n: int, fractions: tuple[float, ...] = (0.7, 0.15, 0.15), gap: int = 0
                ) -> tuple[int, int, int]:
    """Sizes of the train/val/test blocks of :func:`time_split` for ``n`` snapshots."""
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions {fractions} must be three non-negative numbers summing to 1")
    usable = n - 2 * gap
    n_train = int(round(fractions[0] * usable))
    n_val = int(round(fractions[1] * usable))
    n_test = usable - n_train - n_val
    if min(n_train, n_test) < 1 or (fractions[1] > 0 and n_val < 1):
        raise ValueError(f"{n} snapshots are too few for split {fractions} with gap {gap}")
    return n_train, n_val, n_test


def time_split(data: FieldData, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
               gap: int = 0) -> tuple[FieldData, FieldData, FieldData]:
    """Contiguous train/val/test blocks in sample order (never random).

    ``gap`` snapshots are dropped between consecutive blocks so that neighbouring,
    strongly correlated snapshots do not leak across the boundary.
    """
    axis = data.coords[data.sample_axis]
    if len(axis) > 1 and not (np.all(np.diff(axis) > 0) or np.all(np.diff(axis) < 0)):
        raise ValueError(f"{data.name}: the {data.sample_axis} axis is not monotonic; sort the "
                         f"snapshots before splitting")
    try:
        n_train, n_val, _ = split_sizes(len(data), fractions, gap)
    except ValueError as e:
        raise ValueError(f"{data.name}: {e}") from None
    a = n_train
    b = a + gap + n_val
    return (data.subset(slice(0, a)), data.subset(slice(a + gap, b)),
            data.subset(slice(b + gap, len(data))))


def remove_climatology(data: FieldData, period: int, n_train: int) -> FieldData:
    """Anomalies from the cycle of ``period`` snapshots (12: monthly data), fitted on the first
    ``n_train`` snapshots only (the training block), so no statistic sees val/test data.

    Snapshot ``i`` has phase ``i mod period``; each phase's climatology is the mean of the
    valid training values of that phase. Invalid cells stay 0.
    """
    if period < 2:
        raise ValueError(f"a climatology needs a period ≥ 2, got {period}")
    if n_train < period:
        raise ValueError(f"{data.name}: {n_train} training snapshots do not cover one "
                         f"{period}-snapshot cycle")
    phase = np.arange(len(data)) % period
    vals, mask = data.values[:n_train], data.mask[:n_train]
    clim = np.zeros((period, *data.shape), dtype=np.float64)
    for p in range(period):
        m = mask[phase[:n_train] == p]
        clim[p] = (vals[phase[:n_train] == p] * m).sum(0) / np.maximum(m.sum(0), 1)
    anom = np.where(data.mask, data.values - clim[phase], 0).astype(np.float32)
    return replace(data, values=anom, units=f"{data.units} anomaly".strip(),
                   attrs=data.attrs | {"climatology_period": str(period),
                                       "climatology_fit_snapshots": str(n_train)})
