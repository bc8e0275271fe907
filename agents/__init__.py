"""Agents: policies that choose rotations and glimpses (``policies``), the representation
wrapper that lets them see through a frozen seq-JEPA (``representation``), the tasks built on it
(``recognition``, ``homing``), PPO (``ppo``), and what stable-baselines3 needs to read small
views (``extractors``).

Importing this package registers the task ids (by entry-point strings: nothing heavy is
imported until an env is made). Every task id takes a ``checkpoint`` kwarg:

    import gymnasium as gym
    import agents
    env = gym.make("SeqJEPA-Recognition-Rotate-v0", checkpoint="runs/.../seq-JEPA")
"""

from __future__ import annotations

import math
from typing import Any

from gymnasium.envs.registration import register, registry

import envs  # noqa: F401  (the base ids the tasks build on)

#: Task id -> (entry point, default kwargs). Tests run over all of them.
TASK_IDS: dict[str, tuple[str, dict[str, Any]]] = {
    # Turns of up to 90 degrees per axis: two steps reach any side of the object.
    "SeqJEPA-Recognition-Rotate-v0": (
        "agents.recognition:ActiveRecognition",
        {
            "base": "SeqJEPA-Rotate-v0",
            "budget": 5,
            "base_kwargs": {"max_step_angle": math.pi / 2},
        },
    ),
    # The agent picks the next orientation itself (a turntable with an encoder): absolute
    # actions, so a policy can learn which poses name the category best.
    "SeqJEPA-Recognition-RotateAbsolute-v0": (
        "agents.recognition:ActiveRecognition",
        {"base": "SeqJEPA-Rotate-v0", "budget": 5, "base_kwargs": {"action_mode": "absolute"}},
    ),
    # The same with a choice of 24 poses (the rotations of the cube): a categorical policy
    # picks among them directly instead of searching quaternion space (docs/agents.md).
    "SeqJEPA-Recognition-RotatePoses-v0": (
        "agents.recognition:ActiveRecognition",
        {"base": "SeqJEPA-Rotate-v0", "budget": 5, "base_kwargs": {"action_mode": "poses"}},
    ),
    "SeqJEPA-Recognition-Saccade-v0": (
        "agents.recognition:ActiveRecognition",
        {"base": "SeqJEPA-Saccade-v0", "budget": 5},
    ),
    "SeqJEPA-Homing-Rotate-v0": (
        "agents.homing:Homing",
        {"base": "SeqJEPA-Rotate-v0", "warmup": 3, "budget": 6},
    ),
    # Actuation noise (5 degrees per axis per step): dead reckoning drifts, vision must help.
    "SeqJEPA-Homing-RotateNoisy-v0": (
        "agents.homing:Homing",
        {
            "base": "SeqJEPA-Rotate-v0",
            "warmup": 3,
            "budget": 6,
            "base_kwargs": {"action_noise": math.radians(5.0)},
        },
    ),
    # Rewarded by the world model's prediction error (agents.curiosity).
    "SeqJEPA-Curiosity-Rotate-v0": (
        "agents.curiosity:Curiosity",
        {
            "base": "SeqJEPA-Rotate-v0",
            "budget": 8,
            "base_kwargs": {"max_step_angle": math.pi / 2},
        },
    ),
    "SeqJEPA-Homing-Saccade-v0": (
        "agents.homing:Homing",
        {"base": "SeqJEPA-Saccade-v0", "warmup": 3, "budget": 6},
    ),
}


for _id, (_entry_point, _kwargs) in TASK_IDS.items():
    if _id not in registry:
        register(_id, entry_point=_entry_point, kwargs=_kwargs)
