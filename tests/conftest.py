"""Shared fixtures: every registered env id, and gymnasium's checker made NaN-aware."""

from __future__ import annotations

import gymnasium.utils.env_checker as env_checker
import numpy as np
import pytest

import envs

ENV_IDS = list(envs.ENV_IDS)


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
