"""Shared fixtures: every registered env id, and gymnasium's checker made NaN-aware."""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path

import gymnasium as gym
import gymnasium.utils.env_checker as env_checker
import numpy as np
import pytest

import envs

ENV_IDS = list(envs.ENV_IDS)

#: Small, fast settings per env class for the tests parametrised over every id.
SMALL_KWARGS: dict[str, dict] = {
    "RotateEnv": {"image_size": 48},
    "SaccadeEnv": {"scene_size": 64, "glimpse_size": 16},
    "RotateSaccadeEnv": {"scene_size": 64, "glimpse_size": 16},
    "SaccadeImageEnv": {"image_size": 48, "glimpse_size": 16},
}


@cache
def image_source() -> Path:
    """A small labelled image set (.npz) the tests write themselves: 3 classes of 30 images
    (stripes, checks and blobs in random colours), deterministic."""
    rng = np.random.default_rng(0)
    images, labels = [], []
    yy, xx = np.mgrid[:40, :40]
    patterns = [(xx // 5) % 2, ((xx // 8) + (yy // 8)) % 2, ((xx - 20) ** 2 + (yy - 20) ** 2) < 150]
    for label, pattern in enumerate(patterns):
        for _ in range(30):
            colours = rng.integers(0, 256, (2, 3))
            image = np.where(pattern[..., None], colours[0], colours[1])
            images.append(np.roll(image, rng.integers(0, 10, 2), axis=(0, 1)).astype(np.uint8))
            labels.append(label)
    path = Path(tempfile.mkdtemp(prefix="seqjepa_gym_images_")) / "images.npz"
    np.savez(path, images=np.stack(images), labels=np.array(labels),
             classes=np.array(["stripes", "checks", "blobs"]))  # fmt: skip
    return path


def env_kwargs(env_id: str, **overrides) -> dict:
    """Small settings for ``env_id``, plus whatever it requires (an image source)."""
    entry = envs.ENV_IDS[env_id]
    kwargs = dict(SMALL_KWARGS[entry.class_name])
    if "source" in entry.required:
        kwargs["source"] = str(image_source())
    kwargs.update(overrides)
    return kwargs


def make_env(env_id: str, **overrides) -> gym.Env:
    """gym.make with env_kwargs."""
    return gym.make(env_id, **env_kwargs(env_id, **overrides))


@pytest.fixture
def nan_aware_checker(monkeypatch):
    """gymnasium's check_env compares infos with np.allclose, for which NaN != NaN; CONVENTIONS.md
    requires NaN for switched-off latents. Patch its comparison to treat NaN as equal to NaN (and
    nothing else): the check is otherwise exactly gymnasium's."""
    original = env_checker.data_equivalence

    def equivalent(a, b, exact=False):
        if isinstance(a, dict) and isinstance(b, dict):
            return a.keys() == b.keys() and all(equivalent(a[k], b[k], exact) for k in a)
        if (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype.kind == "f"
            and a.dtype == b.dtype
            and a.shape == b.shape
        ):
            if exact:
                return bool(np.array_equal(a, b, equal_nan=True))
            return bool(np.allclose(a, b, rtol=1e-5, atol=1e-5, equal_nan=True))
        return original(a, b, exact)

    monkeypatch.setattr(env_checker, "data_equivalence", equivalent)
    return env_checker.check_env


def rollout(env, seed: int, steps: int):
    """Reset with ``seed`` and take ``steps`` actions drawn from a seeded action space."""
    env.action_space.seed(seed)
    obs, info = env.reset(seed=seed)
    trajectory = [(obs, info)]
    for _ in range(steps):
        obs, _, _, _, info = env.step(env.action_space.sample())
        trajectory.append((obs, info))
    return trajectory


def tiny_checkpoint(
    path: Path,
    env_id: str,
    image_size: int,
    mode: str = "subset",
    action_dim: int = 4,
    env_kwargs: dict | None = None,
) -> Path:
    """An untrained, very small seq-JEPA checkpoint that says it was trained on ``env_id``
    (the agents' tests need a model, not a good one)."""
    import dataclasses

    import torch

    from seqjepa.methods import build_model
    from seqjepa.train import (
        CHECKPOINT_FORMAT,
        CHECKPOINT_VERSION,
        config_dict,
        preset_config,
        save_checkpoint,
    )

    cfg = preset_config("tiny", mode=mode)
    model_cfg = dataclasses.replace(
        cfg.model,
        widths=(8, 16, 16, 32),
        action_dim=action_dim,
        action_proj_dim=16,
        predictor_hidden=64,
        dropout=0.0,
    )
    cfg = dataclasses.replace(cfg, model=model_cfg)
    torch.manual_seed(0)
    model = build_model(cfg.method, cfg.model)
    spec = {"action_dim": action_dim, "source": "recording", "env_id": env_id}
    spec |= {"env_kwargs": env_kwargs or {}, "image_size": image_size}
    state = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION}
    state |= {"config": config_dict(cfg), "model": model.state_dict(), "step": 0, "data": spec}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, state)
    return path


def homing_success(env, policy, episodes: int) -> float:
    """The fraction of ``episodes`` (seeds 0, 1, ...) a policy ends within a homing task's
    success threshold."""
    from agents.policies import episode_rng

    wins = 0
    for episode in range(episodes):
        obs, info = env.reset(seed=episode)
        policy.begin(env, episode_rng(0, episode))
        done = False
        while not done:
            obs, _, done, _, info = env.step(policy.act(obs, info))
        wins += info["success"]
    return wins / episodes
