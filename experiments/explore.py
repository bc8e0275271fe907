"""`seqjepa-gym explore` (`make explore`): the exploration benchmark, inference side.

For a rotation world model (default: the latest `make demo` run's seq-JEPA) and a glimpse world
model (trained here on random saccades unless given):
1. fit each recognition task's classifier on train-split episodes of the task;
2. train PPO on active recognition (relative turns; absolute views; glimpses: ``--recognition``
   picks) and on homing (with and without actuation noise; ``--no-homing`` skips it), one run
   per seed;
3. evaluate random, heuristic (coverage, saliency with inhibition of return, dead reckoning) and
   PPO policies on held-out (test split) instances, the same episodes for every policy of a
   seed, so that differences between policies are paired;
4. write results.json, report.md (accuracy at each number of views and homing success, mean +-
   95% t-interval over seeds, paired gains over random), accuracy_vs_views.png,
   homing_error.png and episode GIFs. ``--resume-dir`` reuses whatever is already trained.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from agents.evaluation import policy_from_spec, run_episodes
from agents.odometry import fit_odometry
from agents.ppo import AgentConfig, train_agent
from agents.recognition import fit_classifier
from agents.representation import load_world_model
from envs.object_scene import check_choice
from experiments import collect
from experiments.io import atomic_path
from experiments.pipeline import PipelineConfig, recipe_config, train_method
from experiments.report import interval, machine, save_figure
from seqjepa.rollouts import write_text_atomic

GLIMPSE_BASE = "SeqJEPA-Saccade-v0"
#: Recognition tasks: id -> (world model kind, the non-learned policies PPO is compared with).
#: On the absolute-view task, ``random`` draws any orientation (the task's own action space),
#: ``uniform-views`` the world model's training range (3DIEBench's Euler box).
RECOGNITION = {
    "SeqJEPA-Recognition-Rotate-v0": ("rotate", ("random", "coverage")),
    "SeqJEPA-Recognition-RotateAbsolute-v0": ("rotate", ("random", "uniform-views")),
    "SeqJEPA-Recognition-RotatePoses-v0": ("rotate", ("random",)),
    "SeqJEPA-Recognition-Saccade-v0": ("glimpse", ("random", "saliency-ior")),
}
NOISY = "SeqJEPA-Homing-RotateNoisy-v0"


@dataclass(frozen=True)
class HomingRun:
    """One homing benchmark run: a task, its kwargs, what PPO is compared with and sees."""

    task: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    policies: tuple[str, ...] = ()
    """Non-learned policies; empty: ``ExploreConfig.homing_policies``."""
    agent: dict[str, Any] = field(default_factory=dict)
    """PPO settings of this run over ``ExploreConfig.agent`` (e.g. what it observes)."""
    odometry: bool = False
    """The task observes visual odometry (fitted once per benchmark run)."""


#: Homing runs by label. The residual runs' PPO corrects dead reckoning; in the vision run it
#: sees only the two estimates of the way home (commands, vision) and the steps left, and its
#: Gaussian starts narrow, without an entropy bonus (docs/agents.md: it did better so).
HOMING = {
    "SeqJEPA-Homing-Rotate-v0": HomingRun("SeqJEPA-Homing-Rotate-v0"),
    NOISY: HomingRun(NOISY),
    f"{NOISY} (residual)": HomingRun(NOISY, {"residual": 0.3}, ("dead-reckoning",)),
    f"{NOISY} (residual, vision)": HomingRun(
        NOISY,
        {"residual": 0.5},
        ("dead-reckoning", "visual-homing"),
        {
            "observation_keys": ("steps_left", "dead_reckoning", "visual_path"),
            "log_std_init": -1.0,
            "ent_coef": 0.0,
        },
        odometry=True,
    ),
}


@dataclass
class ExploreConfig:
    """What `seqjepa-gym explore` runs (defaults: about 60 minutes on 2 CPU cores, estimated)."""

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
    recognition: tuple[str, ...] = tuple(RECOGNITION)
    """Recognition task ids to benchmark (a glimpse world model is needed only for glimpse
    tasks)."""
    budget: int = 0
    """Views (or glimpses) per recognition episode; 0: each task's registered budget (5). The
    classifier is fitted for the registered budget, and a longer episode reuses its last head."""
    homing: bool = True
    """Also benchmark homing (with and without actuation noise)."""
    homing_runs: tuple[str, ...] = tuple(HOMING)
    """Homing runs to benchmark (labels of ``HOMING``)."""
    odometry_pairs: int = 12_000
    """Train-split turn pairs the homing task's visual odometry is fitted on."""
    glimpse_checkpoint: str = ""
    """World model of the glimpse task; default: collect and train one here (the pipeline's
    recipe on random saccades, about 4 minutes)."""
    glimpse_scene_size: int = 128
    """Side of the scene the glimpse world model trained here looks into (its glimpses are
    ``pipeline.image_size`` pixels)."""
    pipeline: PipelineConfig = field(default_factory=lambda: recipe_config("earlier"))
    """Data and recipe of the glimpse world model trained here (the earlier recipe: docs/agents.md's
    figures were measured with it)."""
    homing_policies: tuple[str, ...] = ("random", "dead-reckoning")
    """Non-learned homing policies (PPO is added)."""
    agent: AgentConfig = field(default_factory=AgentConfig)
    """PPO settings (task, checkpoint, steps, seed and out are set per run)."""


def slug(label: str) -> str:
    """A folder name for a run label ("... (residual)" -> "...-residual")."""
    return re.sub(r"[^\w.-]+", "-", label).strip("-")


def find_demo_checkpoint(runs: Path) -> Path:
    """The seq-JEPA run folder of the latest `make demo` (or `make report`) run."""
    # `make demo` writes <run>/train-seqjepa, `make report` <run>/seq-JEPA-seed-<k>; run
    # folders are timestamps, so the last in name order is the latest
    found = sorted(
        {
            path.parent
            for pattern in ("*/train-seqjepa", "*/seq-JEPA*")
            for path in runs.glob(f"{pattern}/checkpoint-*.pt")
        }
    )
    if not found:
        raise FileNotFoundError(
            f"no trained world model under {runs}/: run `make demo` first, or pass --checkpoint"
        )
    return found[-1]


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
    lines = [
        "| task | policy | success | final error | paired gain in success over dead reckoning |",
        "|---|---|---|---|---|",
    ]
    for task, by_policy in results.items():
        for name, r in by_policy.items():
            gain = "-"
            if name != "dead-reckoning":
                gain = "{:+.3f} +- {:.3f}".format(
                    *paired_gain(by_policy, name, "dead-reckoning", "success")
                )
            lines.append(
                f"| {task} | {name} | {r['success']:.3f} +- {r['success_ci']:.3f} | "
                f"{r['error'][-1]:.1f} deg | {gain} |"
            )
    return "\n".join(lines)


def plot_accuracy(results: dict[str, dict[str, Any]], chance: float, path: Path) -> None:
    """Top-1 against views seen, one panel per recognition task."""
    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.5), squeeze=False)
    for ax, (task, by_policy) in zip(axes[0], results.items(), strict=True):
        for name, r in by_policy.items():
            views = np.arange(1, len(r["accuracy"]) + 1)
            ax.errorbar(views, r["accuracy"], yerr=r["accuracy_ci"], label=name, capsize=3,
                        marker="o")  # fmt: skip
        ax.axhline(chance, color="grey", linestyle=":", label="chance")
        ax.set(xlabel="views seen", ylabel="top-1 (held-out instances)",
               title=task.removeprefix("SeqJEPA-"))  # fmt: skip
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


def glimpse_model(cfg: ExploreConfig, out: Path) -> Path:
    """A `tiny` seq-JEPA trained on random saccades (the demo's recipe, window mode), for the
    glimpse recognition task: collected and trained here unless --glimpse-checkpoint is given
    (a finished training in ``out`` is reused). A glimpse's action is a 2-d displacement,
    which has no rotation matrix: the model reads it as it is, whatever the recipe's
    action_encoding."""
    pipe = replace(cfg.pipeline, action_encoding="raw")
    env_kwargs = {
        "scene_size": cfg.glimpse_scene_size,
        "glimpse_size": pipe.image_size,
        "split": None,
    }
    data = collect.run(
        collect.CollectConfig(
            env=GLIMPSE_BASE,
            out=str(out / "data"),
            env_kwargs=json.dumps(env_kwargs),
            policy="random",
            episodes=pipe.episodes,
            episode_length=pipe.views - 1,
            shard_episodes=250,
            workers=pipe.workers,
            seed=pipe.seed,
        )
    )
    return train_method(pipe, data, out / "model", "seqjepa", pipe.seed, mode="window")


def paired_gain(
    results: dict[str, Any], name: str, baseline: str, key: str = "accuracy"
) -> tuple[float, float]:
    """Mean and 95% t-half-width over seeds of (name - baseline) in ``key`` (at the last view
    for accuracy): a seed's episodes are the same objects and starts for every policy, so the
    difference is paired."""
    a, b = results[name]["per_seed"], results[baseline]["per_seed"]

    def last(value):
        return value[-1] if isinstance(value, list) else value

    return interval([last(a[s][key]) - last(b[s][key]) for s in a])


def run(cfg: ExploreConfig) -> Path:
    start = time.perf_counter()
    for task in cfg.recognition:  # before anything is written
        check_choice("recognition task", task, tuple(RECOGNITION))
    for label in cfg.homing_runs:
        check_choice("homing run", label, tuple(HOMING))
    if cfg.budget < 0:
        raise ValueError(f"budget must be >= 1 view, or 0 for the task's own; got {cfg.budget}")
    checkpoint = Path(cfg.checkpoint) if cfg.checkpoint else find_demo_checkpoint(Path(cfg.out))
    out = (
        Path(cfg.resume_dir)
        if cfg.resume_dir
        else Path(cfg.out) / time.strftime("explore-%Y%m%d-%H%M%S")
    )
    out.mkdir(parents=True, exist_ok=True)
    recognition_tasks = {task: RECOGNITION[task][0] for task in cfg.recognition}
    worlds = {"rotate": load_world_model(checkpoint, cfg.agent.device)}
    if "glimpse" in recognition_tasks.values():
        glimpses = cfg.glimpse_checkpoint or glimpse_model(cfg, out / "glimpse-world-model")
        worlds["glimpse"] = load_world_model(glimpses, cfg.agent.device)
    classifiers, task_kwargs = {}, {}
    for task, world in recognition_tasks.items():
        path = out / f"classifier-{task}.npz"
        summary = path.with_suffix(".json")
        classifiers[task] = (
            json.loads(summary.read_text())  # resumed: fitted already
            if summary.exists()
            else fit_classifier(worlds[world].path, task, cfg.classifier_episodes, out=path)
        )
        task_kwargs[task] = {"classifier": classifiers[task]["classifier"]}
        if cfg.budget:
            task_kwargs[task]["budget"] = cfg.budget
    homing_runs = {label: HOMING[label] for label in cfg.homing_runs} if cfg.homing else {}
    odometry = {}
    if any(run.odometry for run in homing_runs.values()):
        path = out / "odometry.npz"
        summary = path.with_suffix(".json")
        odometry = (
            json.loads(summary.read_text())  # resumed: fitted already
            if summary.exists()
            else fit_odometry(worlds["rotate"].path, pairs=cfg.odometry_pairs, out=path)
        )
    # label -> (task id, world model, task kwargs, PPO settings over cfg.agent)
    runs = {task: (task, world, task_kwargs[task], {}) for task, world in recognition_tasks.items()}
    for label, run in homing_runs.items():
        kwargs = run.kwargs | ({"odometry": odometry["odometry"]} if run.odometry else {})
        runs[label] = (run.task, "rotate", kwargs, run.agent)
    policies: dict[str, dict[int, str]] = {}  # label -> seed -> saved PPO policy
    for label, (task, world, kwargs, overrides) in runs.items():
        for seed in cfg.seeds:
            agent = AgentConfig(
                **asdict(cfg.agent)
                | overrides
                | {
                    "task": task,
                    "checkpoint": str(worlds[world].path),
                    "task_kwargs": json.dumps(kwargs),
                    "steps": cfg.ppo_steps,
                    "seed": seed,
                    "out": str(out / "ppo" / slug(label) / f"seed-{seed}"),
                }
            )
            saved = Path(agent.out) / "policy.zip"
            trained = saved if saved.exists() else train_agent(agent)  # resumed: reuse it
            policies.setdefault(label, {})[seed] = str(trained)

    def evaluate(label: str, names: tuple[str, ...]) -> dict[str, Any]:
        task, world, kwargs, _ = runs[label]
        results = {}
        for name in (*names, "ppo"):
            records = {
                seed: run_episodes(
                    task,
                    worlds[world],
                    policy_from_spec(policies[label][seed] if name == "ppo" else name),
                    cfg.episodes,
                    seed,
                    task_kwargs=kwargs,
                )
                for seed in cfg.seeds
            }
            results[name] = summarise(records)
        return results

    recognition = {task: evaluate(task, RECOGNITION[task][1]) for task in recognition_tasks}
    homing = {
        label: evaluate(label, run.policies or cfg.homing_policies)
        for label, run in homing_runs.items()
    }
    if recognition:
        categories = world_categories(Path(next(iter(classifiers.values()))["classifier"]))
        plot_accuracy(recognition, 1.0 / len(categories), out / "accuracy_vs_views.png")
    if homing:
        plot_homing(homing, out / "homing_error.png")
    minutes = (time.perf_counter() - start) / 60
    results = {
        "checkpoints": {name: str(world.path) for name, world in worlds.items()},
        "classifiers": classifiers,
        "odometry": odometry,
        "config": asdict(cfg),
        "recognition": recognition,
        "homing": homing,
        "minutes": minutes,
        "machine": machine(),
    }
    write_text_atomic(out / "results.json", json.dumps(results, indent=1))
    sections = []
    for task, by_policy in recognition.items():
        names = list(by_policy)  # the non-learned policies, then ppo
        gains = ", ".join(
            "{} - {}: {:+.3f} +- {:.3f}".format(name, base, *paired_gain(by_policy, name, base))
            for i, base in enumerate(names[:-1])
            for name in names[i + 1 :]
        )
        sections.append(
            f"## Active recognition ({task}): top-1 after k views\n\n"
            f"{recognition_table(by_policy)}\n\nPaired gain at the last view (same objects and "
            f"starts per seed): {gains}.\n"
        )
    report = (
        "# Exploration benchmark\n\nWorld models: "
        + ", ".join(f"{k} `{w.path}`" for k, w in worlds.items())
        + f". Machine: {machine()}. Wall time: {minutes:.1f} min. Seeds {list(cfg.seeds)} "
        f"(each: a PPO run and its own {cfg.episodes} held-out episodes per policy, the same "
        f"episodes for every policy); PPO {cfg.ppo_steps} steps per task and seed. Mean +- "
        "95% t-interval over seeds.\n\n"
        + "\n".join(sections)
        + ("\n![accuracy](accuracy_vs_views.png)\n\n" if recognition else "")
        + (
            f"## Homing: success (< 15 deg at the end)\n\n{homing_table(homing)}\n\n"
            "![homing](homing_error.png)\n"
            if homing
            else ""
        )
    )
    write_text_atomic(out / "report.md", report)
    print(report)
    seed = cfg.seeds[0]
    for task, world in recognition_tasks.items():
        gif = out / f"{task.removeprefix('SeqJEPA-').lower()}-ppo.gif"
        write_gif(task, worlds[world], policies[task][seed], seed, gif, task_kwargs[task])
    if NOISY in homing:
        gif = out / "homing-noisy-ppo.gif"
        write_gif(NOISY, worlds["rotate"], policies[NOISY][seed], seed, gif)
    return out


def world_categories(classifier: Path) -> list[str]:
    """A classifier's categories (for the chance level)."""
    with np.load(classifier, allow_pickle=False) as data:
        return list(data["categories"])
