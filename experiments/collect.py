"""`seqjepa-gym collect`: record rollouts of a policy into a sharded dataset (seqjepa.rollouts).

Determinism: episode e runs on a generator derived from (seed, e) that seeds both the env's
reset and the policy, so a shard's arrays depend only on (config, shard index): the same seed
gives byte-identical arrays with any number of workers or jobs, and an interrupted collection
resumes by redoing just the shards its manifest does not list.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import gymnasium as gym
from tqdm import tqdm

import envs
from agents.policies import episode_rng, make_policy
from seqjepa.rollouts import (
    FORMAT_NAME,
    FORMAT_VERSION,
    DatasetError,
    EpisodeBuffer,
    write_json_atomic,
    write_shard,
)


class CollectionError(RuntimeError):
    """A collection stopped before its end (its complete shards are kept)."""


@dataclass
class CollectConfig:
    """What `seqjepa-gym collect` records."""

    env: str = "SeqJEPA-Rotate-v0"
    """Registered env id."""
    out: str = "runs/dataset"
    """Dataset directory (created; an existing one with the same config is resumed)."""
    env_kwargs: str = "{}"
    """JSON object of env keyword arguments, e.g. '{"image_size": 32}'."""
    policy: str = "random"
    """Policy name: random, uniform-views (absolute-mode Rotate ids), uniform-views-ood,
    saliency-ior (glimpses), coverage (relative Rotate ids), curiosity (needs policy_kwargs)."""
    policy_kwargs: str = "{}"
    """JSON object of the policy's constructor kwargs (curiosity: {"policy": "ppo.zip",
    "checkpoint": "world model"})."""
    episodes: int = 64
    """Episodes to record."""
    episode_length: int = 8
    """Steps per episode (episodes hold episode_length + 1 observations unless they end early)."""
    shard_episodes: int = 16
    """Episodes per shard file set."""
    workers: int = 1
    """Worker processes (1: collect in this process)."""
    seed: int = 0
    """Dataset seed: episode e uses a generator derived from (seed, e)."""
    shard_index: int = 0
    """This job's index among num_shards independent jobs (cluster array jobs)."""
    num_shards: int = 1
    """Independent jobs sharing the dataset; job i writes the shards k with k % num_shards == i."""


def dataset_meta(cfg: CollectConfig) -> dict[str, Any]:
    """The dataset.json content: what makes two collections the same dataset, plus versions."""
    kwargs = json.loads(cfg.env_kwargs)
    policy_kwargs = json.loads(cfg.policy_kwargs)
    for name, value in (("env-kwargs", kwargs), ("policy-kwargs", policy_kwargs)):
        if not isinstance(value, dict):
            raise ValueError(f"--{name} must be a JSON object, got {value!r}")
    if cfg.env not in envs.ENV_IDS:
        raise ValueError(f"unknown env {cfg.env!r}; valid: {', '.join(envs.ENV_IDS)}")
    for name in ("episodes", "episode_length", "shard_episodes", "workers", "num_shards"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
    if not 0 <= cfg.shard_index < cfg.num_shards:
        raise ValueError(f"--shard-index must be in 0..{cfg.num_shards - 1}")
    probe = gym.make(cfg.env, **kwargs).unwrapped  # validates kwargs; names the categories
    owner = getattr(probe, "catalog", None) or getattr(probe, "images", None)
    categories = list(owner.categories)
    probe.close()
    # policy kwargs only when given: datasets recorded before the field existed still resume
    extra = {"policy_kwargs": policy_kwargs} if policy_kwargs else {}
    return extra | {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "env_id": cfg.env,
        "env_kwargs": kwargs,
        "categories": categories,
        "policy": cfg.policy,
        "seed": cfg.seed,
        "episodes": cfg.episodes,
        "episode_length": cfg.episode_length,
        "shard_episodes": cfg.shard_episodes,
        "num_shards": -(-cfg.episodes // cfg.shard_episodes),
        "versions": {
            pkg: metadata.version(pkg) for pkg in ("seqjepa-gym", "numpy", "gymnasium", "pybullet")
        },
    }


_WORKER: dict[str, Any] = {}


def _init_worker(meta: dict[str, Any]) -> None:
    """Build the env and the policy once per process."""
    _WORKER["meta"] = meta
    _WORKER["env"] = gym.make(
        meta["env_id"], max_episode_steps=meta["episode_length"], **meta["env_kwargs"]
    )
    _WORKER["policy"] = make_policy(meta["policy"], **meta.get("policy_kwargs", {}))
    torch = sys.modules.get("torch")  # loaded by policies that run a model (curiosity)
    if torch is not None and mp.parent_process() is not None:
        torch.set_num_threads(1)  # one thread per worker: workers x threads > cores thrash


def record_episode(env: gym.Env, policy, meta: dict[str, Any], episode: int) -> EpisodeBuffer:
    """Run episode ``episode`` (seeded from (seed, episode)) and return its recording."""
    rng = episode_rng(meta["seed"], episode)
    obs, info = env.reset(seed=int(rng.integers(2**31)))
    policy.begin(env, rng)
    buffer = EpisodeBuffer()
    buffer.add(obs, info)
    for _ in range(meta["episode_length"]):
        obs, _, terminated, truncated, info = env.step(policy.act(obs, info))
        buffer.add(obs, info)
        if terminated or truncated:
            break
    return buffer


def _collect_shard(args: tuple[str, int]) -> tuple[int, dict]:
    root, index = args
    meta, env, policy = _WORKER["meta"], _WORKER["env"], _WORKER["policy"]
    first = index * meta["shard_episodes"]
    last = min(first + meta["shard_episodes"], meta["episodes"])
    episodes = [(e, record_episode(env, policy, meta, e)) for e in range(first, last)]
    return index, write_shard(Path(root), index, episodes)


def worker_context() -> mp.context.BaseContext:
    """fork (fast) unless torch is loaded here: a forked child of a process whose OpenMP pool
    is running deadlocks at its first parallel op (measured: a curiosity collection inside
    explore-data hung with idle workers), and the curiosity policy runs torch in the workers.
    Then spawn, which starts clean interpreters."""
    return mp.get_context("spawn" if "torch" in sys.modules else "fork")


def run(cfg: CollectConfig) -> Path:
    """Collect (or resume) this job's shards; returns the dataset directory."""
    meta = dataset_meta(cfg)
    root = Path(cfg.out)
    (root / "parts").mkdir(parents=True, exist_ok=True)
    meta_path = root / "dataset.json"
    if meta_path.exists():
        existing = json.loads(meta_path.read_text())
        differs = [k for k in meta if k != "versions" and existing.get(k) != meta[k]]
        if differs:
            raise DatasetError(
                f"{meta_path}: an existing dataset with a different {', '.join(differs)}; "
                "choose another --out"
            )
    else:
        write_json_atomic(meta_path, meta)
    part_path = root / "parts" / f"part-{cfg.shard_index}-of-{cfg.num_shards}.json"
    done: dict[str, dict] = (
        json.loads(part_path.read_text())["shards"] if part_path.exists() else {}
    )
    mine = [k for k in range(meta["num_shards"]) if k % cfg.num_shards == cfg.shard_index]
    todo = [k for k in mine if f"shard-{k:05d}" not in done]
    for k in todo:  # temporaries of a crashed run of this job: never part of the dataset
        for stale in (root / "shards").glob(f".shard-{k:05d}.tmp-*"):
            shutil.rmtree(stale)
    tasks = [(str(root), k) for k in todo]
    progress = tqdm(total=len(mine), initial=len(mine) - len(todo), desc="shards", unit="shard")

    def record(index: int, entry: dict) -> None:
        done[f"shard-{index:05d}"] = entry
        write_json_atomic(part_path, {"shards": done})
        progress.update()

    if cfg.workers == 1:
        _init_worker(meta)
        for task in tasks:
            record(*_collect_shard(task))
    else:
        # concurrent.futures, not multiprocessing.Pool: a Pool whose worker is killed (OOM
        # killer, SIGKILL) waits forever; an executor raises BrokenProcessPool at once
        with ProcessPoolExecutor(
            cfg.workers, worker_context(), initializer=_init_worker, initargs=(meta,)
        ) as pool:
            futures = [pool.submit(_collect_shard, task) for task in tasks]
            try:
                for future in as_completed(futures):
                    record(*future.result())
            except BrokenProcessPool:
                missing = [k for k in todo if f"shard-{k:05d}" not in done]
                raise CollectionError(
                    f"{root}: a collection worker process died (killed, or out of memory); "
                    f"shards {missing} were not written. The {len(done)} complete shards are "
                    "kept: run the same command again to resume."
                ) from None
    progress.close()
    print(f"{root}: {len(done)} of {len(mine)} shards of this job complete")
    return root
