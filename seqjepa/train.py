"""Training seq-JEPA: one config dataclass per run, named presets, an exactly resumable loop.

    seqjepa-gym train --preset tiny --data runs/rotate32 --steps 300 --out runs/train

Recipe (ANCHORS.md, without the released code's defects): AdamW with weight decay on >= 2-d
parameters only, linear warm-up then cosine decay computed per step (never reset per epoch),
EMA momentum on a cosine schedule to 1, cosine loss. Batch k is drawn from (seed, k) and every
micro-batch's random draws from (seed, k, micro-batch), so ``--resume`` continues exactly as an
uninterrupted run would, and 2 DDP ranks equal 1 process accumulating 2 micro-batches.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from seqjepa.augment import augment_views, check_augment
from seqjepa.data import SequenceDataset, StepBatchSampler, SyntheticSequences
from seqjepa.methods import build_model, check_method, method_model_config, method_views
from seqjepa.metrics import effective_rank
from seqjepa.model import ModelConfig, SeqJEPA, ema_momentum
from seqjepa.probes import OnlineProbes
from seqjepa.rollouts import write_text_atomic
from seqjepa.stream import LiveSequences

CHECKPOINT_FORMAT = "seqjepa-gym-checkpoint"
CHECKPOINT_VERSION = 1


@dataclass
class TrainConfig:
    """One training run."""

    data: str = ""
    """Recorded dataset (seqjepa-gym collect) or 3DIEBench folder to train on."""
    env: str = ""
    """Or: an env id to stream sequences from live (no disk; uniform random actions)."""
    env_kwargs: str = "{}"
    """JSON object of the live env's keyword arguments."""
    synthetic: int = 0
    """Or: train on random in-memory views of this side (throughput checks, e.g. on a GPU
    machine without data)."""
    out: str = "runs/train"
    """Run folder: checkpoints, metrics.jsonl, config.json."""
    preset: str = "tiny"
    """Named preset the other fields start from (tiny, paper); flags override it."""
    steps: int = 300
    """Optimizer steps."""
    resume: bool = False
    """Continue the run in ``out`` from its latest checkpoint."""
    method: str = "seqjepa"
    """What to train (seqjepa/methods.py): seqjepa, no-action (actions zeroed), m1 (M_tr = 1:
    2 views per sequence, overriding --views), vicreg (invariance-only two-view baseline)."""
    split: str = "train"
    """Split of recorded episodes to train on (train, val, test, or all); evaluation probes
    score on the instances this leaves out."""
    stop_after: int = 0
    """Stop this invocation after this many steps (0: run to ``steps``); the schedule still
    spans ``steps``, so a later --resume continues the same run (preemptible jobs)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Architecture (action_dim is taken from the data)."""
    views: int = 4
    """Views per training sequence, M_tr + 1 (the paper: M_tr = 3)."""
    mode: str = "subset"
    """How sequences are cut: window (consecutive), subset (random views, 3DIEBench style) or
    subset-colour (subset with the paper's rotation + colour actions: 6-d) or subset-pose (subset
    with each view's absolute orientation as its action: a diagnostic, not the paper's design)."""
    augment: str = "none"
    """Colour augmentation of every training view (seqjepa/augment.py): none, hue (each view's
    hues turned by its own random angle, so colour, which names no category in the procedural
    catalog, cannot carry the objective) or colour (hue and saturation, a fifth of the views
    grey). Refused with mode subset-colour, whose actions describe the colours."""
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
    head_lr_scale: float = 1.0
    """Learning rate of everything but the online encoder (action projector, [AGG] token,
    aggregator, predictor; VICReg's projector), as a multiple of the encoder's (the
    schedule's). The demo's recipe trains the encoder at 16 times its aggregator's rate
    (experiments.pipeline.PipelineConfig.head_lr_scale)."""
    warmup_steps: int = 20
    """Linear warm-up steps."""
    ema_base: float = 0.996
    """EMA momentum at step 0 (cosine schedule to 1)."""
    relative_warmup: int = 0
    """Steps over which the relative-target term's weight (model.relative_weight) ramps
    linearly from 0 to its value (0: full weight from the first step). Meant to let the model
    learn what the views share first; measured, a 500-step ramp at weight 100 made a seed
    worse, not better (docs/equivariance.md, session 10)."""
    grad_clip: float = 0.0
    """Clip the gradient norm to this (0: off)."""
    seed: int = 0
    """Seeds the model, the data order and every random draw."""
    log_every: int = 25
    """Steps between metric rows (loss is logged every step)."""
    checkpoint_every: int = 100
    """Steps between checkpoints (one is also written at the end)."""
    workers: int = 0
    """DataLoader worker processes (recorded data) or env worker processes (live)."""
    device: str = "auto"
    """cpu, cuda, or auto."""
    compile: bool = False
    """torch.compile the model (CUDA)."""
    accumulate: int = 1
    """Micro-batches per optimizer step (per rank): gradients are accumulated over them."""
    precision: str = "auto"
    """bf16 (autocast), fp32, or auto: bf16 on CUDA and on CPUs with native bf16 (AMX or
    AVX512-BF16: measured 1.8x faster on this project's CPUs), fp32 elsewhere."""


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


def check_numbers(cfg: TrainConfig) -> None:
    """ValueError naming the first setting out of its range (before any work is done)."""
    minimum = {"steps": 1, "batch_size": 1, "views": 2, "log_every": 1, "checkpoint_every": 1,
               "accumulate": 1, "warmup_steps": 0, "stop_after": 0, "workers": 0,
               "relative_warmup": 0}  # fmt: skip
    for name, least in minimum.items():
        value = getattr(cfg, name)
        if not isinstance(value, int) or value < least:
            raise ValueError(
                f"--{name.replace('_', '-')} must be an integer >= {least}, got {value!r}"
            )
    for name in ("lr", "min_lr", "weight_decay", "grad_clip", "head_lr_scale"):
        value = getattr(cfg, name)
        positive = name in ("lr", "head_lr_scale")
        if not (math.isfinite(value) and value >= 0) or (positive and value == 0):
            raise ValueError(
                f"--{name.replace('_', '-')} must be a finite number "
                f"{'> 0' if positive else '>= 0'}, got {value}"
            )
    if not 0 <= cfg.ema_base <= 1:
        raise ValueError(f"--ema-base must be in [0, 1], got {cfg.ema_base}")
    if cfg.relative_warmup and (cfg.method == "vicreg" or cfg.model.relative_weight == 0):
        raise ValueError(
            "--relative-warmup ramps the relative-target term of a seq-JEPA model: it needs "
            f"--model.relative-weight > 0 (got {cfg.model.relative_weight}, method {cfg.method!r})"
        )


def relative_scale(step: int, cfg: TrainConfig) -> float:
    """The relative-target term's share of its weight at ``step`` (TrainConfig.relative_warmup)."""
    return min(step / cfg.relative_warmup, 1.0) if cfg.relative_warmup else 1.0


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up from min_lr to lr, then cosine back to min_lr at the last step."""
    if step < cfg.warmup_steps:
        return cfg.min_lr + (cfg.lr - cfg.min_lr) * step / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1)
    return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * min(progress, 1)))


def make_optimizer(model: SeqJEPA, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over four groups: encoder or head (TrainConfig.head_lr_scale, kept in each group's
    ``lr_scale``), each with weight decay on >= 2-d parameters only."""
    groups = []
    for in_encoder, lr_scale in ((True, 1.0), (False, cfg.head_lr_scale)):
        decay, no_decay = [], []
        for name, p in model.named_parameters():
            if p.requires_grad and name.startswith("encoder.") == in_encoder:
                (decay if p.ndim >= 2 else no_decay).append(p)
        groups += [
            {"params": decay, "weight_decay": cfg.weight_decay, "lr_scale": lr_scale},
            {"params": no_decay, "weight_decay": 0, "lr_scale": lr_scale},
        ]
    return torch.optim.AdamW(groups, lr=cfg.min_lr)


def action_use_gap(model: SeqJEPA, extras: dict, actions: torch.Tensor) -> float:
    """Cosine of prediction to target with the true actions minus with the actions shuffled
    across the batch. ~0 means the predictor ignores actions (nothing drives equivariance)."""
    with torch.no_grad():
        # Its own generator: monitoring must not shift the training RNG stream.
        order = torch.randperm(len(actions), generator=torch.Generator().manual_seed(0))
        shuffled = actions[order.to(actions.device)]
        m = extras["z"].shape[1]
        z_agg = model.aggregate_z(extras["z"], shuffled[:, 1:m])
        prediction = model.predict_targets(z_agg, shuffled[:, m:])
        cosine = torch.nn.functional.cosine_similarity(
            prediction.float(), extras["target"].float(), dim=-1
        )
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
    """The newest checkpoint in ``out`` (None if there is none).

    Files only appear complete (save_checkpoint renames them into place), so the newest
    ``checkpoint-<step>.pt`` counts even when a kill came between its rename and the update
    of the ``latest`` pointer, which is kept for people and scripts that read it.
    """
    found = sorted(out.glob("checkpoint-*.pt"))  # zero-padded steps: name order is step order
    return found[-1] if found else None


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


def use_bf16(precision: str, device: torch.device) -> bool:
    """Whether to autocast to bf16 (see TrainConfig.precision)."""
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, got {precision!r}")
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return True
    cpu = torch.cpu
    return bool(cpu._is_amx_tile_supported() or cpu._is_avx512_bf16_supported())


def train(cfg: TrainConfig) -> Path | None:
    """Train (or resume) the run ``cfg.out``; returns the last checkpoint (None on ranks > 0).

    Under torchrun (WORLD_SIZE > 1) every rank takes its slice of each global batch and
    DistributedDataParallel averages the gradients (nccl on GPU, gloo on CPU); BatchNorm stays
    per rank. Rank 0 writes metrics and checkpoints.
    """
    if (bool(cfg.data) + bool(cfg.env) + bool(cfg.synthetic)) != 1:
        raise ValueError("give exactly one of --data (recorded), --env (live), --synthetic SIZE")
    check_numbers(cfg)
    check_augment(cfg.augment)
    if cfg.augment != "none" and cfg.mode == "subset-colour":
        raise ValueError(
            f"--augment {cfg.augment} would change the colours that mode subset-colour's "
            "actions describe (floor and light hue): use --augment none"
        )
    cfg = resolve_method(cfg)
    if cfg.model.targets != 1 and (not cfg.data or cfg.method == "vicreg"):
        raise ValueError(
            "--model.targets > 1 needs recorded data (--data, a subset mode) and a seq-JEPA "
            f"method, got targets {cfg.model.targets} with method {cfg.method!r}"
        )
    rank, world, device = _distributed(resolve_device(cfg.device))
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.synthetic:
        source = SyntheticSequences(cfg.views, cfg.synthetic, seed=cfg.seed)
    elif cfg.env:
        source = LiveSequences(
            cfg.env, cfg.views, json.loads(cfg.env_kwargs), seed=cfg.seed, workers=cfg.workers
        )
    else:
        split = None if cfg.split == "all" else cfg.split
        length = cfg.views + cfg.model.targets - 1
        source = SequenceDataset(
            cfg.data, length, cfg.mode, cfg.action_key, cfg.seed, split, cfg.model.targets
        )
    cfg = dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, action_dim=source.action_dim)
    )
    if cfg.batch_size % (world * cfg.accumulate):
        raise ValueError(
            f"batch size {cfg.batch_size} is not divisible by {world} ranks x "
            f"{cfg.accumulate} micro-batches"
        )
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.method, cfg.model).to(device)
    optimizer = make_optimizer(model, cfg)
    start, state = 0, {}
    if cfg.resume:
        start, state = _resume(out, cfg, model, optimizer, rank)
    elif latest_checkpoint(out) is not None:
        raise ValueError(f"{out} already holds a run: pass --resume, or choose another --out")
    if rank == 0:
        write_text_atomic(out / "config.json", json.dumps(config_dict(cfg), indent=1))
    # channels_last matches the inputs SeqJEPA.prepare makes (6-10% faster on CPU as well)
    model = model.to(memory_format=torch.channels_last)
    wrapped: torch.nn.Module = model
    if world > 1:
        wrapped = torch.nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            broadcast_buffers=False,  # BatchNorm statistics stay per rank
        )
    if cfg.compile:
        wrapped = torch.compile(wrapped)

    stop = min(start + cfg.stop_after, cfg.steps) if cfg.stop_after > 0 else cfg.steps
    if not isinstance(source, SequenceDataset):  # live or synthetic: batch k made on demand
        batches = (source.batch(k, cfg.batch_size, rank, world) for k in range(start, stop))
    else:
        batches = DataLoader(
            source,
            batch_sampler=StepBatchSampler(
                len(source), cfg.batch_size, cfg.seed, start, stop, rank, world
            ),
            num_workers=cfg.workers,
            pin_memory=device.type == "cuda",
            persistent_workers=cfg.workers > 0,
        )
    probes = OnlineProbes(model.d_model, model.z_dim, source.num_classes, source.action_dim)
    probes = probes.to(device)
    if cfg.resume and "probes" in state:
        probes.load_state_dict(state["probes"])
    spec = data_spec(cfg, source)
    run = _Run(cfg, model, wrapped, optimizer, device, rank, world, out, probes, spec)
    try:
        if rank != 0:
            run.loop(batches, start, stop, None)
            return None
        run.board = _tensorboard(out)
        with (out / "metrics.jsonl").open("a") as metrics:
            return run.loop(batches, start, stop, metrics)
    finally:
        if run.board is not None:
            run.board.close()
        if isinstance(source, LiveSequences):
            source.close()
        if world > 1:
            torch.distributed.destroy_process_group()


def _tensorboard(out: Path):
    """A SummaryWriter logging to ``out/tensorboard`` if tensorboard is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out / "tensorboard"))


def _distributed(device: torch.device) -> tuple[int, int, torch.device]:
    """(rank, world size, this rank's device); joins the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    torch.distributed.init_process_group(backend)
    return torch.distributed.get_rank(), world, device


def resolve_method(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` as the run trains and saves it: the method sets the views per sequence and the
    model options it implies (no-action: use_actions False)."""
    check_method(cfg.method)
    return dataclasses.replace(
        cfg,
        views=method_views(cfg.method, cfg.views),
        model=method_model_config(cfg.method, cfg.model),
    )


def same_run(saved: TrainConfig, cfg: TrainConfig) -> bool:
    """Whether ``cfg`` continues the run ``saved`` describes: equal but for the fields that
    only say how far and how fast to go, and where the run folder is now."""
    same = {"resume": True, "steps": cfg.steps, "workers": cfg.workers, "stop_after": 0,
            "out": cfg.out}  # fmt: skip
    return dataclasses.replace(saved, **same) == dataclasses.replace(cfg, **same)


def _resume(out: Path, cfg: TrainConfig, model: SeqJEPA, optimizer, rank: int) -> tuple[int, dict]:
    path = latest_checkpoint(out)
    if path is None:
        raise ValueError(f"--resume: no checkpoint in {out}")
    state = load_checkpoint(path)
    if not same_run(config_from_dict(state["config"]), cfg):
        raise ValueError(f"{path}: saved for a different config; start a new --out")
    model.load_state_dict(state["model"])
    if len(state["optimizer"]["param_groups"]) != len(optimizer.param_groups):
        raise ValueError(  # before head_lr_scale the optimizer had two groups
            f"{path}: saved by an older seqjepa-gym whose optimizer had "
            f"{len(state['optimizer']['param_groups'])} parameter groups; it evaluates, but "
            "cannot be resumed: start a new --out"
        )
    optimizer.load_state_dict(state["optimizer"])
    start = int(state["step"])
    if rank == 0:
        _truncate_metrics(out / "metrics.jsonl", start)
    return start, state


def _micro_seed(seed: int, step: int, micro: int) -> int:
    """Seed of one micro-batch's random draws (dropout): a function of (seed, step, index of
    the micro-batch in the global batch), so runs resume exactly and DDP ranks equal one
    process accumulating the same micro-batches."""
    return (seed * 1_000_003 + step * 4099 + micro) % (2**63 - 1)


@dataclass
class _Run:
    cfg: TrainConfig
    model: SeqJEPA
    wrapped: torch.nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    rank: int
    world: int
    out: Path
    probes: OnlineProbes
    data_spec: dict[str, Any]
    board: Any = None  # a TensorBoard SummaryWriter on rank 0 when tensorboard is installed

    def loop(self, batches: Iterable, start: int, stop: int, metrics) -> Path | None:
        """Optimise from ``start`` to ``stop``; rank 0 logs a row per step and checkpoints."""
        cfg, model = self.cfg, self.model
        bf16 = use_bf16(cfg.precision, self.device)
        progress = tqdm(
            total=cfg.steps, initial=start, desc="train", unit="step", disable=self.rank != 0
        )
        last = latest_checkpoint(self.out)
        step, tick = start, time.perf_counter()
        model.train()
        for views, actions, labels in batches:
            views = views.to(self.device, non_blocking=True)
            actions = actions.to(self.device, non_blocking=True)
            lr = lr_at(step, cfg)
            for group in self.optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            self.optimizer.zero_grad(set_to_none=True)
            loss, extras, micro = self._backward(step, views, actions, labels, bf16)
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            momentum = ema_momentum(step, cfg.steps, cfg.ema_base)
            model.update_target(momentum)
            step += 1
            if self.world > 1:
                torch.distributed.all_reduce(loss)
                loss /= self.world
            if metrics is None:
                continue
            probed = self.probes.step(
                extras["z_agg"], extras["z"], micro[1].to(self.device), micro[0]
            )
            row: dict[str, Any] = {"step": step, "loss": loss.item(), "lr": lr, "ema": momentum}
            row.update(probed)
            if step % cfg.log_every == 0 or step == cfg.steps:
                with torch.autocast(self.device.type, torch.bfloat16, enabled=bf16):
                    row.update(_monitor(model, extras, micro[0]))
                elapsed = time.perf_counter() - tick
                row["sequences_per_s"] = cfg.log_every * cfg.batch_size / max(elapsed, 1e-9)
                tick = time.perf_counter()
            metrics.write(json.dumps(row) + "\n")
            if self.board is not None:
                for key, value in row.items():
                    if key != "step":
                        self.board.add_scalar(key, value, step)
            metrics.flush()
            progress.set_postfix(loss=f"{row['loss']:.4f}")
            progress.update()
            if step % cfg.checkpoint_every == 0 or step == stop:
                last = _checkpoint(
                    self.out, model, self.optimizer, self.probes, cfg, step, self.data_spec
                )
        progress.close()
        return last

    def _backward(self, step: int, views, actions, labels, bf16: bool) -> tuple:
        """Forward and backward over this rank's micro-batches; returns the mean loss (detached),
        the last micro-batch's monitoring tensors, and its (actions, labels)."""
        parts = self.cfg.accumulate
        total = torch.zeros((), device=self.device)
        # only seq-JEPA takes the term's scale (relative_warmup is refused for the others)
        ramp = (
            {"relative_scale": relative_scale(step, self.cfg)} if self.cfg.relative_warmup else {}
        )
        for k, (v, a) in enumerate(zip(views.chunk(parts), actions.chunk(parts), strict=True)):
            torch.manual_seed(_micro_seed(self.cfg.seed, step, self.rank * parts + k))
            v = augment_views(v, self.cfg.augment)
            last = k == parts - 1
            sync = contextlib.nullcontext() if last or self.world == 1 else self.wrapped.no_sync()
            with sync:
                with torch.autocast(self.device.type, torch.bfloat16, enabled=bf16):
                    loss, extras = self.wrapped(v, a, **ramp)
                (loss / parts).backward()
            total += loss.detach() / parts
        return total, extras, (a, labels.chunk(parts)[-1])


def data_spec(cfg: TrainConfig, source: Any) -> dict[str, Any]:
    """What the model was trained on (kept in every checkpoint): the env id and kwargs, the view
    size and the action dimension, so that whoever loads the checkpoint (agents' representation
    wrapper) can refuse an env the model never saw instead of computing nonsense."""
    spec: dict[str, Any] = {"action_dim": int(source.action_dim)}
    if cfg.synthetic:
        return spec | {"source": "synthetic", "image_size": int(cfg.synthetic)}
    if cfg.env:
        view = source.vector.single_observation_space["view"]
        kwargs = json.loads(cfg.env_kwargs)
        live = {"source": "live", "env_id": cfg.env, "env_kwargs": kwargs}
        return spec | live | {"image_size": int(view.shape[0])}
    recording = getattr(source.source, "meta", None)
    if recording is None:  # a 3DIEBench folder
        return spec | {"source": "3diebench", "image_size": source.source.image_size}
    return spec | {
        "source": "recording",
        "env_id": recording["env_id"],
        "env_kwargs": recording["env_kwargs"],
        "categories": recording.get("categories"),
        "image_size": int(source.source.shard_arrays(0)["views"].shape[1]),
    }


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop the rows a crashed run logged after its last checkpoint: the resumed run redoes them."""
    if path.exists():
        rows = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= step]
        write_text_atomic(path, "".join(row + "\n" for row in rows))


def _monitor(model: SeqJEPA, extras: dict, actions: torch.Tensor) -> dict[str, float]:
    """Collapse watch and the action-use gap, on the current batch (detached, cheap)."""
    z = extras["z"].reshape(-1, extras["z"].shape[-1]).float()
    rank = effective_rank(z)
    std = float(torch.nn.functional.normalize(z, dim=-1).std(dim=0).mean())
    row = {"effective_rank": rank, "z_std": std}
    if "target" in extras:  # a predictive model (VICReg has no predictor)
        row["action_use_gap"] = action_use_gap(model, extras, actions)
    if "relative_cosine" in extras:
        row["relative_cosine"] = float(extras["relative_cosine"].mean())
    if rank < 0.05 * min(z.shape) or std < 0.01:
        warnings.warn(
            f"representation collapse? effective rank {rank:.1f} of {min(z.shape)}, "
            f"per-dimension std {std:.4f}",
            stacklevel=2,
        )
    return row


def _checkpoint(
    out: Path, model, optimizer, probes, cfg: TrainConfig, step: int, spec: dict[str, Any]
) -> Path:
    path = out / f"checkpoint-{step:07d}.pt"
    save_checkpoint(
        path,
        {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "config": config_dict(cfg),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "probes": probes.state_dict(),
            "step": step,
            "data": spec,
        },
    )
    write_text_atomic(out / "latest", path.name)
    for old in sorted(out.glob("checkpoint-*.pt"))[:-2]:  # keep the last two
        old.unlink()
    return path
