"""Recorded rollout datasets: shards of .npy arrays, manifests with checksums, a memmap reader.

numpy only: collecting (experiments/collect.py) needs no torch, and training reads datasets
without pybullet or the envs package. Nothing is ever pickled (``allow_pickle=False``).

Layout of a dataset directory:

    dataset.json                 format version, env id and kwargs, policy, seed, sizes, versions
    parts/part-<i>-of-<n>.json   shards completed by job i of n, with the sha256 of every file
    shards/shard-<k>/<field>.npy one file per field; views[t] and actions[t] belong together

A shard holds ``shard_episodes`` consecutive episodes (the last may hold fewer), their steps
concatenated: ``offsets`` (episodes + 1) marks where each episode's observations start, so
episodes may differ in length. Per observation: ``views``, ``actions`` (CONVENTIONS.md
alignment: index 0 after reset) and, where the env has them, ``orientations``, ``rel_quats``,
``path_quats``, ``latents``, ``positions``, ``path_displacements``. Per episode: ``labels``,
``instances``, ``splits`` (index into assets.SPLITS) and ``episodes`` (global indices).

A shard is written into a temporary directory, fsynced and renamed into place; only then is it
added to the job's part manifest (written atomically). Readers trust the manifests only, so a
crash never leaves a partial shard that reads as complete; resuming redoes any shard not listed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1
FORMAT_NAME = "seqjepa-gym-rollouts"
#: Split names, in the order the per-episode ``splits`` array indexes them (the catalogs' splits;
#: spelled out here so that reading a dataset imports neither assets nor a renderer).
SPLITS = ("train", "val", "test")

#: Per-observation info keys recorded when the env provides them, and their array names.
STEP_INFO_FIELDS = {
    "orientation": "orientations",
    "rel_quat": "rel_quats",
    "path_quat": "path_quats",
    "latents": "latents",
    "path_displacement": "path_displacements",
}


class DatasetError(ValueError):
    """A dataset that cannot be used; the message names the file or shard and the reason."""


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file, fsync and rename: never half-written
    (a failed write, e.g. a full disk, leaves the old file and no temporary)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_npz_atomic(path: Path, **arrays: Any) -> Path:
    """``np.savez`` of ``arrays`` to ``path``, atomically as ``write_text_atomic`` (on a file
    object, so numpy does not append ".npz" to the temporary's name). Returns ``path``."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json_atomic(path: Path, data: Any) -> None:
    """JSON (sorted keys) to ``path``, atomically."""
    write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True))


class EpisodeBuffer:
    """Collects one episode's observations and infos, then hands over arrays."""

    def __init__(self) -> None:
        self.views: list[np.ndarray] = []
        self.actions: list[np.ndarray] = []
        self.positions: list[np.ndarray] = []
        self.infos: dict[str, list[np.ndarray]] = {}
        self.label = -1
        self.instance = -1
        self.split = -1

    def add(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        self.views.append(np.asarray(obs["view"], dtype=np.uint8))
        self.actions.append(np.asarray(obs["action"], dtype=np.float32))
        if "position" in obs:
            self.positions.append(np.asarray(obs["position"], dtype=np.float32))
        for key, name in STEP_INFO_FIELDS.items():
            if key in info:
                self.infos.setdefault(name, []).append(np.asarray(info[key], dtype=np.float32))
        self.label, self.instance = int(info["category"]), int(info["instance"])
        self.split = SPLITS.index(info["split"])


def write_shard(root: Path, index: int, episodes: list[tuple[int, EpisodeBuffer]]) -> dict:
    """Write one shard atomically; returns its manifest entry (files with sha256, sizes)."""
    shards = root / "shards"
    shards.mkdir(parents=True, exist_ok=True)
    final = shards / shard_name(index)
    tmp = shards / f".{shard_name(index)}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    lengths = [len(buffer.views) for _, buffer in episodes]
    arrays: dict[str, np.ndarray] = {
        "views": np.concatenate([np.stack(b.views) for _, b in episodes]),
        "actions": np.concatenate([np.stack(b.actions) for _, b in episodes]),
        "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        "labels": np.array([b.label for _, b in episodes], dtype=np.int64),
        "instances": np.array([b.instance for _, b in episodes], dtype=np.int64),
        "splits": np.array([b.split for _, b in episodes], dtype=np.int8),
        "episodes": np.array([e for e, _ in episodes], dtype=np.int64),
    }
    if episodes[0][1].positions:
        arrays["positions"] = np.concatenate([np.stack(b.positions) for _, b in episodes])
    for name in episodes[0][1].infos:
        arrays[name] = np.concatenate([np.stack(b.infos[name]) for _, b in episodes])
    files = {}
    try:
        for name, array in arrays.items():
            path = tmp / f"{name}.npy"
            with path.open("wb") as f:
                np.save(f, np.ascontiguousarray(array), allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
            files[f"{name}.npy"] = sha256_file(path)
    except OSError as err:  # a full disk, a quota: say which shard, keep nothing half-written
        shutil.rmtree(tmp, ignore_errors=True)
        raise OSError(
            err.errno,
            f"writing {final} failed ({err.strerror or err}); it is not marked complete and "
            "the shards before it are intact: free space and run the same command to resume",
        ) from err
    if final.exists():  # left by a crash after the rename but before the manifest: redo it
        shutil.rmtree(final)
    os.replace(tmp, final)
    return {
        "files": files,
        "episodes": [int(episodes[0][0]), int(episodes[-1][0]) + 1],
        "observations": int(arrays["offsets"][-1]),
    }


@dataclass
class _Shard:
    name: str
    entry: dict
    arrays: dict[str, np.ndarray] | None = None


class RolloutDataset:
    """Random access to a recorded dataset, without loading it (arrays are memory-mapped).

    Every shard's files are checked against their sha256 the first time the shard is opened
    (``verify="lazy"``, default), all at once (``"eager"``) or never (``"off"``); a missing,
    truncated, corrupt or foreign file raises DatasetError naming it.
    """

    def __init__(self, root: str | Path, verify: str = "lazy", allow_incomplete: bool = False):
        self.root = Path(root)
        if verify not in ("lazy", "eager", "off"):
            raise ValueError(f"verify must be 'lazy', 'eager' or 'off', got {verify!r}")
        self.verify = verify
        meta_path = self.root / "dataset.json"
        if not meta_path.is_file():
            raise DatasetError(f"{self.root}: no dataset.json, not a recorded dataset")
        try:
            self.meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as err:
            raise DatasetError(f"{meta_path}: corrupt JSON ({err})") from None
        if self.meta.get("format") != FORMAT_NAME:
            raise DatasetError(f"{meta_path}: not a {FORMAT_NAME} dataset")
        if self.meta.get("format_version") != FORMAT_VERSION:
            raise DatasetError(
                f"{meta_path}: format version {self.meta.get('format_version')}, this reader "
                f"reads version {FORMAT_VERSION}"
            )
        entries: dict[str, dict] = {}
        for part in sorted((self.root / "parts").glob("part-*.json")):
            try:
                entries.update(json.loads(part.read_text())["shards"])
            except (json.JSONDecodeError, KeyError) as err:
                raise DatasetError(f"{part}: corrupt manifest part ({err})") from None
        expected = [shard_name(k) for k in range(self.meta["num_shards"])]
        missing = [name for name in expected if name not in entries]
        if missing and not allow_incomplete:
            raise DatasetError(
                f"{self.root}: incomplete, {len(missing)} of {len(expected)} shards missing "
                f"(first: {missing[0]}); resume the collection or pass allow_incomplete=True"
            )
        self._shards = [_Shard(n, entries[n]) for n in expected if n in entries]
        counts = [s.entry["episodes"][1] - s.entry["episodes"][0] for s in self._shards]
        self._episode_starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        if verify == "eager":
            for shard in self._shards:
                self._open(shard)

    # -- sizes

    def __len__(self) -> int:
        """Number of episodes."""
        return int(self._episode_starts[-1])

    @property
    def num_observations(self) -> int:
        return sum(s.entry["observations"] for s in self._shards)

    # -- access

    def shard_arrays(self, index: int) -> dict[str, np.ndarray]:
        """All arrays of shard ``index`` (memory-mapped, verified on first access)."""
        return self._open(self._shards[index])

    def episode(self, index: int) -> dict[str, np.ndarray]:
        """One episode: per-observation arrays sliced to it, per-episode values as scalars."""
        if not 0 <= index < len(self):
            raise IndexError(f"episode {index} out of range 0..{len(self) - 1}")
        shard_index = int(np.searchsorted(self._episode_starts, index, side="right") - 1)
        arrays = self._open(self._shards[shard_index])
        local = index - int(self._episode_starts[shard_index])
        start, stop = arrays["offsets"][local], arrays["offsets"][local + 1]
        per_episode = ("labels", "instances", "splits", "episodes", "offsets")
        out = {k: v[start:stop] for k, v in arrays.items() if k not in per_episode}
        out["label"] = int(arrays["labels"][local])
        out["instance"] = int(arrays["instances"][local])
        out["episode"] = int(arrays["episodes"][local])
        out["split"] = SPLITS[int(arrays["splits"][local])]
        return out

    def _open(self, shard: _Shard) -> dict[str, np.ndarray]:
        if shard.arrays is not None:
            return shard.arrays
        folder = self.root / "shards" / shard.name
        arrays = {}
        for filename, checksum in shard.entry["files"].items():
            path = folder / filename
            if not path.is_file():
                raise DatasetError(f"{path}: missing file of shard {shard.name}")
            if self.verify != "off" and sha256_file(path) != checksum:
                raise DatasetError(f"{path}: checksum mismatch (corrupt or modified shard)")
            try:
                arrays[filename.removesuffix(".npy")] = np.load(
                    path, mmap_mode="r", allow_pickle=False
                )
            except (ValueError, OSError) as err:
                raise DatasetError(f"{path}: unreadable array ({err})") from None
        shard.arrays = arrays
        return arrays
