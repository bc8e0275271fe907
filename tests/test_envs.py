"""Every registered id: Gymnasium and SB3 checkers, determinism, render, pickling, vector envs,
bad input, and a few PPO steps."""

from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from agents.extractors import policy_kwargs_for
from envs.rotate import RotateEnv
from tests.conftest import ENV_IDS, make_env, rollout

# Warnings the checkers may raise that we accept, with why. Anything else fails the test.
ALLOWED_WARNINGS: tuple[str, ...] = (
    # SB3's checker on 16-32 px glimpses; agents.extractors.SmallImageExtractor handles them.
    "The minimal resolution for an image is 36x36",
)


make = make_env


def digest(trajectory) -> str:
    h = hashlib.sha256()
    for obs, info in trajectory:
        for key in sorted(obs):
            h.update(np.ascontiguousarray(obs[key]).tobytes())
        for key in sorted(info):
            value = info[key]
            h.update(np.asarray(value).tobytes() if not isinstance(value, str) else value.encode())
    return h.hexdigest()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_check_env(env_id, nan_aware_checker):
    env = make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nan_aware_checker(env.unwrapped)
    unexpected = [str(w.message) for w in caught if not str(w.message).startswith(ALLOWED_WARNINGS)]
    assert unexpected == []
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_check_env(env_id):
    from stable_baselines3.common.env_checker import check_env

    env = make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, warn=True)
    unexpected = [str(w.message) for w in caught if not str(w.message).startswith(ALLOWED_WARNINGS)]
    assert unexpected == []
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_views_and_infos(env_id):
    first = rollout(make(env_id), seed=3, steps=12)
    second = rollout(make(env_id), seed=3, steps=12)
    other = rollout(make(env_id), seed=4, steps=12)
    assert digest(first) == digest(second)
    assert digest(first) != digest(other)
    for (o1, i1), (o2, i2) in zip(first, second, strict=True):
        assert np.array_equal(o1["view"], o2["view"])
        assert i1["instance"] == i2["instance"] and i1["category_name"] == i2["category_name"]


def test_determinism_across_processes():
    """A fresh interpreter (fresh BulletClient, fresh hash seed) gives the same bytes."""
    script = (
        "import json, gymnasium as gym, envs\n"
        "from tests.test_envs import ENV_IDS, make, digest, rollout\n"
        "out = {i: digest(rollout(make(i), seed=5, steps=8)) for i in ENV_IDS}\n"
        "print('DIGESTS', json.dumps(out))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
        cwd=Path(__file__).parent.parent,
    )
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("DIGESTS "))
    other = json.loads(line.removeprefix("DIGESTS "))
    here = {i: digest(rollout(make(i), seed=5, steps=8)) for i in ENV_IDS}
    assert other == here


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_human_render(env_id):
    env = make(env_id, render_mode="rgb_array", render_size=96)
    assert env.unwrapped.render() is None  # nothing to show before reset
    env.reset(seed=0)
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
    assert min(frame.shape[:2]) >= 48
    env.action_space.seed(0)  # unseeded, a discrete saccade could draw the current cell: no move
    env.step(env.action_space.sample())
    assert not np.array_equal(env.render(), frame)
    env.close()
    env.close()  # closing twice is fine


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_pickled_env_continues_identically(env_id):
    env = make(env_id)
    env.action_space.seed(0)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    clone = pickle.loads(pickle.dumps(env))
    for _ in range(3):
        action = env.action_space.sample()
        step_a, step_b = env.step(action), clone.step(action)
        assert digest([(step_a[0], step_a[4])]) == digest([(step_b[0], step_b[4])])
    env.close()
    clone.close()


def test_async_vector_env_matches_single_envs():
    vec = gym.make_vec("SeqJEPA-Rotate-v0", num_envs=2, vectorization_mode="async", image_size=32)
    vec.reset(seed=[10, 11])
    singles = [gym.make("SeqJEPA-Rotate-v0", image_size=32) for _ in range(2)]
    single_obs = [s.reset(seed=seed)[0] for s, seed in zip(singles, (10, 11), strict=True)]
    actions = np.array([[0.3, -0.2, 0.9], [-1.0, 0.5, 0.0]], np.float32)
    obs, *_ = vec.step(actions)
    for k in range(2):
        expected = singles[k].step(actions[k])[0]
        assert np.array_equal(obs["view"][k], expected["view"])
        assert not np.array_equal(obs["view"][k], single_obs[k]["view"])
    vec.close()
    vec.close()


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_ppo_runs_a_few_steps(env_id):
    from stable_baselines3 import PPO

    env = make(env_id)
    model = PPO(
        "MultiInputPolicy",
        env,
        n_steps=16,
        batch_size=16,
        n_epochs=1,
        seed=0,
        device="cpu",
        policy_kwargs=policy_kwargs_for(env.observation_space),
    )
    model.learn(total_timesteps=32)
    action, _ = model.predict(env.reset(seed=0)[0], deterministic=True)
    assert env.action_space.contains(action)
    env.close()


# -- bad input


@pytest.fixture
def relative_env():
    env = gym.make("SeqJEPA-Rotate-v0", image_size=16)
    env.reset(seed=0)
    yield env
    env.close()


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (np.array([np.nan, 0, 0], np.float32), "NaN"),
        (np.array([np.inf, 0, 0], np.float32), "inf"),
        (np.zeros(4, np.float32), "shape"),
        (np.zeros((1, 3), np.float32), "shape"),
        ("left", "could not convert|shape"),
    ],
)
def test_bad_actions_raise_clear_errors(relative_env, action, message):
    before = relative_env.unwrapped._orientation.copy()
    with pytest.raises(ValueError, match=message):
        relative_env.step(action)
    assert np.array_equal(relative_env.unwrapped._orientation, before)  # state untouched


def test_out_of_range_actions_are_clipped(relative_env):
    unwrapped = relative_env.unwrapped
    start = unwrapped._orientation.copy()
    big = relative_env.step(np.array([5.0, -7.0, 0.0], np.float32))[4]["rel_quat"]
    unwrapped._orientation = start
    clipped = relative_env.step(np.array([1.0, -1.0, 0.0], np.float32))[4]["rel_quat"]
    assert np.allclose(big, clipped)


def test_bad_discrete_and_absolute_actions():
    env = gym.make("SeqJEPA-RotateDiscrete-v0", image_size=16)
    env.reset(seed=0)
    for bad in (6, -1, 2.5):
        with pytest.raises(ValueError, match="discrete action"):
            env.step(bad)
    env = gym.make("SeqJEPA-Rotate3DIEBench-v0", image_size=16)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="zero norm"):
        env.step(np.zeros(4, np.float32))


def test_bad_reset_options(relative_env):
    with pytest.raises(ValueError, match="unknown reset options.*valid: category"):
        relative_env.reset(options={"colour": "red"})
    with pytest.raises(ValueError, match="unknown category 'spaceship'.*airplane"):
        relative_env.reset(options={"category": "spaceship"})
    with pytest.raises(ValueError, match="unknown instance -1"):
        relative_env.reset(options={"category": "mug", "instance": -1})
    with pytest.raises(ValueError, match="needs 'category'"):
        relative_env.reset(options={"instance": 3})
    with pytest.raises(ValueError, match="orientation"):
        relative_env.reset(options={"orientation": [0, 0, 0]})
    _, info = relative_env.reset(options={"category": 5, "instance": 7})
    assert (info["category_name"], info["instance"]) == ("mug", 7)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_size": 0}, "image_size"),
        ({"action_mode": "teleport"}, "action_mode"),
        ({"action_frame": "world"}, "action_frame"),
        ({"max_step_angle": -1.0}, "max_step_angle"),
        ({"action_noise": float("nan")}, "action_noise"),
        ({"render_mode": "human"}, "render_mode"),
        ({"renderer": "vulkan"}, "renderer"),
        ({"catalog": "shapenet"}, "unknown catalog"),
        ({"max_loaded_faces": -5}, "max_loaded_faces"),
        ({"supersample": 0}, "supersample"),
    ],
)
def test_bad_constructor_kwargs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        env = RotateEnv(**kwargs)
        env.reset(seed=0)


def test_observation_and_info_keys_follow_conventions(relative_env):
    obs, info = relative_env.reset(seed=1)
    assert set(obs) == {"view", "action"}
    assert obs["view"].dtype == np.uint8 and obs["view"].shape == (16, 16, 3)
    assert np.array_equal(obs["action"], [0, 0, 0, 1])
    expected = {
        "category", "category_name", "instance", "split", "orientation", "rel_quat",
        "path_quat", "executed_quat", "latents",
    }  # fmt: skip
    assert set(info) == expected
    assert info["split"] == "train"
    assert info["latents"].dtype == np.float32 and info["latents"].shape == (7,)
    assert np.isfinite(info["latents"][:3]).all() and np.isnan(info["latents"][3:]).all()


# -- the batched vector env (several envs per worker)


@pytest.mark.parametrize("workers", [0, 2])
def test_vector_env_matches_single_envs_with_next_step_autoreset(workers):
    vec = gym.make_vec("SeqJEPA-Rotate-v0", num_envs=3, workers=workers, image_size=24,
                       max_episode_steps=4)  # fmt: skip
    singles = [gym.make("SeqJEPA-Rotate-v0", image_size=24, max_episode_steps=4) for _ in range(3)]
    obs, infos = vec.reset(seed=7)
    expected = [s.reset(seed=7 + i) for i, s in enumerate(singles)]
    for i in range(3):
        assert np.array_equal(obs["view"][i], expected[i][0]["view"])
        assert infos["instance"][i] == expected[i][1]["instance"]
    rng = np.random.default_rng(0)
    for t in range(6):
        actions = rng.uniform(-1, 1, (3, 3)).astype(np.float32)
        obs, _, _, truncated, _ = vec.step(actions)
        for i, single in enumerate(singles):
            if t == 4:  # the step after truncation resets (next-step autoreset)
                view = single.reset()[0]["view"]
                assert not truncated[i]
            else:
                view, _, _, trunc, _ = single.step(actions[i])
                view = view["view"]
                assert truncated[i] == trunc == (t == 3)
            assert np.array_equal(obs["view"][i], view)
    vec.close()
    vec.close()


def test_vector_env_reports_worker_errors_and_deaths():
    with pytest.raises(ValueError, match="image_size"):
        gym.make_vec("SeqJEPA-Rotate-v0", num_envs=2, workers=2, image_size=0)
    vec = gym.make_vec("SeqJEPA-Rotate-v0", num_envs=2, workers=2, image_size=16)
    vec.reset(seed=0)
    with pytest.raises(RuntimeError, match=r"(?s)worker 1 .*envs \[1\].*NaN"):
        vec.step(np.array([[0, 0, 0], [np.nan, 0, 0]], np.float32))
    vec.unwrapped._processes[0].kill()
    with pytest.raises(RuntimeError, match="worker 0 .* died"):
        vec.step(np.zeros((2, 3), np.float32))
    vec.close()
