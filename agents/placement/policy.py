"""The placement policy: a per-cell network over multi-scale context of the grid, for
MaskablePPO.

The flat observation of :mod:`envs.sensors.vector` (occupancy map, normalised error map,
``t / K``, ``K / 32``) becomes per-cell features: occupancy and error, their local means over
``s × s`` windows for each ``s`` in ``scales`` (fixed average pooling: how crowded and how
badly reconstructed the neighbourhood is, up to 15 cells away by default) and the two scalars.
A small MLP shared by all cells (1 × 1 convolutions) gives one logit per cell (the action
distribution, masked by ``action_masks``); the global mean of its hidden layer feeds
the value. No layer depends on the grid size, so a trained policy places sensors on other grids
too (:func:`use_grid`). (Dilated 3 × 3 convolutions were measured 3-8× slower per sample on
these CPUs, which a budget of 10⁶ steps could not afford.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

N_SCALARS = 2


class GridExtractor(BaseFeaturesExtractor):
    """Per-cell logits and pooled value features of a flat placement observation.

    Output: ``[cell logits (H·W), value features (value_dim)]``.
    """

    def __init__(self, observation_space: gym.spaces.Box, grid: tuple[int, int],
                 channels: int = 16, scales: tuple[int, ...] = (3, 7, 15),
                 value_dim: int = 32) -> None:
        h, w = int(grid[0]), int(grid[1])
        if observation_space.shape != (2 * h * w + N_SCALARS,):
            raise ValueError(f"observation shape {observation_space.shape} does not fit the "
                             f"grid {h}×{w} (expected {(2 * h * w + N_SCALARS,)})")
        if any(s < 1 or s % 2 == 0 for s in scales):
            raise ValueError(f"scales must be odd window sizes, got {scales}")
        super().__init__(observation_space, h * w + value_dim)
        self.grid, self.value_dim, self.scales = (h, w), int(value_dim), tuple(scales)
        c_in = 2 * (1 + len(self.scales)) + N_SCALARS
        self.cell = nn.Sequential(nn.Conv2d(c_in, channels, 1), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 1), nn.ReLU())
        self.logit = nn.Conv2d(channels, 1, 1)
        self.value = nn.Sequential(nn.Linear(channels + N_SCALARS, value_dim), nn.ReLU())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        h, w = self.grid
        n = h * w
        b = obs.shape[0]
        scal = obs[:, 2 * n:]
        maps = obs[:, :2 * n].reshape(b, 2, h, w)
        ctx = [maps] + [_box_mean(maps, s) for s in self.scales]
        x = torch.cat([*ctx, scal[:, :, None, None].expand(b, N_SCALARS, h, w)], 1)
        z = self.cell(x.contiguous(memory_format=torch.channels_last))
        logits = self.logit(z).flatten(1)
        pooled = torch.cat([z.mean((2, 3)), scal], 1)
        return torch.cat([logits, self.value(pooled)], 1)


def _box_mean(x: torch.Tensor, s: int) -> torch.Tensor:
    """Mean over the ``s × s`` window around each cell (clipped at the edges), as two 1-D
    passes (2s operations per cell instead of s²)."""
    x = F.avg_pool2d(x, (1, s), 1, (0, s // 2), count_include_pad=False)
    return F.avg_pool2d(x, (s, 1), 1, (s // 2, 0), count_include_pad=False)


class _Head(nn.Module):
    """The cell logits (all but the last ``value_dim`` features)."""

    def __init__(self, value_dim: int) -> None:
        super().__init__()
        self.value_dim = value_dim

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return latent[:, :-self.value_dim]


class _Tail(nn.Module):
    """The value from the last ``value_dim`` features."""

    def __init__(self, value_dim: int) -> None:
        super().__init__()
        self.value_dim = value_dim
        self.linear = nn.Linear(value_dim, 1)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.linear(latent[:, -self.value_dim:])


class GridPolicy(MaskableActorCriticPolicy):
    """MaskablePPO policy with :class:`GridExtractor` (pass ``grid=(H, W)`` through
    ``features_extractor_kwargs``); logits come from the convolution, not a dense layer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("net_arch", {"pi": [], "vf": []})
        kwargs.setdefault("features_extractor_class", GridExtractor)
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        ext = self.features_extractor
        self.action_net = _Head(ext.value_dim)
        self.value_net = _Tail(ext.value_dim)
        ext.logit.apply(lambda m: self.init_weights(m, gain=0.01))
        self.value_net.apply(lambda m: self.init_weights(m, gain=1.0))
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1),
                                              **self.optimizer_kwargs)


@contextmanager
def use_grid(policy: GridPolicy, grid: tuple[int, int]) -> Iterator[None]:
    """Let ``policy`` read observations of another ``(H, W)`` grid inside the block."""
    ext = policy.features_extractor
    old = ext.grid
    ext.grid = (int(grid[0]), int(grid[1]))
    try:
        yield
    finally:
        ext.grid = old


def _masked_logits(policy: GridPolicy, obs: np.ndarray, masks: np.ndarray) -> torch.Tensor:
    t = torch.as_tensor(obs, dtype=torch.float32, device=policy.device)
    logits = policy.action_net(policy.features_extractor(t))
    allowed = torch.as_tensor(np.asarray(masks, dtype=bool), device=policy.device)
    return logits.masked_fill(~allowed, -torch.inf)


@torch.no_grad()
def greedy_actions(policy: GridPolicy, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The most probable allowed cell of each observation (the masked distribution's mode), on
    any grid under :func:`use_grid`."""
    return _masked_logits(policy, obs, masks).argmax(1).cpu().numpy()


@torch.no_grad()
def sampled_actions(policy: GridPolicy, obs: np.ndarray, masks: np.ndarray,
                    gen: torch.Generator) -> np.ndarray:
    """One allowed cell per observation drawn from the masked distribution (CPU generator
    ``gen``: the same draws on every device)."""
    probs = torch.softmax(_masked_logits(policy, obs, masks).double().cpu(), 1)
    return torch.multinomial(probs, 1, generator=gen).squeeze(1).numpy()
