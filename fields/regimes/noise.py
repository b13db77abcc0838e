"""Sensor noise and sensor failures, seeded, applied once and handed to every method alike.

A *condition* is Gaussian noise of ``noise`` × the field's standard deviation on every reading
plus a fraction ``drop`` of the layout's sensors failed (the same sensors for the whole block:
a failed sensor stays failed). :func:`measure` returns the *measured field*: the noisy readings
at the working sensors and NaN on every other cell, so a method that read anything but its
sensors would return NaN, and every method sees exactly the same numbers.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

NOISE_LEVELS = (0.0, 0.01, 0.05, 0.1)


@dataclass(frozen=True)
class Condition:
    """Sensor noise (fraction of the field std) and the fraction of failed sensors."""

    noise: float = 0.0
    drop: float = 0.0

    def __post_init__(self) -> None:
        if not (self.noise >= 0 and np.isfinite(self.noise)):
            raise ValueError(f"noise must be a finite number ≥ 0, got {self.noise}")
        if not 0 <= self.drop < 1:
            raise ValueError(f"drop must lie in [0, 1), got {self.drop}")

    @property
    def key(self) -> str:
        """``'0.05'`` for noise only, ``'0.05+drop0.25'`` with failures."""
        return f"{self.noise:g}" + (f"+drop{self.drop:g}" if self.drop else "")

    @classmethod
    def parse(cls, key: str) -> Condition:
        noise, _, drop = key.partition("+drop")
        return cls(float(noise), float(drop) if drop else 0.0)


DEFAULT_CONDITIONS = (*(Condition(n) for n in NOISE_LEVELS), Condition(0.05, 0.25))


def condition_rng(seed: int, cond: Condition, k: int, split: str, *extra: int
                  ) -> np.random.Generator:
    """The generator of one (seed, condition, sensor count, split) — independent of the
    method, so every method is handed the same noise and the same failed sensors."""
    tag = zlib.crc32(f"{cond.key}|{split}".encode())
    return np.random.default_rng([seed, tag, k, *extra])


def working_sensors(sensors: np.ndarray, drop: float, rng: np.random.Generator) -> np.ndarray:
    """The sensors left after ``round(drop·K)`` of them fail (at least one stays)."""
    sensors = np.asarray(sensors, dtype=np.int64)
    n_fail = min(int(round(drop * len(sensors))), len(sensors) - 1)
    if n_fail <= 0:
        return sensors.copy()
    failed = rng.choice(len(sensors), size=n_fail, replace=False)
    return np.delete(sensors, failed)


def measure(values: np.ndarray, sensors: np.ndarray, cond: Condition, sigma: float,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(measured, working)``: the measured field ``(B, H, W)`` float32 (noisy readings at the
    ``working`` sensors, NaN elsewhere) for snapshots ``values`` and a layout ``sensors``.

    ``sigma``: the field's standard deviation; the noise std is ``cond.noise · sigma``.
    The failed sensors are drawn first, then the noise, both from ``rng``.
    """
    working = working_sensors(sensors, cond.drop, rng)
    b = len(values)
    flat = values.reshape(b, -1)
    readings = flat[:, working].astype(np.float64)
    if cond.noise:
        readings = readings + rng.standard_normal(readings.shape) * (cond.noise * sigma)
    out = np.full(flat.shape, np.nan, dtype=np.float32)
    out[:, working] = readings
    return out.reshape(values.shape), working


def field_std(values: np.ndarray, valid: np.ndarray) -> float:
    """Standard deviation of the anomalies about the temporal mean over valid cells."""
    anomalies = values - values.mean(0)
    return float(anomalies[:, valid].std()) or 1.0
