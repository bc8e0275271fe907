"""Training throughput for `seqjepa-gym bench`: synthetic tensors vs the real data path.

The bare step (forward, backward, AdamW, EMA on in-memory tensors) is timed alone: it is the
figure comparable with the released implementation's. The throughputs are `train` itself, same
model, optimizer, precision, probes and monitoring: once on random in-memory tensors
(``--synthetic``), once on a freshly collected dataset (memory-mapped shards, checksums,
sequence cutting, DataLoader), each timed by its own metrics (sequences/s between log rows, so
start-up and the final checkpoint are excluded).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from experiments.collect import CollectConfig
from experiments.collect import run as collect
from seqjepa.model import SeqJEPA
from seqjepa.train import make_optimizer, preset_config, resolve_device, train, use_bf16

#: (name, preset, image size, batch, overrides): `paper-64` is the configuration of the released
#: implementation's CPU figure (ResNet-18, standard stem, 64 px, batch 64, M_tr = 3: 786 ms).
CONFIGS = (
    ("tiny", "tiny", 32, 64, {}),
    ("paper-64", "paper", 64, 64, {"warmup_steps": 2}),
)


def bare_step_ms(cfg, size: int, steps: int) -> float:
    """Median ms of the optimizer step alone (forward, backward, AdamW, EMA) on in-memory
    tensors: the figure comparable with the released implementation's 786 ms."""
    device = resolve_device(cfg.device)
    torch.manual_seed(0)
    model = SeqJEPA(cfg.model).to(device).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, cfg)
    bf16 = use_bf16(cfg.precision, device)
    views = torch.randint(0, 256, (cfg.batch_size, cfg.views, size, size, 3), dtype=torch.uint8)
    actions = torch.randn(cfg.batch_size, cfg.views, cfg.model.action_dim)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            loss, _ = model.loss(views.to(device), actions.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        model.update_target(0.996)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[1:])


def _rate(cfg) -> float:
    """Median sequences/s of a `train` run, from its metrics (the first interval dropped)."""
    train(cfg)
    rows = [json.loads(line) for line in (Path(cfg.out) / "metrics.jsonl").open()]
    return statistics.median([r["sequences_per_s"] for r in rows if "sequences_per_s" in r][1:])


def bench_training(steps: int = 10) -> list[dict]:
    rows = []
    for name, preset, size, batch, overrides in CONFIGS:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data"
            collect(CollectConfig(out=str(data), env_kwargs=json.dumps({"image_size": size}),
                                  episodes=64, episode_length=7, shard_episodes=16))  # fmt: skip
            common = {"steps": steps * 2, "batch_size": batch, "log_every": max(steps // 2, 1),
                      "checkpoint_every": 10**9, **overrides}  # fmt: skip
            synthetic_cfg = preset_config(preset, synthetic=size, out=f"{tmp}/s", **common)
            bare = bare_step_ms(synthetic_cfg, size, steps)
            synthetic = _rate(synthetic_cfg)
            real = _rate(preset_config(preset, data=str(data), out=f"{tmp}/d", **common))
        rows.append(
            {
                "config": name,
                "image_size": size,
                "batch": batch,
                "bare_step_ms": bare,
                "synthetic_sequences_per_s": synthetic,
                "data_path_sequences_per_s": real,
                "ratio": real / synthetic,
                "bf16": use_bf16("auto", resolve_device("auto")),
            }
        )
    return rows
