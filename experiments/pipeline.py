"""The stages `demo` and `report` share: collect a 3DIEBench-style dataset, train a method,
evaluate a checkpoint, with a stage clock for the report."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from experiments import collect
from seqjepa.evaluate import EvalConfig, evaluate
from seqjepa.probes import MLPProbeConfig
from seqjepa.train import latest_checkpoint, preset_config, train


@dataclass
class PipelineConfig:
    """Data, training and probe settings shared by every model of one demo or report."""

    seed: int = 0
    """Seeds the dataset, the trainings (a method and its twin share it: paired runs),
    evaluations and probes."""
    image_size: int = 32
    """Side of the views in pixels."""
    supersample: int = 2
    """Samples per pixel side when rendering (2: anti-aliased 32 px views of 64 px renders)."""
    episodes: int = 4000
    """Episodes recorded: one object each, drawn from every split (80/10/10 by instance)."""
    views: int = 8
    """Views per episode: 3DIEBench-style independent random orientations of one object."""
    workers: int = 2
    """Collection worker processes."""
    preset: str = "tiny"
    """Training preset the recipe below overrides (`paper`: ResNet-18, for a GPU)."""
    steps: int = 1000
    """Training steps of each model."""
    batch_size: int = 128
    """Sequences per training step."""
    lr: float = 1e-3
    """Peak learning rate (the `tiny` preset's recipe otherwise)."""
    ema_base: float = 0.99
    """EMA momentum at step 0: short runs need a target that keeps up (0.996 lags 250 steps)."""
    target_norm: str = "none"
    """The training target's normalisation (seqjepa.model.ModelConfig.target_norm)."""
    probe_steps: int = 500
    """Steps of each regression probe."""

    def describe(self) -> str:
        """One line for reports: the data and recipe every model of the run shared."""
        return (
            f"{self.episodes} episodes of {self.views} random views at {self.image_size} px "
            f"(supersampled {self.supersample}x); `{self.preset}` preset, {self.steps} steps "
            f"of batch {self.batch_size}, lr {self.lr:g}, EMA from {self.ema_base}, "
            f"target_norm={self.target_norm}; probes: {self.probe_steps} MLP steps."
        )


class Stages:
    """A tqdm bar over named stages and the seconds each took."""

    def __init__(self, total: int, desc: str) -> None:
        self.bar = tqdm(total=total, desc=desc, unit="stage", position=0)
        self.seconds: dict[str, float] = {}

    def run(self, name: str, fn, *args, **kwargs):
        self.bar.set_postfix_str(name)
        tick = time.perf_counter()
        result = fn(*args, **kwargs)
        self.seconds[name] = round(time.perf_counter() - tick, 1)
        self.bar.update()
        return result

    def close(self) -> None:
        self.bar.close()

    def summary(self) -> str:
        total = sum(self.seconds.values())
        parts = ", ".join(f"{name} {s:.0f}" for name, s in self.seconds.items())
        return f"Seconds per stage: {parts}; total {total / 60:.1f} minutes."


def collect_views(
    cfg: PipelineConfig,
    out: Path,
    policy: str = "uniform-views",
    env_overrides: dict[str, Any] | None = None,
    policy_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Views of objects from every split (resumed if already there): by default random
    3DIEBench-style views; ``policy`` and ``env_overrides`` choose others (the exploration
    benchmark's collection policies)."""
    env_kwargs = {
        "image_size": cfg.image_size,
        "action_mode": "absolute",
        "initial_orientation": "3diebench",
        "split": None,
        "supersample": cfg.supersample,
    } | (env_overrides or {})
    return collect.run(
        collect.CollectConfig(
            env="SeqJEPA-Rotate-v0",
            out=str(out),
            env_kwargs=json.dumps(env_kwargs),
            policy=policy,
            policy_kwargs=json.dumps(policy_kwargs or {}),
            episodes=cfg.episodes,
            episode_length=cfg.views - 1,
            shard_episodes=250,
            workers=cfg.workers,
            seed=cfg.seed,
        )
    )


def train_method(
    cfg: PipelineConfig, data: Path, out: Path, method: str, seed: int, **overrides: Any
) -> Path:
    """Train ``method`` with the pipeline's preset and recipe; returns the checkpoint (an
    already finished run in ``out`` is reused, an interrupted one resumed)."""
    base = preset_config(cfg.preset)
    train_cfg = dataclasses.replace(
        base,
        data=str(data),
        out=str(out),
        method=method,
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        ema_base=cfg.ema_base,
        seed=seed,
        checkpoint_every=max(cfg.steps // 4, 1),
        model=dataclasses.replace(base.model, target_norm=cfg.target_norm),
        **overrides,
    )
    finished = out / f"checkpoint-{cfg.steps:07d}.pt"
    if finished.exists():
        return finished
    resume = latest_checkpoint(out) is not None  # an interrupted run continues
    checkpoint = train(dataclasses.replace(train_cfg, resume=resume))
    assert checkpoint is not None  # a single process is rank 0
    return checkpoint


def evaluate_checkpoint(
    cfg: PipelineConfig, checkpoint: Path, data: Path, out: Path, random_encoder: bool = False
) -> dict[str, Any]:
    """The evaluation suite on ``data`` (metrics.json in ``out``)."""
    return evaluate(
        EvalConfig(
            checkpoint=str(checkpoint),
            data=str(data),
            out=str(out),
            random_encoder=random_encoder,
            m_vals=tuple(range(1, cfg.views + 1)),
            path_m_vals=tuple(range(2, cfg.views + 1)),
            probe=MLPProbeConfig(
                steps=cfg.probe_steps, eval_every=min(100, cfg.probe_steps), seed=cfg.seed
            ),
            seed=cfg.seed,
        )
    )
