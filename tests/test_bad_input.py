"""Property tests: any action, whatever its type, shape or values, gives either a valid step or a
ValueError that leaves the env as it was - never a crash inside pybullet, a non-unit
orientation or an observation outside the observation space."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import envs  # noqa: F401
from tests.conftest import env_kwargs

IDS = [
    "SeqJEPA-Rotate-v0",
    "SeqJEPA-RotateDiscrete-v0",
    "SeqJEPA-Rotate3DIEBench-v0",
    "SeqJEPA-Saccade-v0",
    "SeqJEPA-SaccadeDiscrete-v0",
    "SeqJEPA-RotateSaccade-v0",
]

_numbers = st.floats(allow_nan=True, allow_infinity=True, width=32) | st.sampled_from(
    [1e30, -1e30, 1e-30, 0.0, -0.0]
)
ACTIONS = st.one_of(
    hnp.arrays(
        st.sampled_from([np.float32, np.float64]),
        hnp.array_shapes(min_dims=0, max_dims=2, max_side=7),
        elements=_numbers,
    ),
    hnp.arrays(
        st.sampled_from([np.int8, np.int64, np.uint8, np.bool_]),
        hnp.array_shapes(min_dims=0, max_dims=2, max_side=7),
    ),
    hnp.arrays(np.complex64, st.sampled_from([(2,), (3,), (4,), (6,)])),
    st.integers(-(2**70), 2**70),
    _numbers,
    st.none(),
    st.text(max_size=4),
    st.lists(_numbers, max_size=7),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)


@pytest.fixture(scope="module")
def made():
    """One env per id for the whole module (hypothesis runs many examples on each)."""
    cache: dict[str, gym.Env] = {}

    def get(env_id: str) -> gym.Env:
        if env_id not in cache:
            cache[env_id] = gym.make(env_id, disable_env_checker=True, **env_kwargs(env_id))
            cache[env_id].reset(seed=0)
        return cache[env_id]

    yield get
    for env in cache.values():
        env.close()


def _state(env: gym.Env) -> tuple:
    unwrapped = env.unwrapped
    position = getattr(unwrapped, "_position", None)
    return (unwrapped._orientation.copy(), None if position is None else position.copy())


@pytest.mark.parametrize("env_id", IDS)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(action=ACTIONS)
def test_any_action_gives_a_valid_step_or_a_clear_value_error(env_id, action, made):
    env = made(env_id)
    before = _state(env)
    try:
        obs, _, terminated, truncated, info = env.step(action)
    except ValueError as err:
        assert str(err)  # says what was wrong
        after = _state(env)
        assert np.array_equal(after[0], before[0])
        assert (after[1] is None) or np.array_equal(after[1], before[1])
        return
    if terminated or truncated:
        env.reset()
    assert env.observation_space.contains(obs), {k: v.dtype for k, v in obs.items()}
    orientation = env.unwrapped._orientation
    assert np.isfinite(orientation).all() and abs(np.linalg.norm(orientation) - 1) < 1e-6
    for key in ("rel_quat", "path_quat"):
        if key in info:
            assert np.isfinite(info[key]).all()
