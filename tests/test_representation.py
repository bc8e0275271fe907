"""The representation wrapper: shapes, incremental == batch z_AGG, vector envs (Gymnasium's and
stable-baselines3's, with their autoreset semantics), and clear errors for a checkpoint that
does not fit the env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.env_util import make_vec_env

import envs  # noqa: F401  (registers the ids)
from agents.representation import (
    RepresentationVecEnv,
    RepresentationVectorWrapper,
    RepresentationWrapper,
    load_world_model,
)
from seqjepa.data import subset_actions
from tests.conftest import tiny_checkpoint

SIZE = 24


@pytest.fixture(scope="module")
def rotate_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "rotate.pt"
    return tiny_checkpoint(path, "SeqJEPA-Rotate-v0", SIZE)


@pytest.fixture(scope="module")
def saccade_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "saccade.pt"
    return tiny_checkpoint(path, "SeqJEPA-Saccade-v0", 16, mode="window", action_dim=2)


def _episode(env, seed: int, steps: int):
    env.action_space.seed(seed)
    obs, info = env.reset(seed=seed)
    out = [(obs, info)]
    for _ in range(steps):
        obs, *_, info = env.step(env.action_space.sample())
        out.append((obs, info))
    return out


def test_incremental_z_agg_equals_the_batch_computation(rotate_ckpt):
    base = gym.make("SeqJEPA-Rotate-v0", image_size=SIZE)
    wrapped = RepresentationWrapper(gym.make("SeqJEPA-Rotate-v0", image_size=SIZE), rotate_ckpt)
    assert wrapped.observation_space["z_agg"].shape == (wrapped.world.d_model,)
    raw = _episode(base, 3, 5)
    rep = _episode(wrapped, 3, 5)
    world = load_world_model(rotate_ckpt)
    views = torch.from_numpy(np.stack([o["view"] for o, _ in raw]))[None]
    transitions = subset_actions(np.stack([i["orientation"] for _, i in raw]))[1:]
    with torch.no_grad():
        for m in range(1, 7):
            moves = torch.from_numpy(transitions[None, : m - 1])
            z_agg, z = world.model.aggregate(views[:, :m], moves)
            obs = rep[m - 1][0]
            assert wrapped.observation_space.contains(obs)
            np.testing.assert_allclose(obs["z_agg"], z_agg[0].numpy(), atol=1e-4)
            np.testing.assert_allclose(obs["z"], z[0, -1].numpy(), atol=1e-4)
    # the representation changes as views arrive
    assert not np.allclose(rep[0][0]["z_agg"], rep[3][0]["z_agg"])


def test_window_keeps_the_last_views(rotate_ckpt):
    wrapped = RepresentationWrapper(
        gym.make("SeqJEPA-Rotate-v0", image_size=SIZE), rotate_ckpt, window=2
    )
    _episode(wrapped, 0, 4)
    assert wrapped.representer.views_seen(0) == 2


def test_glimpse_wrapper_keeps_base_keys(saccade_ckpt):
    env = gym.make("SeqJEPA-Saccade-v0", scene_size=64, glimpse_size=16)
    wrapped = RepresentationWrapper(env, saccade_ckpt, keep=("position",))
    for obs, _ in _episode(wrapped, 1, 3):
        assert wrapped.observation_space.contains(obs)


def test_gymnasium_vector_wrapper_matches_single_envs_across_autoresets(rotate_ckpt):
    steps, n = 7, 2  # episodes of 3 steps: autoresets inside the run
    vector = gym.make_vec("SeqJEPA-Rotate-v0", n, "sync", image_size=SIZE, max_episode_steps=3)
    wrapped = RepresentationVectorWrapper(vector, rotate_ckpt)
    singles = [
        RepresentationWrapper(
            gym.make("SeqJEPA-Rotate-v0", image_size=SIZE, max_episode_steps=3), rotate_ckpt
        )
        for _ in range(n)
    ]
    rng = np.random.default_rng(0)
    obs, _ = wrapped.reset(seed=[10, 11])
    single_obs = [s.reset(seed=10 + k)[0] for k, s in enumerate(singles)]
    ended = np.zeros(n, bool)
    for _ in range(steps):
        for k in range(n):
            np.testing.assert_allclose(obs["z_agg"][k], single_obs[k]["z_agg"], atol=1e-4)
        actions = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
        obs, _, term, trunc, _ = wrapped.step(actions)
        for k, single in enumerate(singles):
            if ended[k]:
                single_obs[k] = single.reset()[0]
            else:
                single_obs[k] = single.step(actions[k])[0]
        ended = term | trunc


def test_sb3_vecenv_wrapper_matches_single_envs_and_encodes_terminal_views(rotate_ckpt):
    kwargs = {"image_size": SIZE, "max_episode_steps": 2}
    venv = make_vec_env("SeqJEPA-Rotate-v0", n_envs=2, seed=5, env_kwargs=kwargs)
    wrapped = RepresentationVecEnv(venv, rotate_ckpt)
    per_env = make_vec_env(
        "SeqJEPA-Rotate-v0",
        n_envs=2,
        seed=5,
        env_kwargs=kwargs,
        wrapper_class=RepresentationWrapper,
        wrapper_kwargs={"checkpoint": rotate_ckpt},
    )
    obs, reference = wrapped.reset(), per_env.reset()
    np.testing.assert_allclose(obs["z_agg"], reference["z_agg"], atol=1e-4)
    rng = np.random.default_rng(1)
    saw_terminal = False
    for _ in range(5):
        actions = rng.uniform(-1, 1, (2, 3)).astype(np.float32)
        obs, _, dones, infos = wrapped.step(actions)
        reference, _, ref_dones, ref_infos = per_env.step(actions)
        np.testing.assert_array_equal(dones, ref_dones)
        np.testing.assert_allclose(obs["z_agg"], reference["z_agg"], atol=1e-4)
        for i in np.flatnonzero(dones):
            saw_terminal = True
            np.testing.assert_allclose(
                infos[i]["terminal_observation"]["z_agg"],
                ref_infos[i]["terminal_observation"]["z_agg"],
                atol=1e-4,
            )
    assert saw_terminal


def test_mismatched_checkpoints_are_refused_with_the_reason(rotate_ckpt, saccade_ckpt, tmp_path):
    with pytest.raises(ValueError, match="24 px"):
        RepresentationWrapper(gym.make("SeqJEPA-Rotate-v0", image_size=32), rotate_ckpt)
    with pytest.raises(ValueError, match="SaccadeEnv"):
        RepresentationWrapper(
            gym.make("SeqJEPA-Saccade-v0", scene_size=64, glimpse_size=24), rotate_ckpt
        )
    with pytest.raises(ValueError, match="RotateEnv"):
        RepresentationWrapper(gym.make("SeqJEPA-Rotate-v0", image_size=16), saccade_ckpt)
    odd = tiny_checkpoint(tmp_path / "odd.pt", "SeqJEPA-Saccade-v0", 16, "window", action_dim=6)
    with pytest.raises(ValueError, match="6-d actions"):
        RepresentationWrapper(gym.make("SeqJEPA-Saccade-v0", scene_size=64, glimpse_size=16), odd)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_world_model(tmp_path / "missing.pt")


def test_sb3_ppo_reads_the_representation_as_a_box_and_as_a_dict(rotate_ckpt):
    from gymnasium.wrappers import FlattenObservation
    from stable_baselines3 import PPO

    def boxed(env):
        return FlattenObservation(RepresentationWrapper(env, rotate_ckpt))

    kwargs = {"image_size": SIZE, "max_episode_steps": 4}
    box = make_vec_env("SeqJEPA-Rotate-v0", 2, seed=0, env_kwargs=kwargs, wrapper_class=boxed)
    assert isinstance(box.observation_space, gym.spaces.Box)
    PPO("MlpPolicy", box, n_steps=16, batch_size=16, n_epochs=1, seed=0).learn(32)
    rep = RepresentationVecEnv(
        make_vec_env("SeqJEPA-Rotate-v0", 2, seed=0, env_kwargs=kwargs), rotate_ckpt
    )
    PPO("MultiInputPolicy", rep, n_steps=16, batch_size=16, n_epochs=1, seed=0).learn(32)
