"""What the task envs share: the base env a checkpoint fits.

The base env is made with the view settings the checkpoint was trained on (image size,
anti-aliasing, scene latents, catalog), so that the model sees views like its training data;
the task's own settings (action mode, split) override them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym

import envs  # noqa: F401  (registers the base ids)
from agents.representation import WorldModel, env_class_name, load_world_model

#: Base-env kwargs that decide what a view looks like: carried over from the checkpoint's data.
VIEW_KWARGS = (
    "image_size",
    "supersample",
    "scene_size",
    "glimpse_size",
    "scales",
    "periphery_size",
    "initial_orientation",
    "floor",
    "light_direction",
    "light_hue",
    "latents",
    "catalog",
    "catalog_kwargs",
)


def make_base_env(base: str, world: WorldModel, overrides: dict[str, Any]) -> gym.Env:
    """``gym.make(base)`` with the checkpoint's view settings, then ``overrides`` (no time
    limit: the task decides when an episode ends)."""
    trained_on = world.spec.get("env_id")
    if trained_on is not None and env_class_name(trained_on) != env_class_name(base):
        raise ValueError(
            f"checkpoint {world.path} was trained on {trained_on}; this task's base env is "
            f"{base} ({env_class_name(base)}): pick a task over {env_class_name(trained_on)}"
        )
    trained_kwargs = world.spec.get("env_kwargs") or {}
    kwargs = {key: trained_kwargs[key] for key in VIEW_KWARGS if key in trained_kwargs}
    if "image_size" not in kwargs and world.spec.get("image_size") and "Rotate" in base:
        kwargs["image_size"] = world.spec["image_size"]
    return gym.make(base, max_episode_steps=None, **(kwargs | overrides))


def world_and_base(
    checkpoint: str | Path | WorldModel,
    base: str,
    split: str | None,
    base_kwargs: dict[str, Any] | None,
    device: str,
) -> tuple[WorldModel, gym.Env]:
    """A task's world model (loaded unless given loaded) and its base env on ``split``."""
    world = (
        checkpoint if isinstance(checkpoint, WorldModel) else load_world_model(checkpoint, device)
    )
    return world, make_base_env(base, world, {"split": split} | (base_kwargs or {}))
