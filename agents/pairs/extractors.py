"""Feature extractors for observations that carry the network's input image.

:class:`InputCNN` reads a ``Dict`` observation with an ``"image"`` key (a normalised float
image ``[C, H, W]``, e.g. DynamicPTQ's ``observation="image"``) and any number of flat ``Box``
keys. SB3's default for such a ``Dict`` would flatten the image into the MLP (it is not a
``uint8`` image) and its ``NatureCNN`` needs at least 36×36 pixels; this extractor runs a small
convolutional stack on images of any size from 8×8 up and concatenates the flat keys::

    PPO("MultiInputPolicy", env, policy_kwargs={"features_extractor_class": InputCNN,
                                                "normalize_images": False})
"""

from __future__ import annotations

import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn


class InputCNN(BaseFeaturesExtractor):
    """Conv(C→16, 3×3) → ReLU → max-pool 2 → Conv(16→32, 3×3) → ReLU → adaptive average pool
    to 4×4 → Linear(512→``image_features``) → ReLU, concatenated with the other keys.

    Args:
        observation_space: a ``Dict`` with ``"image"`` ``Box(C, H, W)`` and flat ``Box`` keys.
        image_features: size of the image embedding.
    """

    def __init__(self, observation_space: spaces.Dict, image_features: int = 64) -> None:
        if not isinstance(observation_space, spaces.Dict) or "image" not in observation_space.spaces:
            raise ValueError(f"InputCNN needs a Dict observation with an 'image' key, got "
                             f"{observation_space}")
        image = observation_space.spaces["image"]
        if len(image.shape) != 3 or min(image.shape[1:]) < 8:
            raise ValueError(f"InputCNN needs an 'image' of shape [C, H, W] with H, W ≥ 8, got "
                             f"{image.shape}")
        flat = {k: s for k, s in observation_space.spaces.items() if k != "image"}
        flat_dim = sum(int(torch.tensor(s.shape).prod()) for s in flat.values())
        super().__init__(observation_space, image_features + flat_dim)
        self.flat_keys = sorted(flat)
        self.cnn = nn.Sequential(
            nn.Conv2d(image.shape[0], 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
            nn.Flatten(), nn.Linear(32 * 16, image_features), nn.ReLU())

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [self.cnn(observations["image"])]
        parts += [observations[k].flatten(1) for k in self.flat_keys]
        return torch.cat(parts, dim=1)
