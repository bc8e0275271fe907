"""PPO (stable-baselines3) on a task's representation observations.

The task envs already observe through the frozen world model, so the PPO policy is a small MLP
over the flat Dict of vectors (SB3's MultiInputPolicy). The world model is loaded once and
shared by the envs of the DummyVecEnv (it is frozen: nothing to keep apart).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import FilterObservation
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
from tqdm import tqdm

import agents  # noqa: F401  (registers the task ids)
from agents.policies import Policy
from agents.representation import WorldModel, load_world_model
from seqjepa.rollouts import write_npz_atomic, write_text_atomic


@dataclass
class AgentConfig:
    """One PPO run on a task."""

    task: str = "SeqJEPA-Recognition-Rotate-v0"
    """Task id (registered by ``import agents``)."""
    checkpoint: str = ""
    """World model checkpoint (file or run folder) the task observes through."""
    task_kwargs: str = "{}"
    """JSON object of further task kwargs (e.g. {"budget": 8}); split is always train."""
    out: str = "runs/agent"
    """Folder for policy.zip, config.json and progress.csv."""
    steps: int = 20_000
    """Environment steps to train for."""
    envs: int = 4
    """Parallel envs (one process; they share the world model)."""
    n_steps: int = 64
    """Steps per env between PPO updates."""
    batch_size: int = 64
    """PPO minibatch size."""
    epochs: int = 4
    """PPO epochs per update."""
    lr: float = 3e-4
    """Adam learning rate."""
    gamma: float = 0.95
    """Discount (episodes are a handful of steps)."""
    ent_coef: float = 0.01
    """Entropy bonus: keeps the policy exploring early on."""
    log_std_init: float = 0.0
    """Initial log standard deviation of a Box action's Gaussian (SB3's default 0: std 1, the
    whole action range; a residual correction wants less). Unused for Discrete actions."""
    observation_keys: tuple[str, ...] = ()
    """The task's observation keys the policy sees (empty: all of them). E.g. ("steps_left",
    "taken") for a pose choice that ignores the world model's ~850 feature dimensions."""
    normalise: bool = True
    """Normalise observations by running mean and std (SB3's VecNormalize; saved beside the
    policy as normalisation.npz and applied by PPOPolicy) and rewards by the return's scale.
    The world model's features have arbitrary scales, and hundreds of them sit beside the few
    numbers a task's policy needs most (steps left, dead reckoning)."""
    seed: int = 0
    """Seeds PPO, the envs and their objects."""
    device: str = "cpu"
    """Where PPO and the world model run (small MLPs: CPU is usually faster)."""


class ProgressBar(BaseCallback):
    """A tqdm bar over environment steps. (SB3's own progress bar needs ``rich``, which this
    project does not otherwise depend on.)"""

    def __init__(self, total: int) -> None:
        super().__init__()
        self.total = total

    def _on_training_start(self) -> None:
        self.bar = tqdm(total=self.total, desc="ppo", unit="step")

    def _on_step(self) -> bool:
        self.bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


def make_task_vec(
    task: str,
    world: WorldModel,
    kwargs: dict[str, Any],
    envs: int,
    seed: int,
    keys: tuple[str, ...] = (),
) -> DummyVecEnv:
    """``envs`` copies of the task in one DummyVecEnv, seeded ``seed``, ``seed + 1``, ...,
    observing only ``keys`` when given."""

    def make() -> gym.Env:
        env = gym.make(task, checkpoint=world, **kwargs)
        return FilterObservation(env, list(keys)) if keys else env

    venv = DummyVecEnv([make] * envs)
    venv.seed(seed)
    return venv


def train_agent(cfg: AgentConfig) -> Path:
    """Train PPO on ``cfg.task`` and save ``out/policy.zip``; returns its path."""
    if not cfg.checkpoint:
        raise ValueError("--checkpoint is required: the world model the task observes through")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    world = load_world_model(cfg.checkpoint, cfg.device)
    kwargs = json.loads(cfg.task_kwargs) | {"split": "train"}
    venv = make_task_vec(cfg.task, world, kwargs, cfg.envs, cfg.seed, cfg.observation_keys)
    if cfg.normalise:
        venv = VecNormalize(venv, norm_obs=True, norm_reward=True, gamma=cfg.gamma)
    model = PPO(
        "MultiInputPolicy",
        venv,
        n_steps=cfg.n_steps,
        batch_size=cfg.batch_size,
        n_epochs=cfg.epochs,
        learning_rate=cfg.lr,
        gamma=cfg.gamma,
        ent_coef=cfg.ent_coef,
        policy_kwargs={"log_std_init": cfg.log_std_init},
        seed=cfg.seed,
        device=cfg.device,
        verbose=0,
    )
    model.set_logger(configure(str(out), ["csv"]))
    model.learn(cfg.steps, callback=ProgressBar(cfg.steps))
    path = out / "policy.zip"
    if isinstance(venv, VecNormalize):  # before the policy: a policy.zip is a finished run
        save_normalisation(venv, out / NORMALISATION_FILE)
    else:
        (out / NORMALISATION_FILE).unlink(missing_ok=True)
    tmp = out / ".policy.tmp.zip"
    model.save(tmp)
    tmp.replace(path)
    write_text_atomic(out / "config.json", json.dumps(asdict(cfg), indent=1))
    venv.close()
    return path


NORMALISATION_FILE = "normalisation.npz"


def save_normalisation(venv: VecNormalize, path: Path) -> None:
    """The observation statistics as plain arrays (VecNormalize.save would pickle)."""
    arrays = {"clip_obs": np.array(venv.clip_obs), "epsilon": np.array(venv.epsilon)}
    for key, rms in venv.obs_rms.items():
        arrays[f"mean/{key}"], arrays[f"var/{key}"] = rms.mean, rms.var
    write_npz_atomic(path, **arrays)


class PPOPolicy(Policy):
    """A saved PPO policy behind the suite's Policy interface (deterministic actions), with the
    observation normalisation it was trained with (normalisation.npz beside it).

    Note: SB3's policy.zip stores the spaces with cloudpickle, so loading one unpickles: load
    only policies you trust (the world model and the datasets never unpickle)."""

    name = "ppo"

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no PPO policy at {path}")
        self.model = PPO.load(path, device=device)
        self.stats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        stats_path = path.with_name(NORMALISATION_FILE)
        if stats_path.is_file():
            with np.load(stats_path, allow_pickle=False) as data:
                self.clip, self.epsilon = float(data["clip_obs"]), float(data["epsilon"])
                for name in data.files:
                    if name.startswith("mean/"):
                        key = name.removeprefix("mean/")
                        self.stats[key] = (data[name], data[f"var/{key}"])

    def normalise(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = dict(obs)
        for key, (mean, var) in self.stats.items():
            scaled = (obs[key] - mean) / np.sqrt(var + self.epsilon)
            out[key] = np.clip(scaled, -self.clip, self.clip).astype(np.float32)
        return out

    def act(self, obs, info):
        keys = list(self.model.observation_space.spaces)  # what it was trained to see
        missing = [key for key in keys if key not in obs]
        if missing:
            raise ValueError(
                f"this PPO policy reads {missing}, which this task's observation lacks "
                f"(it has {sorted(obs)}): run it on the task it was trained on"
            )
        seen = {key: obs[key] for key in keys}
        action, _ = self.model.predict(self.normalise(seen), deterministic=True)
        return np.asarray(action)
