"""`seqjepa-gym demo`: the main job. For now: a random-policy episode as a GIF and a contact sheet
of every category; later issues add collection, training, evaluation and a report."""

from __future__ import annotations

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
from experiments.io import atomic_path


@dataclass
class DemoConfig:
    """What `seqjepa-gym demo` does."""

    out: str = "runs"
    """Parent folder; each run writes to <out>/<timestamp>/."""
    env_id: str = "SeqJEPA-Rotate-v0"
    """Environment of the episode GIF."""
    seed: int = 0
    """Seed of the episode, the policy and the contact sheet's instances."""
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


def run(cfg: DemoConfig) -> Path:
    """Write the demo's outputs under a fresh run folder and return it."""
    run_dir = Path(cfg.out) / time.strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    frames = episode_gif(cfg, run_dir / "episode.gif")
    contact_sheet(cfg, run_dir / "categories.png")
    print(f"wrote {run_dir}/episode.gif ({frames} frames) and {run_dir}/categories.png")
    return run_dir
