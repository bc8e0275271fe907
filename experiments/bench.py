"""`seqjepa-gym bench`: throughput and memory figures of the environments, printed as Markdown.

Every ratio is measured side by side in one run: env steps and bare renders of the same object
alternate in blocks, and medians over blocks are reported, so machine noise hits both alike.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import psutil
from tqdm import tqdm

import envs  # noqa: F401  (registers the ids gym.make_vec uses)
from assets import ProceduralCatalog
from envs.rotate import RotateEnv
from seqjepa.rollouts import write_text_atomic


@dataclass
class BenchConfig:
    """What `seqjepa-gym bench` measures."""

    sizes: tuple[int, ...] = (64, 128)
    """Image sides (pixels) for the Rotate-v0 figures."""
    steps: int = 300
    """Steps per timed block."""
    blocks: int = 5
    """Timed blocks per figure; medians over blocks are reported."""
    vector_steps: int = 3000
    """Env steps for each of the 1-env vs 2-worker comparisons."""
    envs_per_worker: int = 8
    """Envs per worker process in the BatchedVectorEnv figure."""
    collect_episodes: int = 256
    """Episodes (9 views each) per collection-throughput figure."""
    train_steps: int = 10
    """Timed optimizer steps per training-throughput figure."""
    memory_instances: int = 1500
    """Distinct procedural instances loaded for the memory-bound figure."""
    out: str = "runs/bench"
    """Folder for the JSON record of the run."""


def _rate(fn: Callable[[Any], Any], inputs: list) -> float:
    """Calls per second of ``fn`` over ``inputs``."""
    start = time.perf_counter()
    for x in inputs:
        fn(x)
    return len(inputs) / (time.perf_counter() - start)


def bench_env_vs_bare(size: int, floor: bool, cfg: BenchConfig) -> dict:
    """Env steps/s and bare getCameraImage/s for one instance of every procedural category."""
    catalog = ProceduralCatalog()
    rows = []
    for category in tqdm(catalog.categories, desc=f"{size}px floor={floor}", leave=False):
        instance = next(catalog.instances(category, "train"))
        env = RotateEnv(image_size=size, floor=floor)
        env.reset(seed=0, options={"category": category, "instance": instance})
        actions = [env.action_space.sample() for _ in range(cfg.steps)]
        scene = env.scene
        args = scene.camera_args(env._lighting, size)
        client, body = scene.client, scene.body
        quats = [env.step(a)[4]["orientation"] for a in actions]  # warm-up and poses to replay
        env_rates, bare_rates = [], []
        for _ in range(cfg.blocks):
            env_rates.append(_rate(lambda a, env=env: env.step(a), actions))

            def bare(q, client=client, body=body, args=args) -> None:
                client.resetBasePositionAndOrientation(body, [0, 0, 0], q)
                client.getCameraImage(**args)

            bare_rates.append(_rate(bare, quats))
        env.close()
        env_rate, bare_rate = float(np.median(env_rates)), float(np.median(bare_rates))
        ratios = np.array(env_rates) / np.array(bare_rates)
        rows.append(
            {
                "category": category,
                "instance": instance,
                "faces": sum(len(p.faces) for p in catalog.build(catalog.spec(category, instance))),
                "env_steps_per_s": env_rate,
                "bare_renders_per_s": bare_rate,
                "ratio": float(np.median(ratios)),
            }
        )
    order = np.argsort([r["env_steps_per_s"] for r in rows])
    median = rows[order[len(rows) // 2]]
    return {"size": size, "floor": floor, "objects": rows, "median_object": median}


def bench_parallel(size: int, floor: bool, cfg: BenchConfig) -> dict:
    """Steps/s of one ``gym.make`` env vs two ways of using 2 worker processes, same settings:
    gymnasium's AsyncVectorEnv (one env per worker) and BatchedVectorEnv (``workers=2``, several
    envs per worker). Random objects, so every reset (each 50 steps) builds and loads a new
    instance: the figures include that cost, as a user's run would."""
    kwargs = {"image_size": size, "floor": floor}
    env = gym.make("SeqJEPA-Rotate-v0", **kwargs)
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(cfg.vector_steps)]

    def step(action) -> None:
        if any(env.step(action)[2:4]):
            env.reset()

    step(actions[0])  # warm-up
    result = {"size": size, "floor": floor, "single": _rate(step, actions)}
    env.close()
    for name, num_envs, options in (
        ("async2", 2, {"vectorization_mode": "async"}),
        ("batched2", cfg.envs_per_worker * 2, {"workers": 2}),
    ):
        vec = gym.make_vec("SeqJEPA-Rotate-v0", num_envs=num_envs, **options, **kwargs)
        vec.reset(seed=0)
        vec.action_space.seed(0)
        batches = [vec.action_space.sample() for _ in range(max(cfg.vector_steps // num_envs, 20))]
        for batch in batches[:10]:  # warm-up: workers start, first objects load
            vec.step(batch)
        result[name] = num_envs * _rate(vec.step, batches)
        vec.close()
    return result


def bench_glimpses(cfg: BenchConfig) -> list[dict]:
    """Saccade-v0 steps/s at 32 px glimpses on a 128 px scene (steps cut glimpses, no
    rendering) and, separately, resets/s (a reset renders the scene and loads a new object)."""
    from envs.saccade import SaccadeEnv

    env = SaccadeEnv(scene_size=128, glimpse_size=32)
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(cfg.steps * 20)]
    steps = float(np.median([_rate(env.step, actions) for _ in range(cfg.blocks)]))
    resets = _rate(lambda _: env.reset(), list(range(cfg.steps // 2)))
    env.close()
    return [{"env": "SeqJEPA-Saccade-v0", "steps_per_s": steps, "resets_per_s": resets}]


def bench_collection(cfg: BenchConfig) -> list[dict]:
    """Views/s written by `seqjepa-gym collect` (Rotate-v0, 64 px, random policy, 8-step
    episodes: every episode loads a new object) with 1 and 2 workers."""
    import tempfile

    from experiments.collect import CollectConfig
    from experiments.collect import run as collect

    rows = []
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            run_cfg = CollectConfig(
                out=tmp, episodes=cfg.collect_episodes, episode_length=8, shard_episodes=16,
                workers=workers,
            )  # fmt: skip
            start = time.perf_counter()
            collect(run_cfg)
            seconds = time.perf_counter() - start
        views = cfg.collect_episodes * 9
        rows.append({"workers": workers, "views_per_s": views / seconds, "seconds": seconds})
    return rows


def bench_memory(cfg: BenchConfig) -> dict:
    """RSS while loading ``memory_instances`` distinct instances under the default face budget."""
    proc = psutil.Process()
    env = RotateEnv()
    env.reset(seed=0)
    base = proc.memory_info().rss
    peak = base
    for _ in tqdm(range(cfg.memory_instances), desc="distinct instances", leave=False):
        env.reset()  # unlimited instances: every reset loads a new one
        env.step(env.action_space.sample())
        peak = max(peak, proc.memory_info().rss)
    faces = env.scene.max_loaded_faces
    result = {
        "instances": cfg.memory_instances,
        "max_loaded_faces": faces,
        "reconnects": env.scene.reconnects,
        "rss_start_mib": base / 2**20,
        "rss_peak_mib": peak / 2**20,
        "growth_mib": (peak - base) / 2**20,
    }
    env.close()
    return result


def run(cfg: BenchConfig) -> dict:
    """Run every benchmark, print Markdown tables, save a JSON record; returns the record."""
    record: dict = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
        "config": asdict(cfg),
        "env_vs_bare": [],
        "parallel": [],
    }
    print(f"# seqjepa-gym bench ({os.cpu_count()} cores, {platform.machine()})\n")
    print("## Rotate-v0 env step vs bare getCameraImage (1 process, random relative actions)\n")
    print("| size | floor | median object | faces | env steps/s | bare renders/s | ratio | min |")
    print("|---|---|---|---|---|---|---|---|")
    for size in cfg.sizes:
        for floor in (False, True):
            result = bench_env_vs_bare(size, floor, cfg)
            record["env_vs_bare"].append(result)
            m = result["median_object"]
            worst = min(r["ratio"] for r in result["objects"])
            print(
                f"| {size} | {floor} | {m['category']} | {m['faces']} | {m['env_steps_per_s']:.0f} "
                f"| {m['bare_renders_per_s']:.0f} | {m['ratio']:.3f} | {worst:.3f} |",
                flush=True,
            )
    print("\n## 2 worker processes vs 1 env (random objects, resets every 50 steps)\n")
    print(
        f"| size | floor | 1 env | AsyncVectorEnv, 2 envs | speedup "
        f"| BatchedVectorEnv, 2 workers x {cfg.envs_per_worker} envs | speedup |"
    )
    print("|---|---|---|---|---|---|---|")
    for size in cfg.sizes:
        for floor in (False, True):
            r = bench_parallel(size, floor, cfg)
            record["parallel"].append(r)
            print(
                f"| {size} | {floor} | {r['single']:.0f} | {r['async2']:.0f} "
                f"| {r['async2'] / r['single']:.2f}x | {r['batched2']:.0f} "
                f"| {r['batched2'] / r['single']:.2f}x |",
                flush=True,
            )
    print("\n## Glimpse envs, 32 px glimpses (1 process, random relative saccades)\n")
    print("| env | steps/s | resets/s |")
    print("|---|---|---|")
    record["glimpses"] = bench_glimpses(cfg)
    for r in record["glimpses"]:
        print(f"| {r['env']} | {r['steps_per_s']:.0f} | {r['resets_per_s']:.0f} |", flush=True)
    print("\n## Collection (seqjepa-gym collect, Rotate-v0 64 px, 9 views per episode)\n")
    print("| workers | views/s | seconds |")
    print("|---|---|---|")
    record["collection"] = bench_collection(cfg)
    for r in record["collection"]:
        print(f"| {r['workers']} | {r['views_per_s']:.0f} | {r['seconds']:.1f} |", flush=True)
    mem = bench_memory(cfg)
    record["memory"] = mem
    print("\n## Memory with unlimited distinct instances\n")
    print(
        f"{mem['instances']} distinct instances, max_loaded_faces={mem['max_loaded_faces']:,}: "
        f"RSS {mem['rss_start_mib']:.0f} -> peak {mem['rss_peak_mib']:.0f} MiB "
        f"(+{mem['growth_mib']:.0f} MiB), {mem['reconnects']} renderer recycles"
    )
    # Last: training imports torch and grows the process, which the memory figure must not see.
    from experiments.bench_train import bench_training

    print("\n## Training throughput (M_tr = 3; bf16 autocast where the CPU has it)\n")
    print("| config | px | batch | bare step ms | synthetic seq/s | data path seq/s | ratio |")
    print("|---|---|---|---|---|---|---|")
    record["training"] = bench_training(cfg.train_steps)
    for r in record["training"]:
        print(
            f"| {r['config']} | {r['image_size']} | {r['batch']} "
            f"| {r['bare_step_ms']:.0f} "
            f"| {r['synthetic_sequences_per_s']:.0f} | {r['data_path_sequences_per_s']:.0f} "
            f"| {r['ratio']:.2f} |",
            flush=True,
        )
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    write_text_atomic(path, json.dumps(record, indent=2))
    print(f"\nrecord: {path}")
    return record


__all__ = ["BenchConfig", "run"]
