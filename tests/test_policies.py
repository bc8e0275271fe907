"""Data-collection policies: per-episode seeding, uniform views, saliency with inhibition."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from agents.policies import (
    BatchActor,
    RandomPolicy,
    SaliencyIORPolicy,
    UniformViewsPolicy,
    episode_rng,
    make_policy,
)
from envs.glimpse import to_pixels
from envs.rotations import geodesic_deg, sample_3diebench
from tests.conftest import make_env


def test_episode_rng_depends_only_on_seed_and_episode():
    assert episode_rng(1, 5).integers(1 << 30) == episode_rng(1, 5).integers(1 << 30)
    assert episode_rng(1, 5).integers(1 << 30) != episode_rng(1, 6).integers(1 << 30)
    assert episode_rng(1, 5).integers(1 << 30) != episode_rng(2, 5).integers(1 << 30)


@pytest.mark.parametrize("env_id", ["SeqJEPA-Rotate-v0", "SeqJEPA-RotateDiscrete-v0",
                                    "SeqJEPA-Saccade-v0"])  # fmt: skip
def test_random_policy_is_seeded_by_the_episode(env_id):
    env = make_env(env_id)
    env.reset(seed=0)
    actions = []
    for _ in range(2):
        policy = RandomPolicy()
        policy.begin(env, episode_rng(3, 9))
        actions.append([np.asarray(policy.act({}, {})) for _ in range(5)])
    assert all(np.array_equal(a, b) for a, b in zip(*actions, strict=True))
    assert all(env.action_space.contains(a) for a in actions[0])


def test_uniform_views_jump_to_independent_orientations():
    env = gym.make("SeqJEPA-Rotate3DIEBench-v0", image_size=16)
    obs, info = env.reset(seed=0)
    policy = UniformViewsPolicy()
    policy.begin(env, episode_rng(0, 0))
    angles = []
    for _ in range(40):
        action = policy.act(obs, info)
        obs, _, _, _, info = env.step(action)
        assert geodesic_deg(info["orientation"], action) < 0.1  # float32 action
        angles.append(Rotation.from_quat(info["orientation"]).as_euler("xyz"))
    angles = np.array(angles)
    assert np.abs(angles).max() <= np.pi / 2 + 1e-6 and angles.std(axis=0).min() > 0.5
    with pytest.raises(ValueError, match="absolute"):
        UniformViewsPolicy().begin(gym.make("SeqJEPA-Rotate-v0", image_size=16), episode_rng(0, 0))


def test_saliency_ior_never_revisits_a_fixation_while_the_map_lasts():
    env = make_env("SeqJEPA-Saccade-v0", action_mode="absolute")
    obs, info = env.reset(seed=1)
    policy = SaliencyIORPolicy()
    policy.begin(env, episode_rng(0, 1))
    glimpse = env.unwrapped.fovea.glimpse_size
    visited = [to_pixels(obs["position"], 64)]
    for _ in range(6):
        obs, _, _, _, info = env.step(policy.act(obs, info))
        here = to_pixels(obs["position"], 64)
        # inhibition of return: no earlier fixation lies inside the square zeroed around it
        assert all(np.abs(here - seen).max() > glimpse / 2 - 1 for seen in visited)
        visited.append(here)
    assert np.isclose(policy.map.sum(), 1)
    with pytest.raises(ValueError, match="glimpse env"):
        SaliencyIORPolicy().begin(gym.make("SeqJEPA-Rotate-v0", image_size=16), episode_rng(0, 0))


def test_batch_actor_drives_a_vector_env():
    vec = gym.make_vec("SeqJEPA-Rotate-v0", num_envs=3, image_size=16)
    obs, infos = vec.reset(seed=0)
    actor = BatchActor("random", 3, seed=4)
    single = gym.make("SeqJEPA-Rotate-v0", image_size=16)
    for slot in range(3):
        actor.start(slot, single, episode=slot)
    actions = actor.act(obs, infos)
    assert actions.shape == (3, 3) and vec.action_space.contains(actions)
    vec.step(actions)
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("greedy")


def test_ood_views_lie_outside_the_3diebench_range_and_the_papers_recipe_does_not():
    rng = np.random.default_rng(0)
    inside = Rotation.from_quat([sample_3diebench(rng) for _ in range(500)]).as_euler("xyz")
    outside = Rotation.from_quat([sample_3diebench(rng, True) for _ in range(500)]).as_euler("xyz")
    assert np.abs(inside[:, [0, 2]]).max() <= np.pi / 2 + 1e-9
    assert (np.abs(outside[:, [0, 2]]).max(axis=1) > np.pi / 2).all()
    # seq-JEPA's recipe (each angle from +-[pi/2, pi]) lands back inside the training range
    recipe = rng.uniform(np.pi / 2, np.pi, (500, 3)) * rng.choice([-1, 1], (500, 3))
    assert np.abs(Rotation.from_euler("xyz", recipe).as_euler("xyz")).max() <= np.pi / 2 + 1e-9
    env = gym.make("SeqJEPA-Rotate-v0", image_size=16, action_mode="absolute",
                   initial_orientation="3diebench-ood")  # fmt: skip
    obs, info = env.reset(seed=0)
    policy = make_policy("uniform-views-ood")
    policy.begin(env, episode_rng(0, 0))
    for _ in range(10):
        first, _, last = Rotation.from_quat(info["orientation"]).as_euler("xyz")
        assert max(abs(first), abs(last)) > np.pi / 2
        obs, _, _, _, info = env.step(policy.act(obs, info))
