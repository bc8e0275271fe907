"""`seqjepa-gym demo` (`make demo`): the whole pipeline, end to end on CPU in minutes.

collect -> train seq-JEPA (`tiny`) and its no-action twin -> evaluate both and the random
encoder on held-out instances -> report. Leaves runs/<timestamp>/ with the dataset (manifests
and checksums), both training runs (checkpoints, metrics.jsonl), one metrics.json per model,
report.md with its PNG plots, an episode GIF and a contact sheet of the categories.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import imageio.v3 as iio
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy.spatial.transform import Rotation
from tqdm import tqdm

import envs  # noqa: F401  (registers the ids)
from assets import ProceduralCatalog
from envs.rotate import RotateEnv
from experiments import collect
from experiments.io import atomic_path
from experiments.report import Target, write_report
from seqjepa.evaluate import EvalConfig, evaluate
from seqjepa.probes import MLPProbeConfig
from seqjepa.train import preset_config, train


@dataclass
class DemoConfig:
    """What `seqjepa-gym demo` does (the defaults are what `make demo` runs)."""

    out: str = "runs"
    """Parent folder; each run writes to <out>/<timestamp>/."""
    seed: int = 0
    """Seeds the dataset, both trainings, the evaluations and the GIF."""
    image_size: int = 32
    """Side of the views in pixels."""
    episodes: int = 4000
    """Episodes recorded: one object each, from every split (80/10/10 by instance)."""
    views: int = 8
    """Views per episode: 3DIEBench-style independent random orientations of one object."""
    workers: int = 2
    """Collection worker processes."""
    steps: int = 1000
    """Training steps of each model."""
    batch_size: int = 128
    """Sequences per training step."""
    target_norm: str = "standardise"
    """The training target's normalisation (seqjepa.model.ModelConfig.target_norm)."""
    probe_steps: int = 500
    """Steps of each regression probe."""
    env_id: str = "SeqJEPA-Rotate-v0"
    """Environment of the episode GIF."""
    episode_steps: int = 24
    """Random-policy steps in the GIF."""
    gif_size: int = 256
    """Side in pixels of the GIF frames (the env's human render)."""
    instances_per_category: int = 4
    """Columns of the contact sheet: train-split instances shown per category."""
    sheet_size: int = 96
    """Side in pixels of each contact-sheet cell."""


def episode_gif(cfg: DemoConfig, path: Path) -> int:
    """Roll out a uniform random policy; write the human view and the agent's view side by side."""
    env = gym.make(cfg.env_id, render_mode="rgb_array", render_size=cfg.gif_size)
    env.action_space.seed(cfg.seed)
    obs, _ = env.reset(seed=cfg.seed)
    frames = []
    for _ in tqdm(range(cfg.episode_steps + 1), desc="episode", leave=False):
        human = env.render()
        small = obs["view"].repeat(cfg.gif_size // obs["view"].shape[0], 0)
        small = small.repeat(cfg.gif_size // obs["view"].shape[1], 1)
        frames.append(np.concatenate([human, small[: cfg.gif_size, : cfg.gif_size]], axis=1))
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            break
    env.close()
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, np.stack(frames), extension=".gif", duration=250, loop=0)
    return len(frames)


def contact_sheet(cfg: DemoConfig, path: Path) -> None:
    """One row per category, train-split instances at a fixed, informative orientation."""
    catalog = ProceduralCatalog()
    env = RotateEnv(image_size=cfg.sheet_size, initial_orientation="identity")
    rows = len(catalog.categories)
    fig, axes = plt.subplots(
        rows,
        cfg.instances_per_category,
        figsize=(1.3 * cfg.instances_per_category, 1.3 * rows),
        squeeze=False,
    )
    # Three-quarter view: the front (+x) turned toward the camera, side and top visible.
    orientation = Rotation.from_euler("z", -50, degrees=True).as_quat()
    for r, category in enumerate(tqdm(catalog.categories, desc="contact sheet", leave=False)):
        instances = catalog.instances(category, "train")
        for c in range(cfg.instances_per_category):
            instance = next(instances)
            options = {"category": category, "instance": instance, "orientation": orientation}
            obs, _ = env.reset(seed=cfg.seed, options=options)
            ax = axes[r, c]
            ax.imshow(obs["view"])
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(category, fontsize=8)
            ax.set_title(f"#{instance}", fontsize=6)
    env.close()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def demo_targets(runs: dict[str, dict]) -> list[Target]:
    """The figures issue 5 asks the demo to reach, measured."""
    seq, rnd = runs["seq-JEPA"], runs["random encoder"]

    def top1(r: dict, m: int | None = None) -> float:
        c = r["classification"]
        return c["single_view"]["top1"] if m is None else c["aggregate"][str(m)]["top1"]

    return [
        Target("z_AGG top-1, M_val = 5", 0.93, top1(seq, 5)),
        Target("single-view top-1", 0.72, top1(seq)),
        Target("z_AGG top-1 M_val = 5 minus random encoder", 0.15, top1(seq, 5) - top1(rnd, 5)),
        Target("single-view top-1 minus random encoder", 0.15, top1(seq) - top1(rnd)),
        Target("z_AGG top-1: M_val = 5 minus M_val = 1", 1e-9, top1(seq, 5) - top1(seq, 1)),
        Target("effective rank of z", 15, seq["effective_rank"]["value"]),
        Target(
            "relative-rotation R^2 (random pairs)", 0.19, seq["relative_pose"]["random_pairs"]["r2"]
        ),
    ]


def run(cfg: DemoConfig) -> Path:
    """Run the pipeline into a fresh run folder and return it."""
    run_dir = Path(cfg.out) / time.strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    stages = tqdm(total=7, desc="demo", unit="stage", position=0)
    seconds: dict[str, float] = {}

    def stage(name: str):
        stages.set_postfix_str(name)
        seconds[name] = time.perf_counter()

    def done(name: str) -> None:
        seconds[name] = round(time.perf_counter() - seconds[name], 1)
        stages.update()

    stage("collect")
    env_kwargs = {
        "image_size": cfg.image_size,
        "action_mode": "absolute",
        "initial_orientation": "3diebench",
        "split": None,
    }
    data = collect.run(
        collect.CollectConfig(
            env="SeqJEPA-Rotate-v0",
            out=str(run_dir / "dataset"),
            env_kwargs=json.dumps(env_kwargs),
            policy="uniform-views",
            episodes=cfg.episodes,
            episode_length=cfg.views - 1,
            shard_episodes=250,
            workers=cfg.workers,
            seed=cfg.seed,
        )
    )
    done("collect")
    trained = {}
    for name, method in (("seq-JEPA", "seqjepa"), ("no-action twin", "no-action")):
        stage(f"train {method}")
        base = preset_config("tiny")
        trained[name] = train(
            dataclasses.replace(
                base,
                data=str(data),
                out=str(run_dir / f"train-{method}"),
                method=method,
                steps=cfg.steps,
                batch_size=cfg.batch_size,
                seed=cfg.seed,
                checkpoint_every=cfg.steps,
                model=dataclasses.replace(base.model, target_norm=cfg.target_norm),
            )
        )
        done(f"train {method}")
    runs = {}
    probe = MLPProbeConfig(steps=cfg.probe_steps, seed=cfg.seed)
    evaluations = [*trained.items(), ("random encoder", trained["seq-JEPA"])]
    for name, checkpoint in evaluations:
        stage(f"eval {name}")
        runs[name] = evaluate(
            EvalConfig(
                checkpoint=str(checkpoint),
                data=str(data),
                out=str(run_dir / "eval" / name.replace(" ", "-")),
                random_encoder=name == "random encoder",
                probe=probe,
                seed=cfg.seed,
            )
        )
        done(f"eval {name}")
    stage("report")
    frames = episode_gif(cfg, run_dir / "episode.gif")
    contact_sheet(cfg, run_dir / "categories.png")
    targets = demo_targets(runs)
    notes = [
        f"{cfg.episodes} episodes of {cfg.views} views at {cfg.image_size} px; `tiny` preset, "
        f"{cfg.steps} steps of batch {cfg.batch_size}, target_norm={cfg.target_norm}.",
        "Seconds per stage: " + ", ".join(f"{k} {v}" for k, v in seconds.items()) + ".",
        f"Episode GIF: [episode.gif](episode.gif) ({frames} frames); categories: "
        "[categories.png](categories.png).",
    ]
    done("report")
    report = write_report(run_dir, "seq-JEPA Gym demo", runs, notes, targets)
    stages.close()
    print(report.read_text())
    print(f"wrote {run_dir}")
    return run_dir
