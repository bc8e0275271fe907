"""Training seq-JEPA: one config dataclass per run, named presets, an exactly resumable loop.

    seqjepa-gym train --preset tiny --data runs/rotate32 --steps 300 --out runs/train

Recipe (ANCHORS.md, without the released code's defects): AdamW with weight decay on >= 2-d
parameters only, linear warm-up then cosine decay computed per step (never reset per epoch),
EMA momentum on a cosine schedule to 1, cosine loss. Batch k is drawn from (seed, k), the torch
RNG state is checkpointed, so ``--resume`` continues exactly as an uninterrupted run would.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from seqjepa.data import SequenceDataset, StepBatchSampler
from seqjepa.metrics import effective_rank
from seqjepa.model import ModelConfig, SeqJEPA, ema_momentum

CHECKPOINT_FORMAT = "seqjepa-gym-checkpoint"
CHECKPOINT_VERSION = 1


@dataclass
class TrainConfig:
    """One training run."""

    data: str = ""
    """Recorded dataset (seqjepa-gym collect) or 3DIEBench folder to train on."""
    out: str = "runs/train"
    """Run folder: checkpoints, metrics.jsonl, config.json."""
    preset: str = "tiny"
    """Named preset the other fields start from (tiny, paper); flags override it."""
    steps: int = 300
    """Optimizer steps."""
    resume: bool = False
    """Continue the run in ``out`` from its latest checkpoint."""
    stop_after: int = 0
    """Stop this invocation after this many steps (0: run to ``steps``); the schedule still
    spans ``steps``, so a later --resume continues the same run (preemptible jobs)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Architecture (action_dim is taken from the data)."""
    views: int = 4
    """Views per training sequence, M_tr + 1 (the paper: M_tr = 3)."""
    mode: str = "subset"
    """How sequences are cut: window (consecutive) or subset (random views, 3DIEBench style)."""
    action_key: str = "actions"
    """Window mode: condition on the executed command ('actions') or on 'rel_quats'."""
    batch_size: int = 64
    """Sequences per optimizer step (the global batch under DDP)."""
    lr: float = 4e-4
    """Peak learning rate."""
    min_lr: float = 1e-5
    """Learning rate at the start of warm-up and at the end of the cosine."""
    weight_decay: float = 1e-3
    """AdamW weight decay, on parameters with >= 2 dimensions only."""
    warmup_steps: int = 20
    """Linear warm-up steps."""
    ema_base: float = 0.996
    """EMA momentum at step 0 (cosine schedule to 1)."""
    grad_clip: float = 0.0
    """Clip the gradient norm to this (0: off)."""
    seed: int = 0
    """Seeds the model, the data order and every random draw."""
    log_every: int = 25
    """Steps between metric rows (loss is logged every step)."""
    checkpoint_every: int = 100
    """Steps between checkpoints (one is also written at the end)."""
    workers: int = 0
    """DataLoader worker processes."""
    device: str = "auto"
    """cpu, cuda, or auto."""
    compile: bool = False
    """torch.compile the model (CUDA)."""


PRESETS: dict[str, dict[str, Any]] = {
    # CPU-sized: a narrow ResNet with a cheap stem, 32-64 px views (tests and the demo).
    "tiny": {
        "model": ModelConfig(
            widths=(32, 64, 128, 256),
            depths=(1, 1, 1, 1),
            stem="cheap",
            action_proj_dim=64,
            layers=2,
            heads=4,
            ffn_mult=2,
            predictor_hidden=512,
        ),
        "batch_size": 64,
        "lr": 5e-4,
        "weight_decay": 0.04,
        "warmup_steps": 20,
    },
    # The paper's recipe: ResNet-18, 128 px, batch 512, M_tr = 3.
    "paper": {
        "model": ModelConfig(),
        "batch_size": 512,
        "views": 4,
        "lr": 4e-4,
        "weight_decay": 1e-3,
        "warmup_steps": 2000,
    },
}


def preset_config(name: str, **overrides: Any) -> TrainConfig:
    """The config of preset ``name``, with ``overrides`` applied on top."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}")
    return TrainConfig(**{"preset": name, **PRESETS[name], **overrides})


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up from min_lr to lr, then cosine back to min_lr at the last step."""
    if step < cfg.warmup_steps:
        return cfg.min_lr + (cfg.lr - cfg.min_lr) * step / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1)
    return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * min(progress, 1)))


def make_optimizer(model: SeqJEPA, cfg: TrainConfig) -> torch.optim.AdamW:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0},
        ],
        lr=cfg.min_lr,
    )


def action_use_gap(model: SeqJEPA, extras: dict, actions: torch.Tensor) -> float:
    """Cosine of prediction to target with the true actions minus with the actions shuffled
    across the batch. ~0 means the predictor ignores actions (nothing drives equivariance)."""
    with torch.no_grad():
        # Its own generator: monitoring must not shift the training RNG stream.
        order = torch.randperm(len(actions), generator=torch.Generator().manual_seed(0))
        shuffled = actions[order.to(actions.device)]
        z_agg = model.aggregate_z(extras["z"], shuffled[:, 1:-1])
        prediction = model.predict(z_agg, shuffled[:, -1])
        cosine = torch.nn.functional.cosine_similarity(prediction, extras["target"], dim=-1)
    return float(extras["cosine"].mean() - cosine.mean())


# -- checkpoints


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save via a temporary file, fsync and rename: a crash leaves the old file intact."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load (weights_only: nothing is unpickled) and check format and version."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated/corrupt files
        raise ValueError(
            f"{path}: not a readable checkpoint ({type(err).__name__}: {err})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a seqjepa-gym checkpoint")
    if state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(
            f"{path}: checkpoint version {state.get('version')}, "
            f"this code reads {CHECKPOINT_VERSION}"
        )
    return state


def latest_checkpoint(out: Path) -> Path | None:
    pointer = out / "latest"
    return out / pointer.read_text().strip() if pointer.exists() else None


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def config_dict(cfg: TrainConfig) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    model = ModelConfig(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in data["model"].items()}
    )
    return TrainConfig(**{**data, "model": model})


# -- the loop


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def train(cfg: TrainConfig) -> Path:
    """Train (or resume) the run ``cfg.out``; returns the path of the last checkpoint."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    dataset = SequenceDataset(cfg.data, cfg.views, cfg.mode, cfg.action_key, cfg.seed)
    cfg = dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, action_dim=dataset.action_dim)
    )

    torch.manual_seed(cfg.seed)
    model = SeqJEPA(cfg.model).to(device)
    optimizer = make_optimizer(model, cfg)
    start = 0
    if cfg.resume:
        path = latest_checkpoint(out)
        if path is None:
            raise ValueError(f"--resume: no checkpoint in {out}")
        state = load_checkpoint(path)
        saved = config_from_dict(state["config"])
        same = {"resume": True, "steps": cfg.steps, "workers": cfg.workers, "stop_after": 0}
        if dataclasses.replace(saved, **same) != dataclasses.replace(cfg, **same):
            raise ValueError(f"{path}: saved for a different config; start a new --out")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"])
        start = int(state["step"])
        _truncate_metrics(out / "metrics.jsonl", start)
    _write_text_atomic(out / "config.json", json.dumps(config_dict(cfg), indent=1))
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    step_fn = torch.compile(model.loss) if cfg.compile else model.loss

    stop = min(start + cfg.stop_after, cfg.steps) if cfg.stop_after > 0 else cfg.steps
    sampler = StepBatchSampler(len(dataset), cfg.batch_size, cfg.seed, start, stop)
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=cfg.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=cfg.workers > 0,
        # Its own generator: creating the iterator must not draw from the global torch RNG,
        # or a resumed run's dropout masks would be shifted by one draw.
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    with (out / "metrics.jsonl").open("a") as metrics:
        return _loop(model, optimizer, loader, metrics, cfg, device, step_fn, (start, stop), out)


def _loop(model, optimizer, loader, metrics, cfg, device, step_fn, span, out) -> Path:
    """The optimisation loop; writes a metrics row per step and checkpoints."""
    start, stop = span
    progress = tqdm(total=cfg.steps, initial=start, desc="train", unit="step")
    last = latest_checkpoint(out)
    step, tick = start, time.perf_counter()
    model.train()
    for views, actions, _labels in loader:
        views = views.to(device, non_blocking=True)
        actions = actions.to(device, non_blocking=True)
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
            loss, extras = step_fn(views, actions)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        momentum = ema_momentum(step, cfg.steps, cfg.ema_base)
        model.update_target(momentum)
        step += 1
        row: dict[str, Any] = {"step": step, "loss": loss.detach().item(), "lr": lr}
        row["ema"] = momentum
        if step % cfg.log_every == 0 or step == cfg.steps:
            row.update(_monitor(model, extras, actions))
            elapsed = time.perf_counter() - tick
            row["sequences_per_s"] = cfg.log_every * cfg.batch_size / max(elapsed, 1e-9)
            tick = time.perf_counter()
        metrics.write(json.dumps(row) + "\n")
        metrics.flush()
        progress.set_postfix(loss=f"{row['loss']:.4f}")
        progress.update()
        if step % cfg.checkpoint_every == 0 or step == stop:
            last = _checkpoint(out, model, optimizer, cfg, step)
    progress.close()
    return last


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop the rows a crashed run logged after its last checkpoint: the resumed run redoes them."""
    if path.exists():
        rows = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= step]
        _write_text_atomic(path, "".join(row + "\n" for row in rows))


def _monitor(model: SeqJEPA, extras: dict, actions: torch.Tensor) -> dict[str, float]:
    """Collapse watch and the action-use gap, on the current batch (detached, cheap)."""
    z = extras["z"].reshape(-1, extras["z"].shape[-1]).float()
    rank = effective_rank(z)
    std = float(torch.nn.functional.normalize(z, dim=-1).std(dim=0).mean())
    gap = action_use_gap(model, extras, actions)
    if rank < 0.05 * min(z.shape) or std < 0.01:
        warnings.warn(
            f"representation collapse? effective rank {rank:.1f} of {min(z.shape)}, "
            f"per-dimension std {std:.4f}",
            stacklevel=2,
        )
    return {"effective_rank": rank, "z_std": std, "action_use_gap": gap}


def _checkpoint(out: Path, model, optimizer, cfg: TrainConfig, step: int) -> Path:
    path = out / f"checkpoint-{step:07d}.pt"
    save_checkpoint(
        path,
        {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "config": config_dict(cfg),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "rng": {"torch": torch.get_rng_state()},
        },
    )
    previous = latest_checkpoint(out)
    _write_text_atomic(out / "latest", path.name)  # only now does the new one count
    if previous is not None and previous != path:
        for old in sorted(out.glob("checkpoint-*.pt"))[:-2]:  # keep the last two
            old.unlink()
    return path
