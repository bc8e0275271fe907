"""`seqjepa-gym explore` (`make explore`): the exploration benchmark, inference side.

For a world model checkpoint (default: the latest `make demo` run's seq-JEPA):
1. fit the recognition classifier on train-split episodes of the task;
2. train PPO on active recognition and on homing (with and without actuation noise), one run
   per seed;
3. evaluate random, heuristic (coverage; dead reckoning) and PPO policies on held-out (test
   split) instances, the same episodes for every policy of a seed;
4. write results.json, report.md (accuracy at each number of views and homing success, mean +-
   95% t-interval over seeds), accuracy_vs_views.png, homing_error.png and episode GIFs.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from agents.evaluation import policy_from_spec, run_episodes
from agents.ppo import AgentConfig, train_agent
from agents.recognition import fit_classifier
from agents.representation import load_world_model
from experiments.io import atomic_path
from experiments.report import interval, machine, save_figure
from seqjepa.rollouts import write_text_atomic

RECOGNITION = "SeqJEPA-Recognition-Rotate-v0"
HOMING = ("SeqJEPA-Homing-Rotate-v0", "SeqJEPA-Homing-RotateNoisy-v0")


@dataclass
class ExploreConfig:
    """What `seqjepa-gym explore` runs (defaults: about 20 minutes on 2 CPU cores)."""

    checkpoint: str = ""
    """World model (file or run folder); default: the latest runs/*/seq-JEPA of `make demo`."""
    out: str = "runs"
    """Parent folder; the benchmark writes to <out>/explore-<timestamp>/."""
    resume_dir: str = ""
    """Continue a run in this folder: its classifier and trained PPO policies are reused."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """PPO training seeds, each also seeding its own evaluation episodes."""
    episodes: int = 100
    """Evaluation episodes per policy, task and seed (held-out instances)."""
    ppo_steps: int = 12_000
    """PPO environment steps per task and seed."""
    classifier_episodes: int = 2000
    """Train-split episodes the recognition classifier is fitted on."""
    recognition_policies: tuple[str, ...] = ("random", "coverage")
    """Non-learned recognition policies (PPO is added)."""
    homing_policies: tuple[str, ...] = ("random", "dead-reckoning")
    """Non-learned homing policies (PPO is added)."""
    agent: AgentConfig = field(default_factory=AgentConfig)
    """PPO settings (task, checkpoint, steps, seed and out are set per run)."""


def find_demo_checkpoint(runs: Path) -> Path:
    """The seq-JEPA run folder of the latest `make demo` (or `make report`) run."""
    found = sorted(runs.glob("*/seq-JEPA*/latest"))
    if not found:
        raise FileNotFoundError(
            f"no trained world model under {runs}/: run `make demo` first, or pass --checkpoint"
        )
    return found[-1].parent


def summarise(records: dict[int, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per-seed means, then mean +- 95% t-interval over seeds."""
    per_seed = {}
    for seed, episodes in records.items():
        if "correct" in episodes[0]:
            per_seed[seed] = {"accuracy": np.mean([e["correct"] for e in episodes], 0).tolist()}
        else:
            per_seed[seed] = {
                "success": float(np.mean([e["success"] for e in episodes])),
                "error": np.mean([e["errors"] for e in episodes], 0).tolist(),
            }
    out: dict[str, Any] = {"per_seed": per_seed}
    for key in per_seed[next(iter(per_seed))]:
        values = np.array([per_seed[s][key] for s in per_seed])
        columns = values.T if values.ndim > 1 else values[None]
        pairs = [interval(list(column)) for column in columns]
        out[key] = [m for m, _ in pairs] if values.ndim > 1 else pairs[0][0]
        out[f"{key}_ci"] = [h for _, h in pairs] if values.ndim > 1 else pairs[0][1]
    return out


def recognition_table(results: dict[str, Any]) -> str:
    budget = len(next(iter(results.values()))["accuracy"])
    head = "| policy | " + " | ".join(f"{k} view{'s' * (k > 1)}" for k in range(1, budget + 1))
    lines = [head + " |", "|---" * (budget + 1) + "|"]
    for name, r in results.items():
        pairs = zip(r["accuracy"], r["accuracy_ci"], strict=True)
        cells = [f"{m:.3f} +- {h:.3f}" for m, h in pairs]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def homing_table(results: dict[str, dict[str, Any]]) -> str:
    lines = ["| task | policy | success | final error |", "|---|---|---|---|"]
    for task, by_policy in results.items():
        for name, r in by_policy.items():
            lines.append(
                f"| {task} | {name} | {r['success']:.3f} +- {r['success_ci']:.3f} | "
                f"{r['error'][-1]:.1f} deg |"
            )
    return "\n".join(lines)


def plot_accuracy(results: dict[str, Any], chance: float, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, r in results.items():
        views = np.arange(1, len(r["accuracy"]) + 1)
        ax.errorbar(views, r["accuracy"], yerr=r["accuracy_ci"], label=name, capsize=3, marker="o")
    ax.axhline(chance, color="grey", linestyle=":", label="chance")
    ax.set(xlabel="views seen", ylabel="top-1 (held-out instances)", title="active recognition")
    ax.legend()
    save_figure(fig, path)


def plot_homing(results: dict[str, dict[str, Any]], path: Path) -> None:
    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.5), squeeze=False)
    for ax, (task, by_policy) in zip(axes[0], results.items(), strict=True):
        for name, r in by_policy.items():
            ax.plot(range(len(r["error"])), r["error"], marker="o", label=name)
        ax.axhline(15, color="grey", linestyle=":", label="success (15 deg)")
        ax.set(xlabel="agent steps", ylabel="error (deg)", title=task.removeprefix("SeqJEPA-"))
        ax.legend()
    save_figure(fig, path)


def write_gif(
    task: str, checkpoint: Any, policy: str, seed: int, path: Path, kwargs: dict | None = None
) -> None:
    """One held-out episode of ``policy``: the agent's views, enlarged, one frame per step."""
    (record,) = run_episodes(
        task, checkpoint, policy_from_spec(policy), 1, seed, task_kwargs=kwargs, frames=True
    )
    frames = [np.kron(f, np.ones((4, 4, 1), np.uint8)) for f in record["frames"]]
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, np.stack(frames), extension=".gif", duration=500, loop=0)


def run(cfg: ExploreConfig) -> Path:
    start = time.perf_counter()
    checkpoint = Path(cfg.checkpoint) if cfg.checkpoint else find_demo_checkpoint(Path(cfg.out))
    world = load_world_model(checkpoint, cfg.agent.device)
    out = (
        Path(cfg.resume_dir)
        if cfg.resume_dir
        else Path(cfg.out) / time.strftime("explore-%Y%m%d-%H%M%S")
    )
    out.mkdir(parents=True, exist_ok=True)
    summary = out / "classifier.json"
    if summary.exists():  # resumed: the classifier is fitted already
        classifier = json.loads(summary.read_text())
    else:
        classifier = fit_classifier(
            world.path, RECOGNITION, cfg.classifier_episodes, out=out / "classifier.npz"
        )
    recognition_kwargs = {"classifier": classifier["classifier"]}
    policies: dict[str, dict[int, str]] = {}  # task -> seed -> saved PPO policy
    for task in (RECOGNITION, *HOMING):
        kwargs = recognition_kwargs if task == RECOGNITION else {}
        for seed in cfg.seeds:
            agent = AgentConfig(
                **asdict(cfg.agent)
                | {
                    "task": task,
                    "checkpoint": str(world.path),
                    "task_kwargs": json.dumps(kwargs),
                    "steps": cfg.ppo_steps,
                    "seed": seed,
                    "out": str(out / "ppo" / task / f"seed-{seed}"),
                }
            )
            saved = Path(agent.out) / "policy.zip"
            trained = saved if saved.exists() else train_agent(agent)  # resumed: reuse it
            policies.setdefault(task, {})[seed] = str(trained)

    def evaluate(task: str, names: tuple[str, ...], kwargs: dict) -> dict[str, Any]:
        results = {}
        for name in (*names, "ppo"):
            records = {
                seed: run_episodes(
                    task,
                    world,
                    policy_from_spec(policies[task][seed] if name == "ppo" else name),
                    cfg.episodes,
                    seed,
                    task_kwargs=kwargs,
                )
                for seed in cfg.seeds
            }
            results[name] = summarise(records)
        return results

    recognition = evaluate(RECOGNITION, cfg.recognition_policies, recognition_kwargs)
    homing = {task: evaluate(task, cfg.homing_policies, {}) for task in HOMING}
    chance = 1.0 / len(world_categories(out))
    plot_accuracy(recognition, chance, out / "accuracy_vs_views.png")
    plot_homing(homing, out / "homing_error.png")
    minutes = (time.perf_counter() - start) / 60
    results = {
        "checkpoint": str(world.path),
        "classifier": classifier,
        "config": asdict(cfg),
        "recognition": recognition,
        "homing": homing,
        "minutes": minutes,
        "machine": machine(),
    }
    write_text_atomic(out / "results.json", json.dumps(results, indent=1))
    report = (
        f"# Exploration benchmark\n\nWorld model: `{world.path}`. Machine: {machine()}. "
        f"Wall time: {minutes:.1f} min. Seeds {list(cfg.seeds)}; {cfg.episodes} held-out "
        f"episodes per policy and seed; PPO {cfg.ppo_steps} steps per task and seed. "
        "Mean +- 95% t-interval over seeds.\n\n"
        f"## Active recognition ({RECOGNITION}): top-1 after k views\n\n"
        f"{recognition_table(recognition)}\n\n![accuracy](accuracy_vs_views.png)\n\n"
        f"## Homing: success (< 15 deg at the end)\n\n{homing_table(homing)}\n\n"
        "![homing](homing_error.png)\n"
    )
    write_text_atomic(out / "report.md", report)
    print(report)
    seed = cfg.seeds[0]
    write_gif(
        RECOGNITION,
        world,
        policies[RECOGNITION][seed],
        seed,
        out / "recognition_ppo.gif",
        recognition_kwargs,
    )
    write_gif(HOMING[1], world, policies[HOMING[1]][seed], seed, out / "homing_noisy_ppo.gif")
    return out


def world_categories(out: Path) -> list[str]:
    """The classifier's categories (for the chance level)."""
    with np.load(out / "classifier.npz", allow_pickle=False) as data:
        return list(data["categories"])
