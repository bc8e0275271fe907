"""`seqjepa-gym classifier`, `odometry`, `agent`, `agent-eval`: thin entry points over agents/."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agents.evaluation import policy_from_spec, run_episodes
from agents.odometry import fit_odometry
from agents.ppo import AgentConfig, train_agent
from agents.recognition import fit_classifier
from seqjepa.rollouts import write_text_atomic


@dataclass
class ClassifierConfig:
    """Fit a recognition task's classifier for a world model (saved beside the checkpoint)."""

    checkpoint: str = ""
    """World model checkpoint (file or run folder)."""
    task: str = "SeqJEPA-Recognition-Rotate-v0"
    """Recognition task id whose base env, budget and base kwargs the classifier serves."""
    episodes: int = 2000
    """Train-split random-policy episodes to fit on."""
    seed: int = 0
    """Seeds the episodes and the held-out instances."""
    out: str = ""
    """Where to write it (default: classifier.npz beside the checkpoint)."""


def classifier(cfg: ClassifierConfig) -> None:
    out = cfg.out or None
    summary = fit_classifier(cfg.checkpoint, cfg.task, cfg.episodes, seed=cfg.seed, out=out)
    print(json.dumps(summary, indent=1))


@dataclass
class OdometryConfig:
    """Fit the homing task's visual odometry for a world model (saved beside the checkpoint)."""

    checkpoint: str = ""
    """World model checkpoint (file or run folder)."""
    base: str = "SeqJEPA-Rotate-v0"
    """Rotate base env id the turn pairs are rendered in (the checkpoint's view settings)."""
    pairs: int = 12000
    """Train-split turn pairs to fit on (a fifth as many more for early stopping, and for the
    test-split score)."""
    max_deg: float = 30.0
    """Largest turn in a pair, degrees (at most one step of the base env)."""
    stages: int = 0
    """Encoder stages the feature map is taken after; 0: the last but one."""
    seed: int = 0
    """Seeds the pairs and the probe."""
    out: str = ""
    """Where to write it (default: odometry.npz beside the checkpoint)."""


def odometry(cfg: OdometryConfig) -> None:
    summary = fit_odometry(
        cfg.checkpoint,
        cfg.base,
        cfg.pairs,
        cfg.max_deg,
        cfg.stages,
        seed=cfg.seed,
        out=cfg.out or None,
    )
    print(json.dumps(summary, indent=1))


def agent(cfg: AgentConfig) -> None:
    print(f"policy: {train_agent(cfg)}")


@dataclass
class AgentEvalConfig:
    """Evaluate a policy on a task's held-out (test split) instances."""

    task: str = "SeqJEPA-Recognition-Rotate-v0"
    """Task id."""
    checkpoint: str = ""
    """World model checkpoint the task observes through."""
    policy: str = "random"
    """random, coverage, saliency-ior, dead-reckoning, visual-homing, or a PPO policy.zip."""
    episodes: int = 100
    """Episodes to run."""
    seed: int = 0
    """Seeds the episodes (the same seed gives every policy the same objects)."""
    task_kwargs: str = "{}"
    """JSON object of further task kwargs."""
    out: str = ""
    """Optional JSON file for the per-episode records."""


def agent_eval(cfg: AgentEvalConfig) -> None:
    records = run_episodes(
        cfg.task,
        cfg.checkpoint,
        policy_from_spec(cfg.policy),
        cfg.episodes,
        cfg.seed,
        task_kwargs=json.loads(cfg.task_kwargs),
    )
    if "correct" in records[0]:
        accuracy = np.mean([r["correct"] for r in records], axis=0)
        print("top-1 after k views:", " ".join(f"{k + 1}: {a:.3f}" for k, a in enumerate(accuracy)))
    else:
        print(f"success: {np.mean([r['success'] for r in records]):.3f}")
        print(f"mean error after each step: {np.mean([r['errors'] for r in records], 0).round(1)}")
    if cfg.out:
        write_text_atomic(Path(cfg.out), json.dumps(records, indent=1))
