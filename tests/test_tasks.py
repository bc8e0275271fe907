"""The task envs registered by ``import agents``: every id passes Gymnasium's checker and is
deterministic; rewards and success criteria on scripted trajectories (dead reckoning homes
without noise, a random policy mostly fails; recognition rewards telescope)."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

import agents
from agents.homing import Homing
from agents.policies import CoveragePolicy, DeadReckoningPolicy, RandomPolicy, episode_rng
from agents.recognition import ActiveRecognition, Classifier, fit_classifier
from seqjepa.probes import LinearHead
from tests.conftest import homing_success, tiny_checkpoint

TASK_IDS = list(agents.TASK_IDS)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A tiny checkpoint per base env class, each with a fitted classifier beside it."""
    root = tmp_path_factory.mktemp("tasks")
    rotate = tiny_checkpoint(root / "rotate" / "model.pt", "SeqJEPA-Rotate-v0", 24)
    glimpses = {"scene_size": 64, "glimpse_size": 16}
    saccade = tiny_checkpoint(
        root / "saccade" / "model.pt", "SeqJEPA-Saccade-v0", 16, "window", 2, glimpses
    )
    fit_classifier(rotate, "SeqJEPA-Recognition-Rotate-v0", episodes=16)
    fit_classifier(saccade, "SeqJEPA-Recognition-Saccade-v0", episodes=16)
    return {"Rotate": rotate, "Saccade": saccade}


def _checkpoint_for(task_id: str, checkpoints) -> str:
    return str(checkpoints["Saccade" if "Saccade" in task_id else "Rotate"])


@pytest.mark.parametrize("task_id", TASK_IDS)
@pytest.mark.filterwarnings("ignore:.*(unwrapped|infinity).*")
def test_every_task_passes_the_checker_and_is_deterministic(
    task_id, checkpoints, nan_aware_checker
):
    env = gym.make(task_id, checkpoint=_checkpoint_for(task_id, checkpoints))
    nan_aware_checker(env, skip_render_check=True)
    runs = []
    for _ in range(2):
        env.action_space.seed(4)
        obs, _ = env.reset(seed=4)
        trace = [obs["z_agg"]]
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            trace.append(np.append(obs["z_agg"], reward))
            done = terminated or truncated
        runs.append(np.concatenate(trace))
    np.testing.assert_array_equal(runs[0], runs[1])
    restored = pickle.loads(pickle.dumps(env))
    np.testing.assert_allclose(restored.reset(seed=4)[0]["z_agg"], env.reset(seed=4)[0]["z_agg"])


@pytest.mark.parametrize("base", ["Rotate", "Saccade"])
def test_dead_reckoning_homes_without_noise_and_random_mostly_fails(base, checkpoints):
    env = Homing(checkpoints[base], f"SeqJEPA-{base}-v0")
    assert homing_success(env, DeadReckoningPolicy(), 8) == 1.0
    assert homing_success(env, RandomPolicy(), 8) <= 0.25


def test_residual_homing_with_no_correction_is_dead_reckoning(checkpoints):
    env = Homing(checkpoints["Rotate"], residual=0.3)
    assert homing_success(env, DeadReckoningPolicy(), 6) == 1.0  # sends zero corrections
    policy = RandomPolicy()  # random corrections move the end away from home
    _, info = env.reset(seed=0)
    policy.begin(env, episode_rng(0, 0))
    for _ in range(env.budget):
        _, _, done, _, info = env.step(policy.act(None, info))
    assert done and info["error"] > 1.0


def test_actuation_noise_defeats_dead_reckoning(checkpoints):
    env = Homing(checkpoints["Rotate"], base_kwargs={"action_noise": np.radians(8.0)})
    assert homing_success(env, DeadReckoningPolicy(), 12) < 0.75


def test_homing_rewards_sum_to_the_error_reduction(checkpoints):
    env = Homing(checkpoints["Rotate"])
    _, info = env.reset(seed=1)
    start, total = info["error"], 0.0
    for _ in range(env.budget):
        _, reward, done, _, info = env.step(env.action_space.sample())
        total += reward
    assert done
    assert total == pytest.approx((start - info["error"]) / 180.0)


def test_recognition_rewards_telescope_and_sparse_pays_only_when_right(checkpoints):
    dense = ActiveRecognition(checkpoints["Rotate"], budget=3)
    obs, info = dense.reset(seed=2)
    first = np.log(obs["class_probs"][info["label"]])
    total = 0.0
    for _ in range(2):
        obs, reward, done, _, info = dense.step(dense.action_space.sample())
        total += reward
    assert done and info["views"] == 3
    assert total == pytest.approx(np.log(obs["class_probs"][info["label"]]) - first, abs=1e-4)
    with pytest.raises(RuntimeError, match="budget"):
        dense.step(dense.action_space.sample())
    sparse = ActiveRecognition(checkpoints["Rotate"], budget=2, reward="sparse")
    sparse.reset(seed=2)
    _, reward, done, _, info = sparse.step(sparse.action_space.sample())
    assert done and reward == float(info["correct"])


def test_recognition_over_discrete_actions_remembers_what_it_took(checkpoints):
    env = gym.make("SeqJEPA-Recognition-RotatePoses-v0", checkpoint=checkpoints["Rotate"])
    obs, _ = env.reset(seed=0)
    assert obs["taken"].shape == (24,) and not obs["taken"].any()
    for action in (5, np.int64(17), 5):
        obs, *_ = env.step(action)
    assert np.flatnonzero(obs["taken"]).tolist() == [5, 17]
    with pytest.raises(ValueError, match="pose action"):
        env.step(24)
    assert np.flatnonzero(env.reset(seed=1)[0]["taken"]).tolist() == []
    boxed = gym.make("SeqJEPA-Recognition-Rotate-v0", checkpoint=checkpoints["Rotate"])
    assert "taken" not in boxed.reset(seed=0)[0]


def test_coverage_spreads_its_views(checkpoints):
    """Coverage's viewing directions are further apart than a random policy's."""
    env = ActiveRecognition(checkpoints["Rotate"], budget=5)

    def spread(policy) -> float:
        gaps = []
        for episode in range(4):
            obs, info = env.reset(seed=episode)
            policy.begin(env, episode_rng(1, episode))
            start = info["orientation"]
            directions = [np.array([0.0, 0.0, 1.0])]
            for _ in range(4):
                obs, *_, info = env.step(policy.act(obs, info))
                turn = Rotation.from_quat(info["orientation"]) * Rotation.from_quat(start).inv()
                directions.append(turn.inv().apply([0.0, 0.0, 1.0]))
            d = np.array(directions)
            cos = d @ d.T
            gaps.append(np.arccos(np.clip(cos[np.triu_indices(5, 1)], -1, 1)).min())
        return float(np.mean(gaps))

    assert spread(CoveragePolicy()) > spread(RandomPolicy())


def test_classifier_errors_name_the_problem(checkpoints, tmp_path):
    with pytest.raises(FileNotFoundError, match="seqjepa-gym classifier"):
        ActiveRecognition(checkpoints["Rotate"], classifier=tmp_path / "none.npz")
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="not a classifier"):
        Classifier.load(tmp_path / "bad.npz")
    narrow = LinearHead(torch.zeros(3, 10), torch.zeros(3), torch.zeros(10), torch.ones(10), 0, 0)
    with pytest.raises(ValueError, match="10-d features"):
        ActiveRecognition(checkpoints["Rotate"], classifier=Classifier([narrow], ["a", "b", "c"]))
    with pytest.raises(ValueError, match="SeqJEPA-Rotate-v0"):
        ActiveRecognition(checkpoints["Rotate"], base="SeqJEPA-Saccade-v0")


def test_classifier_round_trips_through_its_file(checkpoints, tmp_path):
    saved = Classifier.load(checkpoints["Rotate"].parent / "classifier.npz")
    assert len(saved.heads) == 5  # one per view of the task's budget
    copy = Classifier.load(saved.save(tmp_path / "copy.npz"))
    z = np.random.default_rng(0).normal(size=saved.feature_dim).astype(np.float32)
    for views in (1, 3, 9):
        np.testing.assert_array_equal(saved.log_probs(z, views), copy.log_probs(z, views))
    assert copy.categories == saved.categories


@pytest.mark.slow
@pytest.mark.parametrize(
    ("task", "keys"),
    [
        ("SeqJEPA-Recognition-Rotate-v0", ()),
        ("SeqJEPA-Homing-Rotate-v0", ()),
        ("SeqJEPA-Recognition-RotatePoses-v0", ("steps_left", "taken")),
    ],
)
def test_ppo_trains_a_few_hundred_steps_and_its_policy_runs(task, keys, checkpoints, tmp_path):
    from agents.evaluation import run_episodes
    from agents.ppo import AgentConfig, PPOPolicy, train_agent

    cfg = AgentConfig(
        task=task,
        checkpoint=str(checkpoints["Rotate"]),
        out=str(tmp_path / "ppo"),
        steps=256,
        envs=2,
        n_steps=64,
        batch_size=32,
        epochs=1,
        observation_keys=keys,
        log_std_init=-1.0,
    )
    path = train_agent(cfg)
    assert path.is_file() and (tmp_path / "ppo" / "progress.csv").is_file()
    assert (tmp_path / "ppo" / "normalisation.npz").is_file()
    policy = PPOPolicy(path)
    assert set(policy.model.observation_space.spaces) >= set(keys)
    if keys:
        assert set(policy.model.observation_space.spaces) == set(keys)
    if "Homing" in task:  # a Box action: its Gaussian started narrow, and 256 steps keep it so
        assert np.allclose(policy.model.policy.log_std.detach().numpy(), -1.0, atol=0.05)
    records = run_episodes(task, checkpoints["Rotate"], policy, 2, seed=0)
    with pytest.raises(ValueError, match="which this task's observation lacks"):
        policy.act({"view": np.zeros((24, 24, 3), np.uint8)}, {})
    assert len(records) == 2
    assert "correct" in records[0] or "success" in records[0]


def test_curiosity_reward_is_the_world_models_loss_on_that_view(checkpoints):
    from agents.curiosity import Curiosity
    from agents.representation import load_world_model
    from seqjepa.data import subset_actions

    world = load_world_model(checkpoints["Rotate"])
    env = Curiosity(world, budget=3)
    _, info = env.reset(seed=0)
    views, orientations = [env.env.last_view], [info["orientation"]]
    _, reward, _, _, info = env.step(env.action_space.sample())
    views.append(env.env.last_view)
    orientations.append(info["orientation"])
    actions = torch.from_numpy(subset_actions(np.stack(orientations)))[None]
    with torch.no_grad():
        world.model.eval()
        loss, _ = world.model.loss(torch.from_numpy(np.stack(views))[None], actions)
    assert reward == pytest.approx(float(loss), abs=1e-5)


@pytest.mark.slow
def test_curiosity_policy_collects_a_dataset(checkpoints, tmp_path):
    import json

    from agents.ppo import AgentConfig, train_agent
    from experiments import collect
    from seqjepa.rollouts import RolloutDataset

    cfg = AgentConfig(
        task="SeqJEPA-Curiosity-Rotate-v0",
        checkpoint=str(checkpoints["Rotate"]),
        out=str(tmp_path / "ppo"),
        steps=128,
        envs=2,
        n_steps=64,
        batch_size=32,
        epochs=1,
    )
    policy = train_agent(cfg)
    kwargs = {"policy": str(policy), "checkpoint": str(checkpoints["Rotate"])}
    for name in ("a", "b"):
        collect.run(
            collect.CollectConfig(
                env="SeqJEPA-Rotate-v0",
                out=str(tmp_path / name),
                env_kwargs=json.dumps({"image_size": 24, "max_step_angle": np.pi / 2}),
                policy="curiosity",
                policy_kwargs=json.dumps(kwargs),
                episodes=2,
                episode_length=3,
                shard_episodes=2,
            )
        )
    a, b = RolloutDataset(tmp_path / "a"), RolloutDataset(tmp_path / "b")
    assert len(a) == 2
    np.testing.assert_array_equal(a.episode(1)["views"], b.episode(1)["views"])
    np.testing.assert_array_equal(a.episode(1)["actions"], b.episode(1)["actions"])
