"""Features extractors that let stable-baselines3 policies read small views (32 px glimpses).

SB3's default for Dict observations (CombinedExtractor) sends every image to NatureCNN, whose
8x8-stride-4 stem needs at least 36 px. SmallImageExtractor gives each image key a small CNN
(3x3 convolutions, stride 2) that works from 8 px up, and flattens the other keys, as
CombinedExtractor does.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

#: NatureCNN's smallest input side; below it, SB3's default extractor fails.
NATURE_CNN_MIN_SIZE = 36


class SmallImageExtractor(BaseFeaturesExtractor):
    """Dict observations -> one feature vector: a small CNN per image key, flatten the rest.

    Args:
        observation_space: a gymnasium Dict space (images as uint8 H x W x C).
        cnn_output_dim: features per image key.
    """

    def __init__(self, observation_space: gym.spaces.Dict, cnn_output_dim: int = 128) -> None:
        super().__init__(observation_space, features_dim=1)
        extractors: dict[str, nn.Module] = {}
        total = 0
        for key, space in observation_space.spaces.items():
            if is_image_space(space, check_channels=False):
                channels = space.shape[0]  # SB3 hands policies channel-first images
                cnn = nn.Sequential(
                    nn.Conv2d(channels, 32, 3, stride=2, padding=1),
                    nn.ReLU(),
                    nn.Conv2d(32, 64, 3, stride=2, padding=1),
                    nn.ReLU(),
                    nn.AdaptiveAvgPool2d(2),
                    nn.Flatten(),
                    nn.Linear(64 * 4, cnn_output_dim),
                    nn.ReLU(),
                )
                extractors[key] = cnn
                total += cnn_output_dim
            else:
                extractors[key] = nn.Flatten()
                total += gym.spaces.flatdim(space)
        self.extractors = nn.ModuleDict(extractors)
        self._features_dim = total

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([net(observations[key]) for key, net in self.extractors.items()], dim=1)


def policy_kwargs_for(observation_space: gym.Space) -> dict[str, Any]:
    """SB3 ``policy_kwargs`` that work for this observation space: SmallImageExtractor when any
    image is smaller than NatureCNN accepts, else {} (SB3's defaults)."""
    if not isinstance(observation_space, gym.spaces.Dict):
        return {}
    small = any(
        is_image_space(space, check_channels=False) and min(space.shape[:2]) < NATURE_CNN_MIN_SIZE
        for space in observation_space.spaces.values()
    )
    return {"features_extractor_class": SmallImageExtractor} if small else {}
