"""Gymnasium environments of seq-JEPA Gym; importing this package registers every id.

    import gymnasium as gym
    import envs
    env = gym.make("SeqJEPA-Rotate-v0")

Importing ``envs`` loads no renderer: ids are registered by entry-point strings and the env
classes are imported on first use.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from typing import Any

from gymnasium.envs.registration import register, registry


@dataclass(frozen=True)
class EnvEntry:
    """One registered id: its class (module:Class), preset kwargs and episode length."""

    entry_point: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_episode_steps: int = 50
    """Rotations: 50 steps, as 3DIEBench renders 50 views per object. Glimpses: 16, as the
    active-perception suites use (the paper's sequences are 5 saccades)."""
    required: tuple[str, ...] = ()
    """Kwargs with no default (e.g. an image source) that gym.make must be given."""

    @property
    def class_name(self) -> str:
        return self.entry_point.split(":")[1]


ROTATE = "envs.rotate:RotateEnv"
SACCADE = "envs.saccade:SaccadeEnv"

#: Every id this package registers (tests run over all of them).
ENV_IDS: dict[str, EnvEntry] = {
    "SeqJEPA-Rotate-v0": EnvEntry(ROTATE),
    "SeqJEPA-RotateDiscrete-v0": EnvEntry(ROTATE, {"action_mode": "discrete"}),
    # 3DIEBench's generator as an env: absolute random views, floor and lights resampled per view.
    "SeqJEPA-Rotate3DIEBench-v0": EnvEntry(
        ROTATE,
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
    "SeqJEPA-RotateNoisy-v0": EnvEntry(ROTATE, {"action_noise": math.radians(5.0)}),
    "SeqJEPA-Saccade-v0": EnvEntry(SACCADE, max_episode_steps=16),
    "SeqJEPA-SaccadeDiscrete-v0": EnvEntry(SACCADE, {"action_mode": "discrete"}, 16),
    "SeqJEPA-SaccadeImage-v0": EnvEntry(
        "envs.saccade_image:SaccadeImageEnv", max_episode_steps=16, required=("source",)
    ),
    "SeqJEPA-RotateSaccade-v0": EnvEntry("envs.rotate_saccade:RotateSaccadeEnv"),
}

for _id, _entry in ENV_IDS.items():
    if _id not in registry:
        register(
            _id,
            entry_point=_entry.entry_point,
            vector_entry_point=f"envs.vector:{_entry.class_name}Vector",
            kwargs=_entry.kwargs,
            max_episode_steps=_entry.max_episode_steps,
        )

_LAZY = {
    "RotateEnv": "envs.rotate",
    "SaccadeEnv": "envs.saccade",
    "SaccadeImageEnv": "envs.saccade_image",
    "RotateSaccadeEnv": "envs.rotate_saccade",
    "BatchedVectorEnv": "envs.vector",
    "Scene": "envs.scene",
    "Lighting": "envs.scene",
}


def __getattr__(name: str) -> Any:
    """Import env classes on first use (keeps ``import envs`` free of pybullet)."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'envs' has no attribute {name!r}")


__all__ = ["ENV_IDS", "EnvEntry", *_LAZY]
