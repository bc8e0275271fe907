"""Live training data: sequences rolled out in a vector env on demand, nothing written to disk.

Batch k holds ``batch_size`` fresh episodes of ``length`` observations; episode b of batch k
resets its env with a seed derived from (seed, k, b) and its actions come from a generator
seeded the same way, so batch k is the same in every run: a resumed run sees the data it would
have seen, and DDP ranks (which take disjoint episodes of each batch) see their shares.

The policy is any callable ``policy(obs, action_space, rng) -> action`` for one env, so this
module needs no agents; the default samples uniformly from the action space.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

Policy = Callable[[dict[str, np.ndarray], gym.Space, np.random.Generator], Any]


def uniform_policy(obs: dict[str, np.ndarray], space: gym.Space, rng: np.random.Generator):
    """Uniform in a Box or Discrete action space, from ``rng``."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.start + rng.integers(space.n))
    return rng.uniform(space.low, space.high).astype(space.dtype)


class LiveSequences:
    """Roll out sequences for training, batch by batch.

    Args:
        env_id: a registered id (``import envs`` registers them).
        length: observations per sequence, M+1.
        env_kwargs: the env's keyword arguments.
        policy: the per-env policy callable (default: uniform).
        seed: the data seed.
        workers: BatchedVectorEnv worker processes (0: in this process).
        num_envs: envs stepped side by side (episodes of a batch are spread over them).
    """

    def __init__(
        self,
        env_id: str,
        length: int,
        env_kwargs: dict[str, Any] | None = None,
        policy: Policy = uniform_policy,
        seed: int = 0,
        workers: int = 0,
        num_envs: int = 8,
    ) -> None:
        import envs  # noqa: F401  (registers the ids; only live training needs the envs)

        if length < 2:
            raise ValueError(f"a sequence needs >= 2 observations, got length {length}")
        self.length = int(length)
        self.policy = policy
        self.seed = int(seed)
        self.vector = gym.make_vec(
            env_id,
            num_envs=num_envs,
            vectorization_mode="vector_entry_point",
            workers=workers,
            max_episode_steps=self.length,
            **(env_kwargs or {}),
        )
        self.action_dim = int(self.vector.single_observation_space["action"].shape[0])
        probe = gym.make(env_id, **(env_kwargs or {})).unwrapped
        owner = getattr(probe, "catalog", None) or getattr(probe, "images", None)
        self.num_classes = len(owner.categories)
        probe.close()

    def batch(
        self, step: int, batch_size: int, rank: int = 0, world_size: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """This rank's share of batch ``step``: (views, actions, labels) like SequenceDataset's."""
        per_rank = batch_size // world_size
        episodes = list(range(rank * per_rank, (rank + 1) * per_rank))
        views, actions, labels = [], [], []
        n = self.vector.num_envs
        for first in range(0, len(episodes), n):
            group = episodes[first : first + n]
            v, a, lab = self._rollout(step, group + group[-1:] * (n - len(group)))
            views.append(v[: len(group)])
            actions.append(a[: len(group)])
            labels.append(lab[: len(group)])
        return (
            torch.from_numpy(np.concatenate(views)),
            torch.from_numpy(np.concatenate(actions)),
            torch.from_numpy(np.concatenate(labels)),
        )

    def _rollout(self, step: int, episodes: list[int]):
        rngs = [np.random.default_rng([self.seed, step, e]) for e in episodes]
        seeds = [int(rng.integers(2**31)) for rng in rngs]
        obs, infos = self.vector.reset(seed=seeds)
        views, actions = [obs["view"]], [obs["action"]]
        space = self.vector.single_action_space
        for _ in range(self.length - 1):
            batch = [
                self.policy({k: v[i] for k, v in obs.items()}, space, rngs[i])
                for i in range(len(episodes))
            ]
            obs, *_ = self.vector.step(np.stack([np.asarray(b) for b in batch]))
            views.append(obs["view"])
            actions.append(obs["action"])
        return (
            np.stack(views, axis=1),
            np.stack(actions, axis=1).astype(np.float32),
            np.asarray(infos["category"], dtype=np.int64),
        )

    def close(self) -> None:
        self.vector.close()
