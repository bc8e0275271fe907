"""`seqjepa-gym eval`: a frozen model, probes on held-out instances, metrics.json.

    seqjepa-gym eval --checkpoint runs/train --data runs/dataset --out runs/eval

Protocol (ANCHORS.md, with its known weaknesses fixed; docs/evaluation.md is the long version):

- The model is frozen in eval mode (BatchNorm statistics frozen). ``--random-encoder`` evaluates
  the same architecture untrained, its BatchNorm statistics first recalibrated on train-split
  sequences (CONVENTIONS.md).
- Episodes of the recording's train split are the probes' training data; a fixed fraction of
  their instances is held out to choose probe hyper-parameters (weight decay; the
  early-stopping step); the probes are scored once on the val and test splits, whose
  instances pretraining never saw.
- Each episode's first L = max(m_vals) observations, in recorded order, are one sequence; the
  model sees them with the transitions it was trained on (relative rotations from the
  orientations for ``mode=subset`` runs, the recorded actions for ``mode=window`` runs).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from seqjepa.data import subset_actions
from seqjepa.methods import build_model
from seqjepa.metrics import effective_rank, geodesic_deg, r2_score
from seqjepa.model import BLANK_LEVEL, normalise_target
from seqjepa.probes import MLPProbeConfig, Samples, fit_linear_classifier, fit_mlp_regressor
from seqjepa.rollouts import SPLITS, DatasetError, RolloutDataset, write_json_atomic
from seqjepa.train import (
    TrainConfig,
    config_from_dict,
    latest_checkpoint,
    load_checkpoint,
    resolve_device,
    use_bf16,
)

SCHEMA = "seqjepa-gym-metrics"
SCHEMA_VERSION = 1
#: The three path-integration conditions (ANCHORS.md).
CONDITIONS = ("views_actions", "views_only", "actions_only")
#: The optional control condition (EvalConfig.foreign_views): true actions, another episode's views.
FOREIGN = "foreign_views"
#: Scene latents (CONVENTIONS.md ``latents`` columns 3..6) probed from z where recorded.
LATENT_NAMES = ("floor_hue", "light_theta", "light_phi", "light_hue")
#: The circular ones and their periods (hues wrap at 1, the light's azimuth at 2 pi).
CIRCULAR_LATENTS = {"floor_hue": 1.0, "light_phi": 2 * np.pi, "light_hue": 1.0}
#: The pose error's name: mean geodesic degrees, or mean distance in position units.
ERROR_KEY = {"rotation": "geodesic_deg", "displacement": "error"}


@dataclass
class EvalConfig:
    """One evaluation of a frozen model on a recorded dataset."""

    checkpoint: str = ""
    """Checkpoint file, or a training run folder (its latest checkpoint)."""
    data: str = ""
    """Recorded dataset (seqjepa-gym collect) with train and val/test-split episodes."""
    out: str = "runs/eval"
    """Folder for metrics.json."""
    random_encoder: bool = False
    """Evaluate the checkpoint's architecture untrained (BatchNorm recalibrated) instead."""
    m_vals: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
    """Numbers of observed views for the z_AGG class probe."""
    path_m_vals: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8)
    """Numbers of observed views for path integration (>= 2: one view has no path)."""
    pairs_per_episode: int = 56
    """Ordered view pairs per episode for the relative-pose probe (8 views have 56)."""
    heldout: float = 0.2
    """Fraction of train-split instances held out to choose probe hyper-parameters."""
    probe: MLPProbeConfig = field(default_factory=MLPProbeConfig)
    """The regression probe (relative, individual and path-integrated pose; latents)."""
    batch_size: int = 64
    """Episodes per forward pass."""
    recalibration_batches: int = 16
    """Train-split batches that recalibrate BatchNorm for --random-encoder."""
    device: str = "auto"
    """cpu, cuda, or auto."""
    precision: str = "auto"
    """bf16 (autocast), fp32, or auto (bf16 where it is native, as in training) for the encoder
    and the MLP probes; the aggregator, the linear probes and the action-use gap stay fp32."""
    seed: int = 0
    """Random encoder weights, held-out instances, pair sampling and probes."""
    foreign_views: bool = False
    """Also score path integration with each episode's true actions beside the next episode's
    views (foreign_views). If that matches views + actions, the model's own views add no path
    information; if both fall below actions only, views interfere with the actions
    (docs/equivariance.md, session 16). One more MLP probe per model."""


# -- the model


def load_model(cfg: EvalConfig) -> tuple[torch.nn.Module, TrainConfig, dict[str, Any]]:
    """The frozen model (or its untrained twin), its training config, and what it is."""
    path = Path(cfg.checkpoint)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise ValueError(f"{path}: no checkpoint in this run folder")
        path = found
    state = load_checkpoint(path)
    train_cfg = config_from_dict(state["config"])
    torch.manual_seed(cfg.seed)
    # The suite predicts one view at a time (BatchNorm recalibration runs the loss on M_tr + 1
    # views); the number of training targets, and the loss terms over them, change no weight.
    model = build_model(
        train_cfg.method, dataclasses.replace(train_cfg.model, targets=1, relative_weight=0.0)
    )
    if not cfg.random_encoder:
        model.load_state_dict(state["model"])
    info = {
        "checkpoint": str(path),
        "method": "random-encoder" if cfg.random_encoder else train_cfg.method,
        "trained_method": train_cfg.method,
        "step": 0 if cfg.random_encoder else int(state["step"]),
        "views_per_sequence": train_cfg.views,
        "targets": train_cfg.model.targets,
        "mode": train_cfg.mode,
        "action_key": train_cfg.action_key,
    }
    return model, train_cfg, info


@torch.no_grad()
def recalibrate_batchnorm(model: torch.nn.Module, sequences, batches: int) -> None:
    """Re-estimate every BatchNorm's running statistics (a cumulative average over
    ``batches`` (views, actions) batches) without touching any weight."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    model.train()
    for _, (views, actions) in zip(range(batches), sequences, strict=False):
        model.loss(views, actions)
    model.eval()


# -- the data


@dataclass
class Episodes:
    """The first L observations of every usable episode, as arrays (E, L, ...)."""

    views: np.ndarray
    transitions: np.ndarray  # (E, L, A): [:, t] leads to view t; [:, 0] unused
    poses: np.ndarray  # (E, L, 4) orientations, or (E, L, 2) fixation positions
    pose_kind: str  # "rotation" or "displacement"
    latents: np.ndarray | None  # (E, L, 7) or None
    labels: np.ndarray
    splits: np.ndarray
    instances: np.ndarray


def load_episodes(data: RolloutDataset, length: int, train_cfg: TrainConfig) -> Episodes:
    """Every episode with >= ``length`` observations, cut to its first ``length``."""
    parts: dict[str, list] = {k: [] for k in Episodes.__dataclass_fields__}
    first_kind: tuple[str, bool] = ("", False)
    for k in range(len(data._shards)):
        arrays = data.shard_arrays(k)
        offsets = arrays["offsets"]
        # glimpse envs record the (still) object's orientation too: the fixation is their pose
        if "positions" in arrays:
            pose_key, kind = "positions", "displacement"
        elif "orientations" in arrays:
            pose_key, kind = "orientations", "rotation"
        else:
            raise DatasetError(f"{data.root}: no orientations or positions to probe poses with")
        if kind == "displacement" and train_cfg.mode.startswith("subset"):
            raise DatasetError(
                f"{data.root}: glimpse data, but the model was trained with mode=subset "
                "(relative rotations of a still object); train it with --mode window"
            )
        shard_kind = (kind, "latents" in arrays)
        if k and shard_kind != first_kind:
            raise DatasetError(f"{data.root}: shard {k} records other fields than shard 0")
        first_kind = shard_kind
        for e, (start, stop) in enumerate(itertools.pairwise(offsets)):
            if stop - start < length:
                continue
            window = slice(int(start), int(start) + length)
            poses = np.asarray(arrays[pose_key][window], np.float64)
            if train_cfg.mode.startswith("subset"):
                latents = arrays["latents"][window] if "latents" in arrays else None
                transitions = subset_actions(poses, latents, train_cfg.mode)
            else:
                transitions = np.asarray(arrays[train_cfg.action_key][window], np.float32)
            parts["views"].append(np.asarray(arrays["views"][window]))
            parts["transitions"].append(transitions)
            parts["poses"].append(poses)
            if "latents" in arrays:
                parts["latents"].append(np.asarray(arrays["latents"][window]))
            parts["labels"].append(int(arrays["labels"][e]))
            parts["splits"].append(int(arrays["splits"][e]))
            parts["instances"].append(int(arrays["instances"][e]))
    if not parts["views"]:
        raise DatasetError(f"{data.root}: no episode holds {length} observations")
    return Episodes(
        views=np.stack(parts["views"]),
        transitions=np.stack(parts["transitions"]).astype(np.float32),
        poses=np.stack(parts["poses"]),
        pose_kind=kind,
        latents=np.stack(parts["latents"]) if parts["latents"] else None,
        labels=np.array(parts["labels"]),
        splits=np.array(parts["splits"]),
        instances=np.array(parts["instances"]),
    )


def probe_roles(episodes: Episodes, heldout: float, seed: int) -> dict[str, np.ndarray]:
    """Episode indices of the probe's fit, held-out (train-split instances held out whole)
    and test (val and test splits) sets."""
    train = np.flatnonzero(episodes.splits == SPLITS.index("train"))
    test = np.flatnonzero(episodes.splits != SPLITS.index("train"))
    if len(test) == 0 or len(train) == 0:
        raise DatasetError(
            "evaluation needs train-split and val/test-split episodes: collect with "
            "--env-kwargs '{\"split\": null, ...}' (objects from every split)"
        )
    keys = episodes.labels[train] * 1_000_003 + episodes.instances[train]
    unique = np.unique(keys)
    if not 0 < heldout < 1 or len(unique) < 2:
        raise DatasetError(
            f"probes need a held-out fraction in (0, 1) (got {heldout}) of >= 2 train-split "
            f"instances (the dataset has {len(unique)})"
        )
    rng = np.random.default_rng([seed, 0xE7A1])
    held_keys = rng.choice(unique, max(1, round(heldout * len(unique))), replace=False)
    is_held = np.isin(keys, held_keys)
    return {"fit": train[~is_held], "held": train[is_held], "test": test}


# -- features


@dataclass
class Features:
    z: torch.Tensor  # (E, L, D)
    agg: dict[str, dict[int, torch.Tensor]]  # condition -> M -> (E, d_model)


@torch.no_grad()
def extract_features(
    model: torch.nn.Module, episodes: Episodes, cfg: EvalConfig, device: torch.device
) -> Features:
    """Per-view z, and z_AGG in the three conditions, for every episode.

    Only the encoder runs under bf16 autocast (``EvalConfig.precision``): the aggregator stays
    fp32, as in bf16 its z_AGG lost 0.015 of the actions-only path-integration R^2 (0.377 ->
    0.362 on the demo's model; every other figure moved by < 0.002 or within probe noise)."""
    model.eval()
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=use_bf16(cfg.precision, device))
    total = len(episodes.views)
    blank_view = torch.full((1, *episodes.views.shape[2:]), BLANK_LEVEL, dtype=torch.uint8)
    with autocast:
        blank = model.encode(blank_view.to(device))[0].float()
    agg_ms = sorted(set(cfg.m_vals) | set(cfg.path_m_vals))
    zs, agg = [], {c: {m: [] for m in agg_ms} for c in CONDITIONS}
    for start in tqdm(range(0, total, cfg.batch_size), desc="features", unit="batch", leave=False):
        views = torch.from_numpy(episodes.views[start : start + cfg.batch_size]).to(device)
        transitions = torch.from_numpy(episodes.transitions[start : start + cfg.batch_size])
        transitions = transitions.to(device)[:, 1:]
        with autocast:
            z = model.encode(views).float()
        zs.append(z.cpu())
        for m in agg_ms:
            moves = transitions[:, : m - 1]
            conditions = {"views_actions": (z[:, :m], False)}
            if m in cfg.path_m_vals:
                conditions["views_only"] = (z[:, :m], True)
                conditions["actions_only"] = (blank.expand(len(z), m, -1), False)
            for name, (seen, blind) in conditions.items():
                agg[name][m].append(model.aggregate_z(seen, moves, blind=blind).cpu())
    features = Features(
        z=torch.cat(zs),
        agg={c: {m: torch.cat(v) for m, v in d.items() if v} for c, d in agg.items()},
    )
    if cfg.foreign_views and cfg.path_m_vals:
        features.agg[FOREIGN] = foreign_aggregates(model, features.z, episodes, cfg, device)
    return features


@torch.no_grad()
def foreign_aggregates(
    model: torch.nn.Module,
    z: torch.Tensor,
    episodes: Episodes,
    cfg: EvalConfig,
    device: torch.device,
) -> dict[int, torch.Tensor]:
    """z_AGG (E, d_model) per M of path_m_vals from episode e's transitions and episode e+1's
    views (the last episode takes the first's): the set is rolled as a whole, so no episode
    keeps its own views, whatever the batching."""
    total = len(z)
    other = torch.roll(torch.arange(total), -1)
    agg: dict[int, list[torch.Tensor]] = {m: [] for m in cfg.path_m_vals}
    for start in range(0, total, cfg.batch_size):
        stop = min(start + cfg.batch_size, total)
        transitions = torch.from_numpy(episodes.transitions[start:stop]).to(device)[:, 1:]
        seen = z[other[start:stop]].to(device)
        for m in cfg.path_m_vals:
            agg[m].append(model.aggregate_z(seen[:, :m], transitions[:, : m - 1]).cpu())
    return {m: torch.cat(v) for m, v in agg.items()}


@torch.no_grad()
def action_use(
    model: torch.nn.Module,
    episodes: Episodes,
    test: np.ndarray,
    context: int,
    cfg: EvalConfig,
    device: torch.device,
) -> dict[str, float] | None:
    """The action-use gap on test sequences: mean cosine of the prediction of view ``context``
    (from the views before it) to its target, with the true transitions minus with every
    sequence's transitions taken from the next test sequence (a roll: none keeps its own).
    Targets are normalised as in training, with statistics of the whole test set."""
    if not hasattr(model, "predict") or context >= episodes.views.shape[1] or len(test) < 2:
        return None
    transitions = episodes.transitions[test]
    rolled = np.roll(transitions, 1, axis=0)
    predictions: dict[str, list] = {"true": [], "shuffled": []}
    targets = []
    for start in range(0, len(test), cfg.batch_size):
        batch = test[start : start + cfg.batch_size]
        views = torch.from_numpy(episodes.views[batch, : context + 1]).to(device)
        z = model.encode(views[:, :context])
        targets.append(model.encode(views[:, context], target=True).float().cpu())
        for name, source in (("true", transitions), ("shuffled", rolled)):
            moves = torch.from_numpy(source[start : start + cfg.batch_size, 1:]).to(device)
            z_agg = model.aggregate_z(z, moves[:, : context - 1])
            prediction = model.predict(z_agg, moves[:, context - 1]).float().cpu()
            predictions[name].append(prediction)
    target = normalise_target(torch.cat(targets), model.config)
    cosine = {
        name: float(torch.cosine_similarity(torch.cat(p), target, dim=-1).mean())
        for name, p in predictions.items()
    }
    return {
        "cosine": cosine["true"],
        "cosine_shuffled_actions": cosine["shuffled"],
        "gap": cosine["true"] - cosine["shuffled"],
    }


# -- poses


def relative_pose(episodes: Episodes, e: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """The pose change from view i to view j of episode e: rel_quat R_i^-1 R_j (w >= 0), or
    the fixation displacement p_j - p_i."""
    a, b = episodes.poses[e, i], episodes.poses[e, j]
    if episodes.pose_kind == "displacement":
        return b - a
    rel = (Rotation.from_quat(a).inv() * Rotation.from_quat(b)).as_quat()
    return np.where(rel[:, 3:] < 0, -rel, rel)


def absolute_pose(episodes: Episodes, e: np.ndarray, i: np.ndarray) -> np.ndarray:
    pose = episodes.poses[e, i]
    if episodes.pose_kind == "rotation":
        pose = np.where(pose[:, 3:] < 0, -pose, pose)
    return pose


def pose_error(episodes: Episodes, prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Mean geodesic error in degrees (rotations) or mean Euclidean error (displacements)."""
    if episodes.pose_kind == "rotation":
        return float(geodesic_deg(prediction, target).mean())
    return float((prediction.double() - target.double()).norm(dim=-1).mean())


def view_pairs(
    episodes: np.ndarray, length: int, per_episode: int, consecutive: bool, rng
) -> tuple[np.ndarray, ...]:
    """(episode, i, j) index arrays: all consecutive pairs, or ``per_episode`` ordered pairs of
    distinct views per episode (all of them when there are no more)."""
    if consecutive:
        i = np.arange(length - 1)
        pairs = np.stack([i, i + 1], axis=1)
    else:
        i, j = np.meshgrid(np.arange(length), np.arange(length), indexing="ij")
        pairs = np.stack([i.ravel(), j.ravel()], axis=1)
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    chosen = np.stack([pairs] * len(episodes))
    if not consecutive and per_episode < len(pairs):
        picks = np.stack([rng.choice(len(pairs), per_episode, replace=False) for _ in episodes])
        chosen = pairs[picks]
    e = np.repeat(episodes, chosen.shape[1])
    return e, chosen[..., 0].ravel(), chosen[..., 1].ravel()


# -- probes


def _fit_mlp(cfg: EvalConfig, sets: dict[str, Samples]) -> tuple[dict[str, float], torch.Tensor]:
    """The regression probe on the fit / held / test sets (on the CPU, like every probe)."""
    bf16 = use_bf16(cfg.precision, torch.device("cpu"))
    return fit_mlp_regressor(sets["fit"], sets["held"], sets["test"], cfg.probe, bf16=bf16)


def _regress(episodes: Episodes, cfg: EvalConfig, sets: dict[str, Samples]) -> dict[str, float]:
    scores, prediction = _fit_mlp(cfg, sets)
    scores[ERROR_KEY[episodes.pose_kind]] = pose_error(episodes, prediction, sets["test"].targets)
    return scores


def _pair_samples(features: Features, episodes: Episodes, e, i, j) -> Samples:
    z = features.z
    e_t, i_t, j_t = (torch.from_numpy(a) for a in (e, i, j))
    return Samples(
        lambda k: torch.cat([z[e_t[k], i_t[k]], z[e_t[k], j_t[k]]], dim=-1),
        torch.from_numpy(relative_pose(episodes, e, i, j)),
    )


def _views_of(index: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    return np.repeat(index, length), np.tile(np.arange(length), len(index))


def _classification(
    features: Features, episodes: Episodes, roles: dict[str, np.ndarray], cfg: EvalConfig
) -> dict[str, Any]:
    """Linear probes: single-view z (every view of an episode is a sample) and z_AGG per M."""
    num_classes = int(episodes.labels.max()) + 1
    labels = torch.from_numpy(episodes.labels)
    length = features.z.shape[1]

    def single(index: np.ndarray) -> Samples:
        e, v = _views_of(index, length)
        return Samples(features.z[e, v], labels[e])

    def aggregate(m: int):
        return lambda index: Samples(features.agg["views_actions"][m][index], labels[index])

    def probe(make) -> dict[str, float]:
        sets = [make(roles[r]) for r in ("fit", "held", "test")]
        return fit_linear_classifier(*sets, num_classes=num_classes)

    return {
        "chance": float(np.bincount(episodes.labels[roles["test"]]).max() / len(roles["test"])),
        "single_view": probe(single),
        "aggregate": {str(m): probe(aggregate(m)) for m in cfg.m_vals},
    }


def _latents(
    features: Features, episodes: Episodes, roles: dict[str, np.ndarray], cfg: EvalConfig
) -> dict[str, Any]:
    """R^2 of each recorded scene latent (floor hue, light direction and hue) from z. Circular
    latents (the hues, light_phi) are regressed as (cos, sin) of their angle, so that 0.99 and
    0.01 count as neighbours; a latent's R^2 is the mean over its columns."""
    if episodes.latents is None:
        return {}
    length = features.z.shape[1]
    flat = episodes.latents[..., 3:].reshape(-1, len(LATENT_NAMES))
    present = [
        k for k in range(len(LATENT_NAMES)) if np.isfinite(flat[:, k]).all() and flat[:, k].std()
    ]
    if not present:
        return {}
    columns = {}  # latent name -> its target columns
    sets = {}
    for role, index in roles.items():
        e, v = _views_of(index, length)
        parts = []
        for k in present:
            value = episodes.latents[e, v, 3 + k].astype(np.float64)
            period = CIRCULAR_LATENTS.get(LATENT_NAMES[k])
            if period:
                angle = 2 * np.pi * value / period
                value = np.stack([np.cos(angle), np.sin(angle)], axis=1)
            parts.append(value.reshape(len(e), -1))
        start = 0
        for k, part in zip(present, parts, strict=True):
            columns[LATENT_NAMES[k]] = list(range(start, start + part.shape[1]))
            start += part.shape[1]
        sets[role] = Samples(features.z[e, v], torch.from_numpy(np.concatenate(parts, axis=1)))
    scores, prediction = _fit_mlp(cfg, sets)
    target = sets["test"].targets
    per = {name: r2_score(prediction[:, c], target[:, c]) for name, c in columns.items()}
    return {"r2": scores["r2"], "per_latent_r2": per}


def _train_sequences(episodes: Episodes, roles, views: int, cfg: EvalConfig, device):
    """(views, actions) batches of train-split episodes' first ``views`` observations."""
    train = np.concatenate([roles["fit"], roles["held"]])
    train = np.random.default_rng([cfg.seed, 0xBA7C]).permutation(train)  # mix the classes
    for start in range(0, len(train), cfg.batch_size):
        index = train[start : start + cfg.batch_size]
        yield (
            torch.from_numpy(episodes.views[index, :views]).to(device),
            torch.from_numpy(episodes.transitions[index, :views]).to(device),
        )


# -- the suite


def path_integration(features: Features, path: Callable[[str], Any]) -> dict[str, Any]:
    """``path(condition)`` for every condition; "views only" reuses "views + actions" where the
    model's z_AGG ignores the actions (the no-action twin, VICReg's mean): the same inputs
    would fit the same probe again, a sixth of an evaluation's time."""
    results = {}
    for condition in (*CONDITIONS, *([FOREIGN] if FOREIGN in features.agg else [])):
        same = condition == "views_only" and all(
            torch.equal(features.agg["views_actions"][m], z_agg)
            for m, z_agg in features.agg["views_only"].items()
        )
        results[condition] = results["views_actions"] if same else path(condition)
    return results


def evaluate(cfg: EvalConfig) -> dict[str, Any]:
    """Run the suite; write ``cfg.out``/metrics.json; return the metrics."""
    tick = time.perf_counter()
    if min(cfg.m_vals) < 1 or (cfg.path_m_vals and min(cfg.path_m_vals) < 2):
        raise ValueError("m_vals must be >= 1 and path_m_vals >= 2")
    device = resolve_device(cfg.device)
    use_bf16(cfg.precision, device)  # a bad precision is refused before any work
    model, train_cfg, model_info = load_model(cfg)
    model = model.to(device)
    data = RolloutDataset(cfg.data)
    length = max(*cfg.m_vals, *cfg.path_m_vals, train_cfg.views)
    episodes = load_episodes(data, length, train_cfg)
    if episodes.transitions.shape[-1] != model.config.action_dim:
        raise ValueError(
            f"the model takes {model.config.action_dim}-d actions, the dataset gives "
            f"{episodes.transitions.shape[-1]}-d ones: evaluate on the kind of data it learnt"
        )
    roles = probe_roles(episodes, cfg.heldout, cfg.seed)
    if cfg.random_encoder:
        batches = _train_sequences(episodes, roles, train_cfg.views, cfg, device)
        recalibrate_batchnorm(model, batches, cfg.recalibration_batches)
    features = extract_features(model, episodes, cfg, device)
    rng = np.random.default_rng([cfg.seed, 0x9A125])
    stages = tqdm(total=5, desc="probes", unit="probe set", leave=False)

    def stage(result):
        stages.update()
        return result

    def pairs(consecutive: bool) -> dict[str, float]:
        sets = {
            role: _pair_samples(
                features,
                episodes,
                *view_pairs(index, length, cfg.pairs_per_episode, consecutive, rng),
            )
            for role, index in roles.items()
        }
        return _regress(episodes, cfg, sets)

    def individual() -> dict[str, float]:
        sets = {}
        for role, index in roles.items():
            e, v = _views_of(index, length)
            sets[role] = Samples(features.z[e, v], torch.from_numpy(absolute_pose(episodes, e, v)))
        return _regress(episodes, cfg, sets)

    def path(condition: str) -> dict[str, Any]:
        """One probe per condition, fitted on every M of path_m_vals pooled and scored per M
        (7x cheaper than a probe per M; for independent random views the target's distribution
        is even the same for every M, for trajectories it widens with M)."""
        sets, groups = {}, np.zeros(0)
        for role, index in roles.items():
            first = np.zeros_like(index)
            inputs = [features.agg[condition][m][index] for m in cfg.path_m_vals]
            targets = [
                relative_pose(episodes, index, first, np.full_like(index, m - 1))
                for m in cfg.path_m_vals
            ]
            sets[role] = Samples(torch.cat(inputs), torch.from_numpy(np.concatenate(targets)))
            groups = np.repeat(cfg.path_m_vals, len(index))  # the test set's, in the end
        scores, prediction = _fit_mlp(cfg, sets)
        per_m = {}
        for m in cfg.path_m_vals:
            mine = torch.from_numpy(groups == m)
            target = sets["test"].targets[mine]
            per_m[str(m)] = {
                "r2": r2_score(prediction[mine], target),
                ERROR_KEY[episodes.pose_kind]: pose_error(episodes, prediction[mine], target),
            }
        return {"probe": scores, "per_m": per_m}

    metrics: dict[str, Any] = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "model": model_info,
        "data": {
            "path": str(cfg.data),
            "env_id": data.meta.get("env_id"),
            "categories": len(data.meta.get("categories") or []),
            "views_per_episode": length,
            "episodes": {role: len(index) for role, index in roles.items()},
            "pose": episodes.pose_kind,
        },
        "protocol": {
            "r2": "mean over output dimensions of 1 - SS_res/SS_tot (sklearn uniform_average)",
            "linear_probe": "L-BFGS logistic regression; L2 chosen on held-out train instances",
            "mlp_probe": dataclasses.asdict(cfg.probe),
            "heldout_fraction": cfg.heldout,
            "bf16": {
                "encoder": use_bf16(cfg.precision, device),
                "mlp_probe": use_bf16(cfg.precision, torch.device("cpu")),
            },
            "blank_view": f"uniform grey {BLANK_LEVEL}",
        },
        "classification": stage(_classification(features, episodes, roles, cfg)),
        "relative_pose": stage({"random_pairs": pairs(False), "consecutive_pairs": pairs(True)}),
        "individual_pose": stage(individual()),
        "path_integration": stage(path_integration(features, path) if cfg.path_m_vals else {}),
        "latents": stage(_latents(features, episodes, roles, cfg)),
    }
    stages.close()
    test_z = features.z[roles["test"]].reshape(-1, features.z.shape[-1])
    metrics["effective_rank"] = {"value": effective_rank(test_z), "views": len(test_z)}
    context = train_cfg.views - 1
    metrics["action_use"] = action_use(model, episodes, roles["test"], context, cfg, device)
    metrics["seconds"] = round(time.perf_counter() - tick, 1)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "metrics.json", metrics)
    return metrics
