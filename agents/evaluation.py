"""Run a policy on a task for some episodes and keep what each episode did.

Recognition episodes record whether the classifier was right after each number of views
(accuracy at k views is the mean of ``correct[k - 1]``); homing episodes record the error after
each step and the final success. Episodes are seeded (seed, episode index), so two policies
evaluated with the same seed see the same objects and starting poses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm import tqdm

import agents  # noqa: F401  (registers the task ids)
from agents.policies import Policy, episode_rng, make_policy
from agents.representation import WorldModel


def policy_from_spec(spec: str) -> Policy:
    """A registered policy name (random, coverage, saliency-ior, dead-reckoning) or a saved
    PPO policy (a path ending in .zip)."""
    if spec.endswith(".zip"):
        from agents.ppo import PPOPolicy

        return PPOPolicy(spec)
    return make_policy(spec)


def run_episodes(
    task: str,
    world: WorldModel | str | Path,
    policy: Policy,
    episodes: int,
    seed: int = 0,
    split: str = "test",
    task_kwargs: dict[str, Any] | None = None,
    frames: bool = False,
) -> list[dict[str, Any]]:
    """``episodes`` episodes of ``task`` on ``split`` objects under ``policy``: one record per
    episode (``correct`` per view, or ``errors`` per step and ``success``; with ``frames``,
    the base env's views too, for GIFs)."""
    env = gym.make(task, checkpoint=world, split=split, **(task_kwargs or {}))
    records = []
    for episode in tqdm(range(episodes), desc=f"{policy.name} on {task}", unit="ep", leave=False):
        rng = episode_rng(seed, episode)
        obs, info = env.reset(seed=int(rng.integers(2**31)))
        policy.begin(env, rng)
        record: dict[str, Any] = {"category": info["category_name"]}
        steps = [info]
        views = [obs_view(env)] if frames else []
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(policy.act(obs, info))
            steps.append(info)
            if frames:
                views.append(obs_view(env))
            done = terminated or truncated
        if "correct" in info:
            record["correct"] = [bool(i["correct"]) for i in steps]
        else:
            record["errors"] = [float(i["error"]) for i in steps]
            record["success"] = bool(info["success"])
        if frames:
            record["frames"] = views
        records.append(record)
    env.close()
    return records


def obs_view(env: gym.Env) -> np.ndarray:
    """The view (or glimpse) the base env showed last, for GIFs."""
    return np.asarray(env.get_wrapper_attr("last_view"))
