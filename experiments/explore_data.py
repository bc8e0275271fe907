"""`seqjepa-gym explore-data` (`make explore-data`): the exploration benchmark, data side.

Does the policy that gathers the views change the world model learnt from them? Four policies
each collect the same number of views (episodes x views per episode) of the same objects:
- random relative turns (up to 90 degrees per axis);
- uniform absolute views (3DIEBench-style independent orientations: the demo's data);
- coverage (turn toward the least-seen side, same action space as random turns);
- curiosity: PPO trained on SeqJEPA-Curiosity-Rotate-v0, rewarded by the prediction error of
  the world model trained on the random-turn data.
A `tiny` seq-JEPA is trained on each with the same recipe (the demo's), and every model is
evaluated by the evaluation suite on the same held-out data (the uniform-views collection's
val/test instances, probes fitted on its train instances). Everything lands in
<out>/explore-data-<timestamp>/ (report.md, results.json) and can be resumed with
``--resume-dir``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.ppo import AgentConfig, train_agent
from experiments.pipeline import (
    Job,
    PipelineConfig,
    Stages,
    collect_views,
    evaluate_checkpoint,
    recipe_config,
    train_method,
)
from experiments.report import machine
from seqjepa.rollouts import write_text_atomic

TURNS = {"action_mode": "relative", "max_step_angle": math.pi / 2}
#: Collection policy -> (policy name, env overrides over the pipeline's uniform-views kwargs).
POLICIES: dict[str, tuple[str, dict[str, Any]]] = {
    "random-turns": ("random", TURNS),
    "uniform-views": ("uniform-views", {}),
    "coverage": ("coverage", TURNS),
    "curiosity": ("curiosity", TURNS),
}


@dataclass
class ExploreDataConfig:
    """What `seqjepa-gym explore-data` runs (defaults: about 30 minutes on 2 CPU cores)."""

    out: str = "runs"
    """Parent folder; the benchmark writes to <out>/explore-data-<timestamp>/."""
    resume_dir: str = ""
    """Continue an interrupted run in this folder (finished stages are reused)."""
    pipeline: PipelineConfig = field(default_factory=lambda: recipe_config("earlier"))
    """Data size, training recipe and probes (the demo's data; the earlier recipe's
    training, with which docs/agents.md's figures were measured)."""
    curiosity_steps: int = 12_000
    """PPO steps of the curiosity policy."""


def run(cfg: ExploreDataConfig) -> Path:
    pipe = cfg.pipeline
    out = (
        Path(cfg.resume_dir)
        if cfg.resume_dir
        else Path(cfg.out) / time.strftime("explore-data-%Y%m%d-%H%M%S")
    )
    out.mkdir(parents=True, exist_ok=True)
    stages = Stages(3 * len(POLICIES) + 1, "explore-data")
    data: dict[str, Path] = {}
    checkpoints: dict[str, Path] = {}

    def gather(name: str, **policy_kwargs: Any) -> None:
        policy, overrides = POLICIES[name]
        data[name] = stages.run(
            f"collect {name}",
            collect_views,
            pipe,
            out / "data" / name,
            policy,
            overrides,
            policy_kwargs,
        )

    def train(names: tuple[str, ...]) -> None:
        jobs = {
            name: Job(train_method, (pipe, data[name], out / "models" / name, "seqjepa", pipe.seed))
            for name in names
        }
        label = f"train {', '.join(names)}"
        checkpoints.update(stages.run_side_by_side(label, jobs, pipe.side_by_side))

    gather("random-turns")
    train(("random-turns",))  # the curiosity policy is rewarded by this model's errors
    ppo = out / "curiosity-ppo"
    policy_path = ppo / "policy.zip"
    if not policy_path.exists():
        agent = AgentConfig(
            task="SeqJEPA-Curiosity-Rotate-v0",
            checkpoint=str(checkpoints["random-turns"]),
            out=str(ppo),
            steps=cfg.curiosity_steps,
            seed=pipe.seed,
        )
        stages.run("ppo curiosity", train_agent, agent)
    for name in ("uniform-views", "coverage"):
        gather(name)
    gather("curiosity", policy=str(policy_path), checkpoint=str(checkpoints["random-turns"]))
    train(("uniform-views", "coverage", "curiosity"))
    evaluations = {
        name: Job(_evaluate_once, (pipe, checkpoint, data["uniform-views"], out / "eval" / name))
        for name, checkpoint in checkpoints.items()
    }
    metrics = stages.run_side_by_side("eval", evaluations, pipe.side_by_side)
    stages.close()
    report = _report(cfg, metrics, stages.summary())
    write_text_atomic(out / "report.md", report)
    write_text_atomic(out / "results.json", json.dumps(metrics, indent=1))
    print(report)
    return out


def _evaluate_once(pipe: PipelineConfig, checkpoint: Path, data: Path, out: Path) -> dict:
    done = out / "metrics.json"
    if done.exists():
        return json.loads(done.read_text())
    return evaluate_checkpoint(pipe, checkpoint, data, out)


def _report(cfg: ExploreDataConfig, metrics: dict[str, dict], timing: str) -> str:
    lines = [
        "| collection policy | single-view top-1 | z_AGG top-1 M=5 | rel. R^2 | indiv. R^2 | "
        "eff. rank | action-use gap |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in metrics.items():
        c = m["classification"]
        m_val = str(min(5, max(map(int, c["aggregate"]))))  # M=5 unless the episodes are shorter
        lines.append(
            f"| {name} | {c['single_view']['top1']:.3f} | {c['aggregate'][m_val]['top1']:.3f} | "
            f"{m['relative_pose']['random_pairs']['r2']:.3f} | {m['individual_pose']['r2']:.3f} | "
            f"{m['effective_rank']['value']:.1f} | {m['action_use']['gap']:.4f} |"
        )
    return (
        "# Exploration benchmark: data collection\n\n"
        f"Each policy gathered {cfg.pipeline.episodes} episodes x {cfg.pipeline.views} views; "
        f"a `tiny` seq-JEPA was trained on each ({cfg.pipeline.describe()}). All are evaluated "
        "on the uniform-views collection's held-out instances.\n\n"
        + "\n".join(lines)
        + f"\n\nMachine: {machine()}. {timing}\n"
    )
