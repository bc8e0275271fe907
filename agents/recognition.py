"""Active recognition: name the object after a budget of views (or glimpses) the agent chooses.

Episode: reset shows the first view; the agent then takes ``budget - 1`` actions, each adding
a view; the episode terminates when the budget is spent. Observation: the world model's z_AGG
and latest z, the fraction of the budget left, and the classifier's class probabilities.
Reward ("dense"): the gain in log-probability of the true class per step,
log p_t(y) - log p_{t-1}(y), so an episode's return is log p_T(y) - log p_1(y); ("sparse"): 1
at the end when the classifier's top class is right. ``info["correct"]`` says at every step
whether the top class is right now: accuracy at each number of views is its mean.

The classifier is the evaluation suite's linear probe (``seqjepa.probes.fit_linear_head``) on
z_AGG, fitted by ``fit_classifier`` on train-split episodes of the same task pooled over 1..T
views, its L2 penalty chosen on held-out train instances. It is saved beside the checkpoint
(``classifier.npz``, no pickles) and found there by default.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from agents.policies import RandomPolicy, episode_rng
from agents.representation import RepresentationWrapper, WorldModel, load_world_model
from agents.tasks import make_base_env
from seqjepa.probes import LinearHead, Samples, fit_linear_head

REWARDS = ("dense", "sparse")
CLASSIFIER_FILE = "classifier.npz"


class Classifier:
    """A linear head over z_AGG and the category names it outputs (in order)."""

    def __init__(self, head: LinearHead, categories: list[str]) -> None:
        self.head = head
        self.categories = list(categories)

    def log_probs(self, z_agg: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = self.head.logits(torch.as_tensor(z_agg)[None])
            return torch.log_softmax(logits, -1)[0].numpy()

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("wb") as f:  # np.savez on a file object: the name stays ours
            np.savez(
                f,
                **{k: getattr(self.head, k).numpy() for k in ("weight", "bias", "mean", "std")},
                categories=np.array(self.categories),
                weight_decay=self.head.weight_decay,
                heldout_top1=self.head.heldout_top1,
            )
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Classifier:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"no classifier at {path}: fit one with `seqjepa-gym classifier --checkpoint "
                "CKPT` (it is written beside the checkpoint)"
            )
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: torch.from_numpy(data[k]) for k in ("weight", "bias", "mean", "std")}
                head = LinearHead(
                    **arrays,
                    weight_decay=float(data["weight_decay"]),
                    heldout_top1=float(data["heldout_top1"]),
                )
                categories = [str(c) for c in data["categories"]]
        except (KeyError, ValueError, OSError) as err:
            raise ValueError(f"{path}: not a classifier file ({err})") from None
        return cls(head, categories)


def default_classifier_path(world: WorldModel) -> Path:
    return world.path.parent / CLASSIFIER_FILE


class ActiveRecognition(gym.Wrapper):
    """Recognise the object within ``budget`` views (module docstring).

    Args:
        checkpoint: the world model (file, run folder or a loaded WorldModel).
        base: the base env id (a Rotate or Saccade id the checkpoint fits).
        budget: views per episode, the first included.
        classifier: path of the classifier (default: classifier.npz beside the checkpoint), or
            a Classifier.
        reward: "dense" (log-probability gain) or "sparse" (1 when right at the end).
        split: catalog split of the objects ("test" for held-out evaluation).
        base_kwargs: further base-env kwargs (e.g. {"action_mode": "discrete"}).
        device: where the world model runs.
    """

    def __init__(
        self,
        checkpoint: str | Path | WorldModel,
        base: str = "SeqJEPA-Rotate-v0",
        budget: int = 5,
        classifier: str | Path | Classifier | None = None,
        reward: str = "dense",
        split: str | None = "train",
        base_kwargs: dict[str, Any] | None = None,
        device: str = "auto",
    ) -> None:
        if not isinstance(budget, (int, np.integer)) or budget < 1:
            raise ValueError(f"budget must be an integer >= 1 view, got {budget!r}")
        if reward not in REWARDS:
            raise ValueError(f"unknown reward {reward!r}; valid: {', '.join(REWARDS)}")
        world = (
            checkpoint
            if isinstance(checkpoint, WorldModel)
            else load_world_model(checkpoint, device)
        )
        base_env = make_base_env(base, world, {"split": split} | (base_kwargs or {}))
        super().__init__(RepresentationWrapper(base_env, world))
        if not isinstance(classifier, Classifier):
            classifier = Classifier.load(classifier or default_classifier_path(world))
        if classifier.head.weight.shape[1] != world.d_model:
            raise ValueError(
                f"the classifier reads {classifier.head.weight.shape[1]}-d features; this "
                f"checkpoint's z_AGG is {world.d_model}-d (fit one for this checkpoint)"
            )
        self.classifier = classifier
        self.budget = int(budget)
        self.reward_kind = reward
        self.observation_space = gym.spaces.Dict(
            dict(self.env.observation_space.spaces)
            | {
                "steps_left": gym.spaces.Box(0.0, 1.0, (1,), np.float32),
                "class_probs": gym.spaces.Box(0.0, 1.0, (len(classifier.categories),), np.float32),
            }
        )

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        name = info["category_name"]
        if name not in self.classifier.categories:
            raise ValueError(f"category {name!r} is not one the classifier knows")
        self._label = self.classifier.categories.index(name)
        self._views = 1
        self._log_probs = self.classifier.log_probs(obs["z_agg"])
        return self._observation(obs), self._info(info)

    def step(self, action):
        if self._views >= self.budget:
            raise RuntimeError("the view budget is spent: reset() first")
        obs, _, _, truncated, info = self.env.step(action)
        self._views += 1
        previous = self._log_probs[self._label]
        self._log_probs = self.classifier.log_probs(obs["z_agg"])
        done = self._views >= self.budget
        if self.reward_kind == "dense":
            reward = float(self._log_probs[self._label] - previous)
        else:
            reward = float(done and self._correct())
        return self._observation(obs), reward, done, truncated, self._info(info)

    def _correct(self) -> bool:
        return int(np.argmax(self._log_probs)) == self._label

    def _observation(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        left = (self.budget - self._views) / max(self.budget - 1, 1)
        return obs | {
            "steps_left": np.array([left], np.float32),
            "class_probs": np.exp(self._log_probs).astype(np.float32),
        }

    def _info(self, info: dict[str, Any]) -> dict[str, Any]:
        return info | {"views": self._views, "correct": self._correct(), "label": self._label}


def fit_classifier(
    checkpoint: str | Path,
    base: str = "SeqJEPA-Rotate-v0",
    budget: int = 5,
    episodes: int = 600,
    heldout: float = 0.2,
    seed: int = 0,
    base_kwargs: dict[str, Any] | None = None,
    out: str | Path | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Fit the recognition classifier on ``episodes`` random-policy episodes of train-split
    objects (z_AGG after 1..budget views, pooled), hold out ``heldout`` of the instances to
    choose the L2 penalty, and save it (default: beside the checkpoint). Returns a summary."""
    world = load_world_model(checkpoint, device)
    env = RepresentationWrapper(make_base_env(base, world, base_kwargs or {}), world)
    policy = RandomPolicy()
    features, labels, instances = [], [], []
    for episode in tqdm(range(episodes), desc="classifier episodes", unit="episode"):
        rng = episode_rng(seed, episode)
        obs, info = env.reset(seed=int(rng.integers(2**31)))
        policy.begin(env, rng)
        for view in range(budget):
            if view:
                obs, *_, info = env.step(policy.act(obs, info))
            features.append(obs["z_agg"])
            labels.append(int(info["category"]))
            instances.append((int(info["category"]), int(info["instance"])))
    names = list(env.unwrapped.catalog.categories)
    env.close()
    keys = np.array([c * 1_000_003 + i for c, i in instances])
    unique = np.unique(keys)
    held_keys = np.random.default_rng([seed, 0xC1A55]).choice(
        unique, max(1, round(heldout * len(unique))), replace=False
    )
    is_held = np.isin(keys, held_keys)
    x = torch.from_numpy(np.stack(features))
    y = torch.as_tensor(labels)
    head = fit_linear_head(
        Samples(x[~is_held], y[~is_held]), Samples(x[is_held], y[is_held]), len(names)
    )
    path = Classifier(head, names).save(Path(out) if out else default_classifier_path(world))
    summary = {
        "classifier": str(path),
        "checkpoint": str(world.path),
        "base": base,
        "budget": budget,
        "episodes": episodes,
        "heldout_top1_pooled": head.heldout_top1,
        "weight_decay": head.weight_decay,
    }
    path.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    return summary
