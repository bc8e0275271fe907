"""Faults: processes killed with SIGKILL, workers that die, a disk that fills up. Whatever
happens, nothing complete is lost, nothing partial is read as complete, and a resumed job ends
exactly where an uninterrupted one does."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from experiments import collect as collect_module
from seqjepa.model import ModelConfig
from seqjepa.rollouts import DatasetError, RolloutDataset
from seqjepa.train import load_checkpoint, preset_config, train
from tests.test_dataset import array_bytes, collect

CLI = [sys.executable, "-m", "experiments.cli"]


def _kill_when(process: subprocess.Popen, ready, timeout: float = 120.0) -> bool:
    """SIGKILL ``process`` once ``ready()`` holds; False if it finished first."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if ready():
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.01)
    process.wait(timeout=timeout)
    return False


def _complete_shards(root: Path) -> int:
    part = root / "parts" / "part-0-of-1.json"
    try:
        return len(json.loads(part.read_text())["shards"])
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("after_shards", [1, 3])
def test_collection_killed_with_sigkill_resumes_byte_identical(after_shards, tmp_path):
    reference = array_bytes(collect(tmp_path, "ref"))
    root = tmp_path / "killed"
    args = [
        "collect",
        "--out",
        str(root),
        "--env-kwargs",
        json.dumps({"image_size": 24}),
        "--episodes",
        "10",
        "--episode-length",
        "4",
        "--shard-episodes",
        "3",
        "--seed",
        "5",
    ]
    process = subprocess.Popen([*CLI, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed = _kill_when(process, lambda: _complete_shards(root) >= after_shards)
    assert killed, "the collection finished before it could be killed"
    with pytest.raises(DatasetError, match="incomplete"):
        RolloutDataset(root)  # no partial dataset reads as complete
    partial = RolloutDataset(root, allow_incomplete=True, verify="eager")  # what is listed is whole
    assert len(partial) >= 3 * after_shards
    subprocess.run([*CLI, *args], check=True, capture_output=True)
    assert array_bytes(root) == reference
    assert not list((root / "shards").glob(".*tmp*"))


def test_a_dead_collection_worker_stops_the_run_cleanly_and_it_resumes(tmp_path):
    """A worker killed mid-run (as the OOM killer would) gives a clear error at once, not a
    hang; complete shards stay; the same command then finishes the dataset exactly."""
    import threading

    import psutil

    root = tmp_path / "crash"

    def kill_a_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            workers = [
                p
                for p in psutil.Process().children()
                if "resource_tracker" not in " ".join(p.cmdline())
            ]
            if workers and _complete_shards(root) >= 1:
                workers[0].send_signal(signal.SIGKILL)
                return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    with pytest.raises(collect_module.CollectionError, match="worker process died"):
        collect(tmp_path, "crash", workers=2, episodes=40, shard_episodes=2)
    killer.join()
    assert len(RolloutDataset(root, allow_incomplete=True, verify="eager")) < 40
    collect(tmp_path, "crash", workers=2, episodes=40, shard_episodes=2)
    reference = collect(tmp_path, "ref", workers=1, episodes=40, shard_episodes=2)
    assert array_bytes(root) == array_bytes(reference)


def test_a_full_disk_marks_nothing_complete_and_keeps_earlier_shards(tmp_path, monkeypatch):
    reference = array_bytes(collect(tmp_path, "ref"))
    real_save = np.save

    def fills_up(file, array, allow_pickle=True):
        if ".shard-00002." in str(file.name):  # the disk fills up during the third shard
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(file, array, allow_pickle=allow_pickle)

    monkeypatch.setattr(np, "save", fills_up)
    with pytest.raises(OSError, match="shard-00002 failed .*No space left.* not marked complete"):
        collect(tmp_path, "full")
    monkeypatch.setattr(np, "save", real_save)
    root = tmp_path / "full"
    assert _complete_shards(root) == 2
    assert len(RolloutDataset(root, allow_incomplete=True, verify="eager")) == 6
    assert not list((root / "shards").glob(".*tmp*"))  # no half-written shard left
    collect(tmp_path, "full")
    assert array_bytes(root) == reference


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    return collect(tmp_path_factory.mktemp("data"), episodes=12)


@pytest.mark.slow
def test_training_killed_with_sigkill_resumes_as_if_never_stopped(small_data, tmp_path):
    common = {"data": str(small_data), "steps": 12, "batch_size": 8, "checkpoint_every": 2,
              "log_every": 4}  # fmt: skip
    straight = train(preset_config("tiny", out=str(tmp_path / "a"), **common))
    out = tmp_path / "b"
    args = ["train", "--out", str(out)]
    for key, value in common.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    # the same thread count as the straight run here: float sums differ bitwise across counts
    env = os.environ | {"OMP_NUM_THREADS": str(torch.get_num_threads())}
    process = subprocess.Popen([*CLI, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=env)  # fmt: skip
    # a checkpoint counts once the `latest` pointer names it (the file is renamed in first, so
    # waiting for the file alone once killed the run between the two and found no pointer)
    killed = _kill_when(process, lambda: (out / "latest").exists())
    assert killed, "the training finished before it could be killed"
    step = load_checkpoint(out / (out / "latest").read_text().strip())["step"]
    assert 0 < step < 12
    subprocess.run([*CLI, *args, "--resume"], check=True, capture_output=True, env=env)
    a = load_checkpoint(straight)["model"]
    b = load_checkpoint(out / "checkpoint-0000012.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = [json.loads(r)["step"] for r in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows == list(range(1, 13))  # no step logged twice, none missing


# -- bad files and settings: clear errors, nothing unpickled


class _Payload:
    """An object a malicious file could carry: unpickling it would run code."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_checkpoints_are_never_unpickled_and_versions_are_checked(tmp_path):
    from seqjepa.train import CHECKPOINT_FORMAT

    torch.save({"format": CHECKPOINT_FORMAT, "version": 1, "x": _Payload()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
    torch.save({"format": CHECKPOINT_FORMAT, "version": 99}, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="checkpoint version 99"):
        load_checkpoint(tmp_path / "future.pt")


def test_dataset_arrays_are_never_unpickled(tmp_path):
    from seqjepa.rollouts import sha256_file

    root = collect(tmp_path, episodes=3)
    labels = root / "shards" / "shard-00000" / "labels.npy"
    np.save(labels, np.array([_Payload()] * 3, dtype=object), allow_pickle=True)
    part = root / "parts" / "part-0-of-1.json"
    manifest = json.loads(part.read_text())  # a consistent checksum: only the content is bad
    manifest["shards"]["shard-00000"]["files"]["labels.npy"] = sha256_file(labels)
    part.write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match=r"labels\.npy: unreadable array"):
        RolloutDataset(root).episode(0)


def test_classifier_files_are_never_unpickled(tmp_path):
    from agents.recognition import Classifier

    np.savez(tmp_path / "evil.npz", weight=np.array([_Payload()], dtype=object))
    with pytest.raises(ValueError, match="not a classifier file"):
        Classifier.load(tmp_path / "evil.npz")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"steps": -5}, "--steps must be an integer >= 1"),
        ({"batch_size": 0}, "--batch-size"),
        ({"lr": float("nan")}, "--lr must be a finite number"),
        ({"ema_base": 1.5}, "--ema-base"),
        ({"views": 1}, "--views"),
        ({"method": "vicreg", "model": ModelConfig(targets=2)}, "--model.targets > 1 needs"),
        ({"mode": "window", "model": ModelConfig(targets=2)}, "subset mode"),
    ],
)
def test_training_settings_out_of_range_are_named(small_data, tmp_path, override, message):
    cfg = preset_config("tiny", data=str(small_data), out=str(tmp_path), **override)
    with pytest.raises(ValueError, match=message):
        train(cfg)
    assert not list(tmp_path.glob("checkpoint-*"))
