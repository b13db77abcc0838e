"""Action spaces of DistillSource and their decoding into (mixture weights, augmentation,
attack), with clear errors for invalid actions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from envs.distill_source.config import AUGMENT_LEVELS, DistillSourceConfig

# Box actions in [-1, 1] become weights softmax(MIXTURE_SCALE · a): at the corners one source
# takes 1 / (1 + (S − 1)·e^{−2·MIXTURE_SCALE}) ≈ 99.8 % of the batch with 6 sources.
MIXTURE_SCALE = 4.0


@dataclass(frozen=True)
class Decision:
    """What one phase distils from."""

    weights: np.ndarray   # [S] mixture weights, sum 1
    augment: str          # one of AUGMENT_LEVELS
    attack: bool

    @property
    def source(self) -> int:
        """The source with the largest weight."""
        return int(np.argmax(self.weights))


def make_action_space(cfg: DistillSourceConfig) -> spaces.Space:
    s = cfg.n_sources
    extra = [len(AUGMENT_LEVELS)] * cfg.control_augment + [2] * cfg.control_attack
    if cfg.action_mode == "discrete":
        if not extra:
            return spaces.Discrete(s)
        return spaces.MultiDiscrete(np.array([s, *extra], dtype=np.int64))
    return spaces.Box(-1.0, 1.0, (s + len(extra),), dtype=np.float32)


def _as_int(v: Any, name: str, n: int) -> int:
    if isinstance(v, bool | np.bool_) or not np.issubdtype(np.asarray(v).dtype, np.integer):
        raise TypeError(f"{name} must be an integer in [0, {n}), got {v!r} "
                        f"({type(v).__name__})")
    i = int(v)
    if not 0 <= i < n:
        raise ValueError(f"{name} must be in [0, {n}), got {i}")
    return i


def decode_action(action: Any, cfg: DistillSourceConfig) -> Decision:
    """Turn an action of :func:`make_action_space` into a :class:`Decision`.

    Raises ``TypeError`` (wrong type) or ``ValueError`` (wrong shape, out of range, NaN).
    """
    s = cfg.n_sources
    aug, attack = cfg.augment, cfg.attack
    if cfg.action_mode == "discrete":
        a = np.asarray(action)
        n_extra = cfg.control_augment + cfg.control_attack
        if n_extra == 0:
            if a.ndim > 1 or a.size != 1:
                raise ValueError(f"action must be one source index in [0, {s}) "
                                 f"(sources: {list(cfg.sources)}), got shape {a.shape}")
            src = _as_int(a.reshape(()).item() if a.ndim else a[()], "action (source index)", s)
            parts = []
        else:
            if a.shape != (1 + n_extra,):
                raise ValueError(f"action must have shape ({1 + n_extra},): [source index, "
                                 f"{'augment level, ' * cfg.control_augment}"
                                 f"{'attack on/off' * cfg.control_attack}], got {a.shape}")
            src = _as_int(a[0], "action[0] (source index)", s)
            parts = list(a[1:])
        w = np.zeros(s)
        w[src] = 1.0
        if cfg.control_augment:
            aug = AUGMENT_LEVELS[_as_int(parts.pop(0), "augment level", len(AUGMENT_LEVELS))]
        if cfg.control_attack:
            attack = bool(_as_int(parts.pop(0), "attack on/off", 2))
        return Decision(w, aug, attack)
    try:
        a = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"action must be an array of floats, got {action!r}") from e
    d = s + cfg.control_augment + cfg.control_attack
    if a.shape != (d,):
        raise ValueError(f"action must have shape ({d},): {s} mixture logits"
                         f"{' + augment strength' * cfg.control_augment}"
                         f"{' + attack' * cfg.control_attack}, got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"action contains NaN or inf: {a}")
    if (np.abs(a) > 1.0 + 1e-6).any():
        raise ValueError(f"action values must be in [-1, 1], got {a}")
    z = MIXTURE_SCALE * a[:s]
    w = np.exp(z - z.max())
    w /= w.sum()
    k = s
    if cfg.control_augment:
        level = min(int((a[k] + 1.0) / 2.0 * len(AUGMENT_LEVELS)), len(AUGMENT_LEVELS) - 1)
        aug = AUGMENT_LEVELS[level]
        k += 1
    if cfg.control_attack:
        attack = bool(a[k] > 0)
    return Decision(w, aug, attack)
