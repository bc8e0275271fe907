"""Gymnasium environments of seq-JEPA Gym; importing this package registers every id.

import gymnasium as gym
import envs
env = gym.make("SeqJEPA-Rotate-v0")
"""

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium.envs.registration import register, registry

from envs.rotate import RotateEnv
from envs.rotate_saccade import RotateSaccadeEnv
from envs.saccade import SaccadeEnv
from envs.saccade_image import SaccadeImageEnv
from envs.scene import Lighting, Scene
from envs.vector import BatchedVectorEnv


@dataclass(frozen=True)
class EnvEntry:
    """One registered id: its class, preset kwargs and episode length."""

    cls: type
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_episode_steps: int = 50
    """Rotations: 50 steps, as 3DIEBench renders 50 views per object. Glimpses: 16, as the
    active-perception suites use (the paper's sequences are 5 saccades)."""
    required: tuple[str, ...] = ()
    """Kwargs with no default (e.g. an image source) that gym.make must be given."""


#: Every id this package registers (tests run over all of them).
ENV_IDS: dict[str, EnvEntry] = {
    "SeqJEPA-Rotate-v0": EnvEntry(RotateEnv),
    "SeqJEPA-RotateDiscrete-v0": EnvEntry(RotateEnv, {"action_mode": "discrete"}),
    # 3DIEBench's generator as an env: absolute random views, floor and lights resampled per view.
    "SeqJEPA-Rotate3DIEBench-v0": EnvEntry(
        RotateEnv,
        {
            "action_mode": "absolute",
            "initial_orientation": "3diebench",
            "floor": True,
            "light_direction": True,
            "light_hue": True,
            "latents": "step",
        },
    ),
    # Path integration with slippery actuators: 5 degrees of noise per step.
    "SeqJEPA-RotateNoisy-v0": EnvEntry(RotateEnv, {"action_noise": float(np.radians(5.0))}),
    "SeqJEPA-Saccade-v0": EnvEntry(SaccadeEnv, max_episode_steps=16),
    "SeqJEPA-SaccadeDiscrete-v0": EnvEntry(
        SaccadeEnv, {"action_mode": "discrete"}, max_episode_steps=16
    ),
    "SeqJEPA-SaccadeImage-v0": EnvEntry(
        SaccadeImageEnv, max_episode_steps=16, required=("source",)
    ),
    "SeqJEPA-RotateSaccade-v0": EnvEntry(RotateSaccadeEnv),
}

for _id, _entry in ENV_IDS.items():
    if _id not in registry:
        _name = _entry.cls.__name__
        register(
            _id,
            entry_point=f"{_entry.cls.__module__}:{_name}",
            vector_entry_point=f"envs.vector:{_name}Vector",
            kwargs=_entry.kwargs,
            max_episode_steps=_entry.max_episode_steps,
        )

__all__ = [
    "ENV_IDS",
    "BatchedVectorEnv",
    "EnvEntry",
    "Lighting",
    "RotateEnv",
    "RotateSaccadeEnv",
    "SaccadeEnv",
    "SaccadeImageEnv",
    "Scene",
]
