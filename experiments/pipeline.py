"""The stages `demo` and `report` share: collect a 3DIEBench-style dataset, train a method,
evaluate a checkpoint, with a stage clock for the report."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from experiments import collect
from seqjepa.augment import check_augment
from seqjepa.evaluate import EvalConfig, evaluate
from seqjepa.methods import method_views
from seqjepa.model import ACTION_ENCODINGS
from seqjepa.probes import MLPProbeConfig
from seqjepa.train import (
    config_from_dict,
    latest_checkpoint,
    preset_config,
    resolve_method,
    same_run,
    train,
)


@dataclass
class PipelineConfig:
    """Data, training and probe settings shared by every model of one demo or report."""

    seed: int = 0
    """Seeds the dataset, the trainings (a method and its twin share it: paired runs),
    evaluations and probes."""
    image_size: int = 32
    """Side of the views in pixels."""
    supersample: int = 2
    """Samples per pixel side when rendering (2: anti-aliased 32 px views of 64 px renders)."""
    episodes: int = 4000
    """Episodes recorded: one object each, drawn from every split (80/10/10 by instance)."""
    views: int = 8
    """Views per episode: 3DIEBench-style independent random orientations of one object."""
    workers: int = 2
    """Collection worker processes."""
    preset: str = "tiny"
    """Training preset the recipe below overrides (`paper`: ResNet-18, for a GPU)."""
    steps: int = 1000
    """Training steps of each model."""
    batch_size: int = 128
    """Sequences per training step."""
    lr: float = 4e-3
    """Peak learning rate of the encoder (the `tiny` preset's recipe otherwise). Seed 0,
    single view / z_AGG top-1 at M_val = 5 / relative R^2 (docs/equivariance.md, session 15):
    1e-3 for every part 0.750 / 0.891 / 0.197; 2e-3 for every part 0.790 / 0.872 / 0.221;
    with predictor width 1024, the encoder at 2e-3 and the rest at 1e-3 0.804 / 0.926 /
    0.232; the encoder at 4e-3 and the rest at 1e-3 0.819 / 0.922 / 0.236, the rest at
    2.5e-4 (``head_lr_scale``) 0.838 / 0.946 / 0.227."""
    head_lr_scale: float = 0.0625
    """Learning rate of the action projector, [AGG] token, aggregator and predictor as a
    multiple of ``lr`` (TrainConfig.head_lr_scale): 2.5e-4, where the ResNet learns at 4e-3."""
    predictor_hidden: int = 1024
    """Hidden width of the predictor MLP (the paper's; the `tiny` preset's is 512). With the
    encoder at 2e-3 and the rest at 1e-3: z_AGG top-1 0.743 / 0.899 / 0.926 / 0.943 at
    M_val = 1 / 3 / 5 / 8 against 0.716 / 0.867 / 0.930 / 0.922 with width 512, relative
    R^2 0.232 against 0.222 (seed 0)."""
    ema_base: float = 0.97
    """EMA momentum at step 0: short runs need a target that keeps up (0.996 lags 250 steps;
    from 0.99 to 0.97, single-view top-1 rose from 0.664 to 0.702 on seed 0,
    docs/equivariance.md)."""
    layers: int = 1
    """Aggregator layers, overriding the preset's (tiny: 2; paper: 3). In 1000 steps one layer
    without dropout aggregates better: z_AGG top-1 at M_val = 5 0.888 and 0.903 (seeds 0, 1)
    against 0.856 with two layers (seed 0; docs/equivariance.md)."""
    dropout: float = 0.0
    """Aggregator dropout, overriding the preset's (0.1, the paper's)."""
    prefixes: bool = True
    """Also train every shorter context to predict the view after it (ModelConfig.prefixes;
    `--pipeline.no-prefixes`: the paper's loss). On the demo's recipe it lifted single-view
    top-1 from 0.702 to 0.737 (seed 0) and from 0.726 to 0.753 (seed 1), and relative-rotation
    R^2 from 0.174 to 0.198 (seed 0), for 1.13x the training time (docs/equivariance.md)."""
    target_norm: str = "none"
    """The training target's normalisation (seqjepa.model.ModelConfig.target_norm)."""
    targets: int = 3
    """Unseen views each training sequence predicts from its context (ModelConfig.targets;
    the paper: 1), capped at the episode's views beyond the context (M_tr = 5 of 8: 3); 1 for
    VICReg and window mode. Predicting all 5 remaining views of the demo's 8 took 1.20x the
    time per step (538 s vs 449 s for 1000 steps, two trainings at a time, one thread each) and
    lifted z_AGG top-1 at M_val = 5 from 0.585 to 0.710 (docs/equivariance.md). With prefix
    predictions fewer do as well (seed 0; single view, z_AGG M_val = 5, relative R^2): 5 targets
    0.737 / 0.890 / 0.198, 4 0.745 / 0.897 / 0.194, 3 0.743 / 0.894 / 0.196 (M_val = 8 fell
    from 0.927 to 0.907). 3 keep the fresh-clone demo within 15 minutes: with 4 it took 905 s."""
    relative_weight: float = 0.3
    """Weight of the relative-target term (ModelConfig.relative_weight; the paper: 0) for the
    models that predict two or more targets; the others (VICReg, window mode) train without
    it, and so does the no-action twin (seqjepa.model.ModelConfig.relative_weight). With
    this recipe and actions as matrices, 0.3 lifted seed 0's relative R^2 from 0.227 to 0.273
    and z_AGG top-1 at M_val = 5 from 0.946 to 0.957; 1 and 10 cost top-1 (0.925, 0.845 at
    M_val = 5) for less equivariance (0.238, 0.169; docs/equivariance.md, session 16)."""
    relative_warmup: int = 0
    """Steps over which that term's weight ramps up from 0 (TrainConfig.relative_warmup)."""
    action_encoding: str = "raw"
    """How the models read an action (ModelConfig.action_encoding): raw (the quaternion, the
    paper) or matrix (its rotation matrix, from which the relative-target term learned better
    on the earlier recipe, session 10). On this recipe, with the term, quaternions matched the
    matrices' relative R^2 (seed-0 screens 0.274 against 0.273) with twice their path R^2
    (0.355 against 0.150 at M = 3; docs/equivariance.md, session 16), so the recipe keeps the
    paper's quaternions (session 17's report)."""
    view_dropout: float = 0.0
    """Probability that each observed training view of seq-JEPA is blanked
    (ModelConfig.view_dropout), so that predicting past it takes the actions composed: a lever
    for path integration that did not work (seed-0 screens, docs/equivariance.md, session 17)."""
    augment: str = "colour"
    """Colour augmentation of every training view (TrainConfig.augment: none, hue, colour).
    The procedural catalog's colours name no category, and without augmentation seq-JEPA
    learns them: on the demo's recipe (seed 0), colour took single-view top-1 from 0.554 to
    0.664, z_AGG top-1 at M_val = 5 from 0.710 to 0.849, relative R^2 from 0.099 to 0.167
    (docs/equivariance.md)."""
    probe_steps: int = 500
    """Steps of each regression probe."""
    side_by_side: int = 3
    """Models trained or evaluated at once, each in its own process with an equal share of
    the CPU threads (at least one); 1 runs them one after another in this process. On 2 cores
    two 300-step demo-recipe trainings took 121 s side by side (1 thread each) and 161 s one
    after the other (2 threads), measured in one run: 1.33x, as the `tiny` model is too small
    to keep two threads busy. The thread count changes the order of floating-point
    sums, so figures can differ in the last bits from a 1-process run."""

    recipe: str = "current"
    """Named defaults the other --pipeline flags override, whatever their order on the command
    line: current (the values above) or earlier (sessions 2-10's: no colour augmentation, EMA
    from 0.99, two aggregator layers with dropout 0.1, 5 targets, no prefix predictions, one
    learning rate of 1e-3 for every part, the preset's predictor width of 512, the paper's loss
    and quaternion actions; docs/agents.md's figures and `make report-equivariance` use it).
    In Python, build one with ``recipe_config(name, **overrides)``."""

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(
                f"--pipeline.recipe must be one of {sorted(RECIPES)}, got {self.recipe!r}"
            )
        if self.targets < 1:  # refused before any collection or training
            raise ValueError(f"--pipeline.targets must be >= 1, got {self.targets}")
        if not self.head_lr_scale > 0:
            raise ValueError(f"--pipeline.head-lr-scale must be > 0, got {self.head_lr_scale}")
        if not self.relative_weight >= 0:
            raise ValueError(f"--pipeline.relative-weight must be >= 0, got {self.relative_weight}")
        if not 0 <= self.relative_warmup <= self.steps:
            raise ValueError(
                f"--pipeline.relative-warmup must be in [0, steps={self.steps}], "
                f"got {self.relative_warmup}"
            )
        if not (isinstance(self.layers, int) and self.layers >= 1):
            raise ValueError(f"--pipeline.layers must be an integer >= 1, got {self.layers!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"--pipeline.dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.view_dropout < 1:
            raise ValueError(f"--pipeline.view-dropout must be in [0, 1), got {self.view_dropout}")
        check_augment(self.augment)
        if self.action_encoding not in ACTION_ENCODINGS:
            raise ValueError(
                f"--pipeline.action-encoding must be one of {ACTION_ENCODINGS}, "
                f"got {self.action_encoding!r}"
            )

    def describe(self) -> str:
        """One line for reports: the data and recipe every model of the run shared."""
        options = f", actions as {self.action_encoding}" if self.action_encoding != "raw" else ""
        if self.relative_weight:
            options += f", relative-target weight {self.relative_weight:g}"
        if self.relative_weight and self.relative_warmup:
            options += f" (ramped up over {self.relative_warmup} steps)"
        if self.prefixes:
            options += ", every shorter context predicting its next view"
        if self.view_dropout:
            options += f", observed views blanked with probability {self.view_dropout:g}"
        if self.augment != "none":
            options += f", {self.augment} augmentation"
        return (
            f"{self.episodes} episodes of {self.views} random views at {self.image_size} px "
            f"(supersampled {self.supersample}x); `{self.preset}` preset, {self.steps} steps "
            f"of batch {self.batch_size}, lr {self.lr:g} (x {self.head_lr_scale:g} beyond the "
            f"encoder), EMA from {self.ema_base}, target_norm={self.target_norm}, aggregator "
            f"{self.layers} layer(s) with dropout {self.dropout:g}, predictor width "
            f"{self.predictor_hidden}, up to {self.targets} targets per sequence"
            f"{options}; probes: {self.probe_steps} MLP steps."
        )


#: Values each named recipe sets over PipelineConfig's defaults. "earlier" is the recipe of
#: sessions 2-10 (no colour augmentation, EMA from 0.99, the preset's two-layer aggregator with
#: dropout 0.1 and predictor width, 5 targets, no prefix predictions, one learning rate of
#: 1e-3, the paper's loss, quaternion actions): the explore benchmarks keep it, as
#: docs/agents.md's figures were measured with it, and so does `make report-equivariance`.
RECIPES: dict[str, dict[str, Any]] = {
    "current": {},
    "earlier": {
        "augment": "none",
        "ema_base": 0.99,
        "layers": 2,
        "dropout": 0.1,
        "prefixes": False,
        "targets": 5,
        "lr": 1e-3,
        "head_lr_scale": 1.0,
        "predictor_hidden": 512,
        "relative_weight": 0.0,
        "action_encoding": "raw",
        "view_dropout": 0.0,
    },
}


def recipe_config(name: str, **overrides: Any) -> PipelineConfig:
    """The PipelineConfig of recipe ``name`` with ``overrides`` (field names) on top."""
    if name not in RECIPES:
        raise ValueError(f"unknown pipeline recipe {name!r}; known: {sorted(RECIPES)}")
    return PipelineConfig(**{**RECIPES[name], **overrides, "recipe": name})


@dataclass(frozen=True)
class Job:
    """A call to run in a worker process: a module-level function and picklable arguments."""

    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self) -> Any:
        return self.fn(*self.args, **self.kwargs)


def _run_in_worker(job: Job, threads: int, position: int) -> Any:
    torch.set_num_threads(threads)
    os.environ["TQDM_POSITION"] = str(position)  # a progress line per worker (tqdm >= 4.66)
    return job()


def run_side_by_side(
    jobs: dict[str, Job], processes: int, on_done: Callable[[str], None] = lambda name: None
) -> dict[str, Any]:
    """Run ``jobs`` in up to ``processes`` spawned processes that share this process's torch
    threads (1: here, in order); results by name. The first failure is raised once the jobs
    already running have ended (each is resumable); jobs not yet started are cancelled."""
    if processes <= 1 or len(jobs) <= 1:
        results = {}
        for name, job in jobs.items():
            results[name] = job()
            on_done(name)
        return results
    workers = min(processes, len(jobs))
    threads = max(1, torch.get_num_threads() // workers)
    # spawn, not fork: forking a process whose torch thread pools have started can deadlock
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = {
            name: pool.submit(_run_in_worker, job, threads, 1 + k % workers)
            for k, (name, job) in enumerate(jobs.items())
        }
        try:
            results = {}
            for name, future in futures.items():
                results[name] = future.result()
                on_done(name)
            return results
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise


class Stages:
    """A tqdm bar over named stages and the seconds each took."""

    def __init__(self, total: int, desc: str) -> None:
        self.bar = tqdm(total=total, desc=desc, unit="stage", position=0)
        self.seconds: dict[str, float] = {}

    def run(self, name: str, fn, *args, **kwargs):
        self.bar.set_postfix_str(name)
        tick = time.perf_counter()
        result = fn(*args, **kwargs)
        self.seconds[name] = round(time.perf_counter() - tick, 1)
        self.bar.update()
        return result

    def run_side_by_side(self, name: str, jobs: dict[str, Job], processes: int) -> dict[str, Any]:
        """``run_side_by_side`` as one stage per job on the bar, timed together as ``name``."""
        self.bar.set_postfix_str(name)
        tick = time.perf_counter()
        results = run_side_by_side(jobs, processes, on_done=lambda _: self.bar.update())
        self.seconds[name] = round(time.perf_counter() - tick, 1)
        return results

    def close(self) -> None:
        self.bar.close()

    def summary(self) -> str:
        total = sum(self.seconds.values())
        parts = ", ".join(f"{name} {s:.0f}" for name, s in self.seconds.items())
        return f"Seconds per stage: {parts}; total {total / 60:.1f} minutes."


def collect_views(
    cfg: PipelineConfig,
    out: Path,
    policy: str = "uniform-views",
    env_overrides: dict[str, Any] | None = None,
    policy_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Views of objects from every split (resumed if already there): by default random
    3DIEBench-style views; ``policy`` and ``env_overrides`` choose others (the exploration
    benchmark's collection policies)."""
    env_kwargs = {
        "image_size": cfg.image_size,
        "action_mode": "absolute",
        "initial_orientation": "3diebench",
        "split": None,
        "supersample": cfg.supersample,
    } | (env_overrides or {})
    return collect.run(
        collect.CollectConfig(
            env="SeqJEPA-Rotate-v0",
            out=str(out),
            env_kwargs=json.dumps(env_kwargs),
            policy=policy,
            policy_kwargs=json.dumps(policy_kwargs or {}),
            episodes=cfg.episodes,
            episode_length=cfg.views - 1,
            shard_episodes=250,
            workers=cfg.workers,
            seed=cfg.seed,
        )
    )


def train_method(
    cfg: PipelineConfig, data: Path, out: Path, method: str, seed: int, **overrides: Any
) -> Path:
    """Train ``method`` with the pipeline's preset and recipe; returns the checkpoint (an
    already finished run in ``out`` is reused, an interrupted one resumed)."""
    base = preset_config(cfg.preset)
    context = method_views(method, overrides.get("views", base.views)) - 1
    single = method == "vicreg" or overrides.get("mode", base.mode) == "window"
    targets = 1 if single else max(1, min(cfg.targets, cfg.views - context))
    weighted = targets >= 2 and cfg.relative_weight > 0
    train_cfg = dataclasses.replace(
        base,
        data=str(data),
        out=str(out),
        method=method,
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        head_lr_scale=cfg.head_lr_scale,
        ema_base=cfg.ema_base,
        augment=cfg.augment,
        relative_warmup=cfg.relative_warmup if weighted else 0,
        seed=seed,
        checkpoint_every=max(cfg.steps // 4, 1),
        model=dataclasses.replace(
            base.model,
            target_norm=cfg.target_norm,
            prefixes=cfg.prefixes,
            layers=cfg.layers,
            dropout=cfg.dropout,
            predictor_hidden=cfg.predictor_hidden,
            action_encoding=cfg.action_encoding,
            targets=targets,
            relative_weight=cfg.relative_weight if weighted else 0.0,
            view_dropout=cfg.view_dropout,
        ),
        **overrides,
    )
    finished = out / f"checkpoint-{cfg.steps:07d}.pt"
    if finished.exists():
        saved = config_from_dict(json.loads((out / "config.json").read_text()))
        if not same_run(saved, resolve_method(train_cfg)):
            raise ValueError(
                f"{out} holds a finished training with other settings than this run's; "
                "continue it with the settings it was made with, or start a new folder"
            )
        return finished
    resume = latest_checkpoint(out) is not None  # an interrupted run continues
    checkpoint = train(dataclasses.replace(train_cfg, resume=resume))
    assert checkpoint is not None  # a single process is rank 0
    return checkpoint


def evaluate_checkpoint(
    cfg: PipelineConfig, checkpoint: Path, data: Path, out: Path, random_encoder: bool = False
) -> dict[str, Any]:
    """The evaluation suite on ``data`` (metrics.json in ``out``)."""
    return evaluate(
        EvalConfig(
            checkpoint=str(checkpoint),
            data=str(data),
            out=str(out),
            random_encoder=random_encoder,
            m_vals=tuple(range(1, cfg.views + 1)),
            path_m_vals=tuple(range(2, cfg.views + 1)),
            probe=MLPProbeConfig(
                steps=cfg.probe_steps, eval_every=min(100, cfg.probe_steps), seed=cfg.seed
            ),
            seed=cfg.seed,
        )
    )
