"""Active recognition: name the object after a budget of views (or glimpses) the agent chooses.

Episode: reset shows the first view; the agent then takes ``budget - 1`` actions, each adding
a view; the episode terminates when the budget is spent. Observation: the world model's z_AGG
and latest z, the fraction of the budget left, and the classifier's class probabilities; with a
Discrete action space also ``taken``, which actions the episode has used (a memory of the poses
or fixations already seen: without it a deterministic policy tends to repeat its best one).
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
from agents.tasks import make_base_env, world_and_base
from envs.object_scene import check_choice, discrete_index
from seqjepa.probes import LinearHead, Samples, fit_linear_head
from seqjepa.rollouts import write_npz_atomic, write_text_atomic

REWARDS = ("dense", "sparse")
CLASSIFIER_FILE = "classifier.npz"


class Classifier:
    """One linear head over z_AGG per number of views seen (the evaluation suite probes each
    M_val separately: z_AGG's statistics change with M), and the category names in order.
    Beyond the last head's number of views, the last head is used."""

    FIELDS = ("weight", "bias", "mean", "std", "weight_decay", "heldout_top1")

    def __init__(self, heads: list[LinearHead], categories: list[str]) -> None:
        if not heads:
            raise ValueError("a classifier needs at least one head")
        self.heads = list(heads)
        self.categories = list(categories)

    @property
    def feature_dim(self) -> int:
        return int(self.heads[0].weight.shape[1])

    def log_probs(self, z_agg: np.ndarray, views: int) -> np.ndarray:
        head = self.heads[min(views, len(self.heads)) - 1]
        with torch.no_grad():
            logits = head.logits(torch.as_tensor(z_agg)[None])
            return torch.log_softmax(logits, -1)[0].numpy()

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        stacked = {
            field: np.stack([np.asarray(getattr(h, field)) for h in self.heads])
            for field in self.FIELDS
        }
        return write_npz_atomic(path, **stacked, categories=np.array(self.categories))

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
                arrays = {field: data[field] for field in cls.FIELDS}
                categories = [str(c) for c in data["categories"]]
        except (KeyError, ValueError, OSError) as err:
            raise ValueError(f"{path}: not a classifier file ({err})") from None
        weight = arrays["weight"]
        heads = len(weight) if weight.ndim == 3 else 0
        if (
            not heads
            or any(np.shape(arrays[f])[:1] != (heads,) for f in cls.FIELDS)
            or (weight.shape[1] != len(categories))
        ):
            raise ValueError(
                f"{path}: not a classifier file of this version (one head per number of "
                "views); fit it again with `seqjepa-gym classifier`"
            )
        tensors = {f: torch.from_numpy(arrays[f]) for f in cls.FIELDS[:4]}
        return cls(
            [
                LinearHead(
                    *(tensors[f][k] for f in cls.FIELDS[:4]),
                    weight_decay=float(arrays["weight_decay"][k]),
                    heldout_top1=float(arrays["heldout_top1"][k]),
                )
                for k in range(heads)
            ],
            categories,
        )


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
        check_choice("reward", reward, REWARDS)
        world, base_env = world_and_base(checkpoint, base, split, base_kwargs, device)
        super().__init__(RepresentationWrapper(base_env, world))
        if not isinstance(classifier, Classifier):
            classifier = Classifier.load(classifier or default_classifier_path(world))
        if classifier.feature_dim != world.d_model:
            raise ValueError(
                f"the classifier reads {classifier.feature_dim}-d features; this "
                f"checkpoint's z_AGG is {world.d_model}-d (fit one for this checkpoint)"
            )
        self.classifier = classifier
        self.budget = int(budget)
        self.reward_kind = reward
        spaces = {
            "steps_left": gym.spaces.Box(0.0, 1.0, (1,), np.float32),
            "class_probs": gym.spaces.Box(0.0, 1.0, (len(classifier.categories),), np.float32),
        }
        self._choices = getattr(self.action_space, "n", None)  # Discrete actions only
        if self._choices is not None:
            spaces["taken"] = gym.spaces.Box(0.0, 1.0, (int(self._choices),), np.float32)
        self.observation_space = gym.spaces.Dict(dict(self.env.observation_space.spaces) | spaces)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        name = info["category_name"]
        if name not in self.classifier.categories:
            raise ValueError(f"category {name!r} is not one the classifier knows")
        self._label = self.classifier.categories.index(name)
        self._views = 1
        self._taken = np.zeros(self._choices or 0, np.float32)
        self._log_probs = self.classifier.log_probs(obs["z_agg"], self._views)
        return self._observation(obs), self._info(info)

    def step(self, action):
        if self._views >= self.budget:
            raise RuntimeError("the view budget is spent: reset() first")
        obs, _, _, truncated, info = self.env.step(action)
        if self._choices is not None:  # the base env has accepted it: a valid index
            self._taken[discrete_index(action, int(self._choices), "action")] = 1.0
        self._views += 1
        previous = self._log_probs[self._label]
        self._log_probs = self.classifier.log_probs(obs["z_agg"], self._views)
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
        extra = {
            "steps_left": np.array([left], np.float32),
            "class_probs": np.exp(self._log_probs).astype(np.float32),
        }
        if self._choices is not None:
            extra["taken"] = self._taken.copy()
        return obs | extra

    def _info(self, info: dict[str, Any]) -> dict[str, Any]:
        return info | {"views": self._views, "correct": self._correct(), "label": self._label}


def fit_classifier(
    checkpoint: str | Path,
    task: str = "SeqJEPA-Recognition-Rotate-v0",
    episodes: int = 2000,
    heldout: float = 0.2,
    seed: int = 0,
    out: str | Path | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Fit the classifier of a recognition ``task`` (its registered base env, budget and base
    kwargs) on ``episodes`` random-policy episodes of train-split objects: one head per number
    of views, each choosing its L2 penalty on the ``heldout`` fraction of instances. Saves it
    (default: beside the checkpoint) with a JSON summary; returns the summary."""
    registered = gym.spec(task).kwargs
    base, budget = registered["base"], registered["budget"]
    base_kwargs = registered.get("base_kwargs")
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
    keys = np.array([c * 1_000_003 + i for c, i in instances]).reshape(episodes, budget)[:, 0]
    held_keys = np.random.default_rng([seed, 0xC1A55]).choice(
        np.unique(keys), max(1, round(heldout * len(np.unique(keys)))), replace=False
    )
    is_held = np.isin(keys, held_keys)
    x = torch.from_numpy(np.stack(features)).reshape(episodes, budget, -1)
    y = torch.as_tensor(labels).reshape(episodes, budget)[:, 0]
    heads = [
        fit_linear_head(
            Samples(x[~is_held, k], y[~is_held]), Samples(x[is_held, k], y[is_held]), len(names)
        )
        for k in range(budget)
    ]
    path = Classifier(heads, names).save(Path(out) if out else default_classifier_path(world))
    summary = {
        "classifier": str(path),
        "checkpoint": str(world.path),
        "task": task,
        "budget": budget,
        "episodes": episodes,
        "heldout_top1": [h.heldout_top1 for h in heads],
        "weight_decay": [h.weight_decay for h in heads],
    }
    write_text_atomic(path.with_suffix(".json"), json.dumps(summary, indent=1))
    return summary
