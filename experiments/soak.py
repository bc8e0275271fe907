"""`seqjepa-gym soak` (`make soak`): long runs that must not leak or hang.

1. ``steps`` Rotate-v0 steps in one process with a reset every ``reset_every`` steps, over a
   fixed pool of train-split instances (so the instance cache warms up and then only repeats):
   resident memory after the warm-up must grow by less than 5% by the end.
2. ``distinct_instances`` resets that each load a new instance: memory must stay under the
   face-budget bound README "Memory" documents (about 100 MiB of shape memory per env).
3. ``vector_episodes`` episodes through a 2-worker vector env (envs.vector): the memory of the
   main process and its workers after the warm-up must grow by less than 5%, and no step may
   take longer than ``hang_s``.
Prints a Markdown table and writes runs/soak/soak.json.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import psutil
from tqdm import tqdm

import envs  # noqa: F401
from envs.rotate import RotateEnv
from experiments.bench import BenchConfig, bench_memory
from experiments.report import machine
from seqjepa.rollouts import write_text_atomic

MIB = 2**20


@dataclass
class SoakConfig:
    """What `seqjepa-gym soak` runs (defaults: the reliability issue's figures)."""

    steps: int = 100_000
    """Single-env steps."""
    reset_every: int = 16
    """Steps between resets."""
    image_size: int = 64
    """Side of the views."""
    pool: int = 10
    """Train-split instances per category that the resets cycle through."""
    warm_fraction: float = 0.1
    """Fraction of each run after which the memory baseline is taken (the cache is warm)."""
    distinct_instances: int = 1_500
    """Resets that each load a new instance (memory bound check)."""
    vector_episodes: int = 20_000
    """Episodes through the vector env."""
    vector_envs: int = 4
    """Envs in the vector env."""
    vector_workers: int = 2
    """Worker processes of the vector env."""
    vector_episode_steps: int = 4
    """Steps per vector-env episode (short: the test is about many episodes)."""
    hang_s: float = 10.0
    """A vector step slower than this counts as a hang."""
    seed: int = 0
    """Seeds the instances and the actions."""
    out: str = "runs/soak"
    """Where soak.json goes."""


def _tree_rss(process: psutil.Process) -> int:
    """Resident memory of a process and its children."""
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def soak_single(cfg: SoakConfig) -> dict:
    env = RotateEnv(image_size=cfg.image_size, split="train")
    catalog = env.catalog
    rng = np.random.default_rng(cfg.seed)
    pool = []
    for category in catalog.categories:
        train = [k for k in range(10 * cfg.pool) if catalog.split_of(category, k) == "train"]
        pool += [(category, k) for k in train[: cfg.pool]]
    process = psutil.Process()
    warm_at = int(cfg.steps * cfg.warm_fraction)
    warm = 0
    start = time.perf_counter()
    for step in tqdm(range(cfg.steps), desc="single env", unit="step", mininterval=1):
        if step % cfg.reset_every == 0:
            category, instance = pool[rng.integers(len(pool))]
            options = {"category": category, "instance": instance}
            env.reset(seed=int(rng.integers(2**31)), options=options)
        env.step(rng.uniform(-1, 1, 3).astype(np.float32))
        if step == warm_at:
            warm = process.memory_info().rss
    final = process.memory_info().rss
    env.close()
    return {
        "steps": cfg.steps,
        "instances_in_pool": len(pool),
        "steps_per_s": cfg.steps / (time.perf_counter() - start),
        "rss_warm_mib": warm / MIB,
        "rss_final_mib": final / MIB,
        "growth_pct": 100 * (final - warm) / warm,
    }


def soak_vector(cfg: SoakConfig) -> dict:
    vector = gym.make_vec(
        "SeqJEPA-Rotate-v0",
        cfg.vector_envs,
        workers=cfg.vector_workers,
        image_size=cfg.image_size,
        max_episode_steps=cfg.vector_episode_steps,
    )
    vector.reset(seed=cfg.seed)
    vector.action_space.seed(cfg.seed)
    process = psutil.Process()
    warm_at = int(cfg.vector_episodes * cfg.warm_fraction)
    episodes, warm, slowest, steps = 0, 0, 0.0, 0
    bar = tqdm(total=cfg.vector_episodes, desc="vector env", unit="episode", mininterval=1)
    start = time.perf_counter()
    while episodes < cfg.vector_episodes:
        tick = time.perf_counter()
        _, _, terminated, truncated, _ = vector.step(vector.action_space.sample())
        slowest = max(slowest, time.perf_counter() - tick)
        steps += 1
        ended = int(np.sum(terminated | truncated))
        if episodes < warm_at <= episodes + ended:
            warm = _tree_rss(process)
        episodes += ended
        bar.update(ended)
    bar.close()
    final = _tree_rss(process)
    seconds = time.perf_counter() - start
    vector.close()
    return {
        "episodes": episodes,
        "steps": steps,
        "episodes_per_s": episodes / seconds,
        "slowest_step_s": slowest,
        "hang": slowest > cfg.hang_s,
        "rss_warm_mib": warm / MIB,
        "rss_final_mib": final / MIB,
        "growth_pct": 100 * (final - warm) / warm,
    }


def run(cfg: SoakConfig) -> dict:
    record = {
        "config": asdict(cfg),
        "machine": machine(),
        "single": soak_single(cfg),
        "distinct": bench_memory(BenchConfig(memory_instances=cfg.distinct_instances)),
        "vector": soak_vector(cfg),
    }
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "soak.json", json.dumps(record, indent=1))
    s, d, v = record["single"], record["distinct"], record["vector"]
    print(
        "| soak | work | memory after warm-up -> end | growth | goal |\n|---|---|---|---|---|\n"
        f"| one env, repeating instances | {s['steps']} steps ({s['steps_per_s']:.0f}/s) | "
        f"{s['rss_warm_mib']:.0f} -> {s['rss_final_mib']:.0f} MiB | {s['growth_pct']:+.1f}% | "
        "< 5% |\n"
        f"| one env, distinct instances | {d['instances']} instances | "
        f"{d['rss_start_mib']:.0f} -> peak {d['rss_peak_mib']:.0f} MiB | "
        f"+{d['growth_mib']:.0f} MiB | < ~100 MiB |\n"
        f"| {cfg.vector_workers}-worker vector env | {v['episodes']} episodes "
        f"({v['episodes_per_s']:.0f}/s; slowest step {v['slowest_step_s']:.2f} s) | "
        f"{v['rss_warm_mib']:.0f} -> {v['rss_final_mib']:.0f} MiB | {v['growth_pct']:+.1f}% | "
        "< 5%, no hang |\n"
        f"\nMachine: {machine()}."
    )
    return record
