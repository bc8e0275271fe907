"""Gymnasium environments of seq-JEPA Gym; importing this package registers every id.

import gymnasium as gym
import envs
env = gym.make("SeqJEPA-Rotate-v0")
"""

import numpy as np
from gymnasium.envs.registration import register, registry

from envs.rotate import RotateEnv
from envs.scene import Lighting, Scene
from envs.vector import RotateVectorEnv

#: Episode length of the Rotate ids: 3DIEBench renders 50 views per object.
MAX_EPISODE_STEPS = 50

#: Every id this package registers, with its preset kwargs (tests run over all of them).
ENV_IDS: dict[str, dict] = {
    "SeqJEPA-Rotate-v0": {},
    "SeqJEPA-RotateDiscrete-v0": {"action_mode": "discrete"},
    # 3DIEBench's generator as an env: absolute random views, floor and lights resampled per view.
    "SeqJEPA-Rotate3DIEBench-v0": {
        "action_mode": "absolute",
        "initial_orientation": "3diebench",
        "floor": True,
        "light_direction": True,
        "light_hue": True,
        "latents": "step",
    },
    # Path integration with slippery actuators: 5 degrees of noise per step.
    "SeqJEPA-RotateNoisy-v0": {"action_noise": float(np.radians(5.0))},
}

for _id, _kwargs in ENV_IDS.items():
    if _id not in registry:
        register(
            _id,
            entry_point="envs.rotate:RotateEnv",
            vector_entry_point="envs.vector:RotateVectorEnv",
            kwargs=_kwargs,
            max_episode_steps=MAX_EPISODE_STEPS,
        )

__all__ = ["ENV_IDS", "MAX_EPISODE_STEPS", "Lighting", "RotateEnv", "RotateVectorEnv", "Scene"]
