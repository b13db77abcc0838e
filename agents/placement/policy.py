"""The placement policy: a fully convolutional MaskablePPO actor-critic over the grid.

The flat observation of :mod:`envs.sensors.vector` (occupancy map, normalised error map,
``t / K``, ``K / 32``) is reshaped into four ``H × W`` channels (the two scalars broadcast).
Dilated 3 × 3 convolutions (receptive field 31 cells by default) feed a 1 × 1 convolution that
gives one logit per cell (the action distribution, masked by ``action_masks``), and global mean
and max pooling that feed the value. No layer depends on the grid size, so a trained policy
places sensors on other grids too (:func:`use_grid`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

N_SCALARS = 2


class GridExtractor(BaseFeaturesExtractor):
    """Per-cell logits and pooled value features of a flat placement observation.

    Output: ``[cell logits (H·W), value features (value_dim)]``.
    """

    def __init__(self, observation_space: gym.spaces.Box, grid: tuple[int, int],
                 channels: int = 16, dilations: tuple[int, ...] = (1, 2, 4, 8),
                 value_dim: int = 64) -> None:
        h, w = int(grid[0]), int(grid[1])
        if observation_space.shape != (2 * h * w + N_SCALARS,):
            raise ValueError(f"observation shape {observation_space.shape} does not fit the "
                             f"grid {h}×{w} (expected {(2 * h * w + N_SCALARS,)})")
        super().__init__(observation_space, h * w + value_dim)
        self.grid, self.value_dim = (h, w), int(value_dim)
        layers: list[nn.Module] = []
        c_in = 2 + N_SCALARS
        for d in dilations:
            layers += [nn.Conv2d(c_in, channels, 3, padding=d, dilation=d), nn.ReLU()]
            c_in = channels
        self.body = nn.Sequential(*layers)
        self.logit = nn.Conv2d(channels, 1, 1)
        self.value = nn.Sequential(nn.Linear(2 * channels + N_SCALARS, value_dim), nn.ReLU())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        h, w = self.grid
        n = h * w
        b = obs.shape[0]
        scal = obs[:, 2 * n:]
        x = torch.cat([obs[:, :n].view(b, 1, h, w), obs[:, n:2 * n].view(b, 1, h, w),
                       scal[:, :, None, None].expand(b, N_SCALARS, h, w)], 1)
        z = self.body(x)
        logits = self.logit(z).flatten(1)
        pooled = torch.cat([z.mean((2, 3)), z.amax((2, 3)), scal], 1)
        return torch.cat([logits, self.value(pooled)], 1)


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


@torch.no_grad()
def greedy_actions(policy: GridPolicy, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The most probable allowed cell of each observation (the masked distribution's mode), on
    any grid under :func:`use_grid`."""
    t = torch.as_tensor(obs, dtype=torch.float32, device=policy.device)
    logits = policy.action_net(policy.features_extractor(t))
    allowed = torch.as_tensor(np.asarray(masks, dtype=bool), device=policy.device)
    return logits.masked_fill(~allowed, -torch.inf).argmax(1).cpu().numpy()
