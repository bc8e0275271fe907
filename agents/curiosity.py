"""Curiosity: a task rewarded by the world model's prediction error, and the collection policy
that a PPO agent trained on it becomes.

``Curiosity`` (id SeqJEPA-Curiosity-Rotate-v0): episodes of ``budget`` views. The reward for a
step is the frozen world model's surprise at the view the action produced:
1 - cos(predictor(z_AGG of the views before, the transition), target encoder(new view)). This
is the seq-JEPA loss of that one prediction. An agent maximising it seeks the views its world
model predicts worst.

``CuriosityPolicy`` replays a PPO policy trained on that task inside any collection run over the
base env. It rebuilds the task's observation from the base observations it is shown, so
`seqjepa-gym collect --policy curiosity` records the views that a curious agent would choose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from agents.policies import Policy
from agents.representation import (
    RepresentationWrapper,
    Representer,
    TransitionReader,
    WorldModel,
    load_world_model,
)
from agents.tasks import world_and_base


def surprise(world: WorldModel, z_agg: np.ndarray, move: torch.Tensor, view: np.ndarray) -> float:
    """1 - cos(prediction, EMA-target z) of one view (the training loss of one sample)."""
    model = world.model
    with torch.no_grad():
        agg = torch.as_tensor(z_agg, device=world.device)[None]
        prediction = model.predict(agg, move.to(world.device)[None])
        target = model.encode(torch.from_numpy(view[None]).to(world.device), target=True)
        return float(1 - F.cosine_similarity(prediction.float(), target.float()).item())


class Curiosity(gym.Wrapper):
    """Seek the views the world model predicts worst (module docstring).

    Args:
        checkpoint: the world model (file, run folder or a loaded WorldModel).
        base: the base env id (a Rotate id the checkpoint fits).
        budget: views per episode, the first included.
        split: catalog split of the objects.
        base_kwargs: further base-env kwargs.
        device: where the world model runs.
    """

    def __init__(
        self,
        checkpoint: str | Path | WorldModel,
        base: str = "SeqJEPA-Rotate-v0",
        budget: int = 8,
        split: str | None = "train",
        base_kwargs: dict[str, Any] | None = None,
        device: str = "auto",
    ) -> None:
        if not isinstance(budget, (int, np.integer)) or budget < 2:
            raise ValueError(f"budget must be an integer >= 2 views, got {budget!r}")
        world, base_env = world_and_base(checkpoint, base, split, base_kwargs, device)
        if not hasattr(world.model, "predict"):
            raise ValueError(
                f"checkpoint {world.path}: a {world.train_cfg.method} model has no predictor"
            )
        super().__init__(RepresentationWrapper(base_env, world))
        self.world = world
        self.budget = int(budget)
        steps_left = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self.observation_space = gym.spaces.Dict(
            dict(self.env.observation_space.spaces) | {"steps_left": steps_left}
        )

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._views = 1
        self._z_agg = obs["z_agg"]
        return self._observation(obs), info

    def step(self, action):
        if self._views >= self.budget:
            raise RuntimeError("the view budget is spent: reset() first")
        obs, _, _, truncated, info = self.env.step(action)
        self._views += 1
        move = self.env.representer.moves[0][-1]
        reward = surprise(self.world, self._z_agg, move, self.env.last_view)
        self._z_agg = obs["z_agg"]
        done = self._views >= self.budget
        return self._observation(obs), reward, done, truncated, info | {"surprise": reward}

    def _observation(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        left = (self.budget - self._views) / (self.budget - 1)
        return obs | {"steps_left": np.array([left], np.float32)}


class CuriosityPolicy(Policy):
    """A PPO policy trained on ``Curiosity``, acting on the base env's own observations.

    Args:
        policy: the saved PPO policy (policy.zip).
        checkpoint: the world model the policy was trained to observe through.
        budget: the task's budget (its steps_left is rebuilt from it).
    """

    name = "curiosity"

    def __init__(self, policy: str, checkpoint: str, budget: int = 8) -> None:
        from agents.ppo import PPOPolicy  # SB3 only when the policy is used

        self.ppo = PPOPolicy(policy)
        self.world = load_world_model(checkpoint, "cpu")
        self.budget = int(budget)

    def begin(self, env, rng):
        super().begin(env, rng)
        self.representer = Representer(self.world, 1)
        self.transitions = TransitionReader(self.world.train_cfg, 1)
        self.views = 0

    def act(self, obs, info):
        slot, batch = np.array([0]), {k: np.asarray(v)[None] for k, v in info.items()}
        if self.views == 0:
            self.representer.start(slot, obs["view"][None])
            self.transitions.start(slot, batch)
        else:
            moves = self.transitions.next(slot, obs["action"][None], batch)
            self.representer.observe(slot, obs["view"][None], moves)
        self.views += 1
        features = {k: v[0] for k, v in self.representer.features(slot).items()}
        left = max(self.budget - self.views, 0) / (self.budget - 1)
        return self.ppo.act(features | {"steps_left": np.array([left], np.float32)}, info)
