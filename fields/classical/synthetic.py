"""Small synthetic fields with a known POD structure, for tests and examples of the classical
estimators: smooth random modes on a grid with an invalid block (like a body or land)."""

from __future__ import annotations

import numpy as np

from fields.field_data import FieldData


def synthetic_field(t: int = 60, h: int = 6, w: int = 9, rank: int | None = None,
                    spherical: bool = False, seed: int = 0) -> FieldData:
    """``t`` snapshots on an ``h × w`` grid: a mean plus ``rank`` random smooth modes (exactly
    rank ``rank`` about its mean when given; else 12 modes plus small noise). Cells
    ``[2:4, 1:3]`` are invalid. ``spherical`` puts it on a latitude/longitude grid."""
    if h < 4 or w < 3:
        raise ValueError(f"the grid must be at least 4×3, got {h}×{w}")
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    n_modes = rank or 12
    modes = np.stack([np.sin((i + 1) * np.pi * yy + i) * np.cos((i % 3 + 1) * np.pi * xx)
                      + 0.3 * rng.normal(size=(h, w)) for i in range(n_modes)])
    amp = rng.normal(size=(t, n_modes)) * (0.8 ** np.arange(n_modes))
    values = 2.0 + np.einsum("tm,mhw->thw", amp, modes)
    if rank is None:
        values = values + 0.05 * rng.normal(size=values.shape)
    mask = np.ones((t, h, w), dtype=bool)
    mask[:, 2:4, 1:3] = False
    values = np.where(mask, values, 0).astype(np.float32)
    coords = ({"lat": np.linspace(-60, 60, h), "lon": np.linspace(0, 350, w)} if spherical
              else {"y": np.arange(h, dtype=float), "x": np.arange(w, dtype=float)})
    return FieldData("synthetic", values, mask, {**coords, "time": np.arange(t, dtype=float)},
                     "time", spherical)
