"""Visual odometry: how far the object has turned since a first view, read from two views.

The world model's pooled z keeps almost nothing of a small turn: a probe on (z, z') of two views
30 degrees apart scores R^2 ~0 (docs/agents.md). Its encoder's spatial feature map, before the
pooling, still knows where things are in the view. A probe on that map of two views (the
evaluation suite's MLP regressor, ``seqjepa.probes.train_mlp_regressor``) regresses the
camera-frame rotation vector that turned the first view into the second. The homing task
observes its estimate (``visual_path``), so that a policy can correct the drift of dead
reckoning: the analogue of the recognition task's classifier, fitted by `seqjepa-gym odometry`
(``fit_odometry``) on train-split objects and saved beside the checkpoint (``odometry.npz``:
plain arrays, no pickles).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from agents.representation import WorldModel, load_world_model
from agents.tasks import make_base_env
from seqjepa.metrics import r2_score
from seqjepa.probes import MLPProbeConfig, MLPRegressor, Samples, train_mlp_regressor
from seqjepa.rollouts import write_npz_atomic, write_text_atomic
from seqjepa.train import use_bf16

ODOMETRY_FILE = "odometry.npz"
FORMAT = 1
#: The probe: narrower and more regularised than the suite's relative-rotation probe, as its
#: inputs are ~18k map features (tiny, 32 px) where that one reads a few hundred; on 20k pairs
#: of the demo's model it scored test R^2 0.28 (scratch study, docs/agents.md).
ODOMETRY_PROBE = MLPProbeConfig(
    hidden=(512, 512), steps=3000, batch_size=256, weight_decay=0.05, dropout=0.2, eval_every=250
)


class VisualOdometry:
    """A fitted probe from the feature maps of a start view and the current view to the
    camera-frame rotation vector (radians) from the first to the second.

    Args:
        world: the world model whose encoder makes the feature maps.
        probe: the fitted regressor over concat(map_start, map_now, map_now - map_start).
        stages: the encoder stages the map is taken after (the last but one by default: at
            32 px that is a 4 x 4 map, where the last stage's is 2 x 2).
    """

    def __init__(self, world: WorldModel, probe: MLPRegressor, stages: int) -> None:
        self.world = world
        self.probe = probe.eval()
        self.stages = int(stages)
        size = int(world.spec.get("image_size") or 0)
        if size and 3 * self.feature_dim(size) != probe.x_mean.shape[0]:
            raise ValueError(
                f"this odometry reads {probe.x_mean.shape[0]} features; the world model "
                f"{world.path} makes {3 * self.feature_dim(size)} at stage {stages}: fit it "
                "again for this checkpoint (`seqjepa-gym odometry`)"
            )

    def feature_dim(self, image_size: int) -> int:
        views = np.zeros((1, image_size, image_size, 3), np.uint8)
        return int(self.features(views).shape[1])

    def features(self, views: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 views -> (N, C * h * w) flattened feature maps (CPU, fp32)."""
        return feature_maps(self.world, views, self.stages)

    def estimate(self, start: torch.Tensor, now: torch.Tensor) -> np.ndarray:
        """Camera-frame rotation vectors (N, 3), radians, from the start views' maps to now's."""
        with torch.no_grad():
            return self.probe(torch.cat([start, now, now - start], dim=-1)).double().numpy()

    def save(self, path: str | Path) -> Path:
        arrays = {key: value.cpu().numpy() for key, value in self.probe.state_dict().items()}
        return write_npz_atomic(Path(path), **arrays, stages=self.stages, format=FORMAT)

    @classmethod
    def load(cls, path: str | Path, world: WorldModel) -> VisualOdometry:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"no odometry at {path}: fit one with `seqjepa-gym odometry --checkpoint CKPT` "
                "(it is written beside the checkpoint)"
            )
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: torch.from_numpy(data[key]) for key in data.files}
            if int(arrays.pop("format")) != FORMAT:
                raise ValueError("another format version")
            stages = int(arrays.pop("stages"))
            linears = sorted(
                (key for key in arrays if key.startswith("mlp.") and key.endswith(".weight")),
                key=lambda key: int(key.split(".")[1]),
            )
            hidden = tuple(int(arrays[key].shape[0]) for key in linears[:-1])
            stats = [arrays[key] for key in ("x_mean", "x_std", "y_mean", "y_std")]
            probe = MLPRegressor((stats[0], stats[1]), (stats[2], stats[3]), hidden)
            probe.load_state_dict(arrays)
        except (KeyError, ValueError, RuntimeError, OSError) as err:
            raise ValueError(f"{path}: not an odometry file of this version ({err})") from None
        return cls(world, probe, stages)


def feature_maps(world: WorldModel, views: np.ndarray, stages: int) -> torch.Tensor:
    """(N, H, W, 3) uint8 views -> the encoder's maps after ``stages`` stages, flattened (N, C *
    h * w), on the CPU in fp32; in chunks of 512 views."""
    model = world.model
    out = []
    for chunk in np.array_split(np.asarray(views), max(-(-len(views) // 512), 1)):
        x = model.prepare(torch.as_tensor(chunk).to(world.device))
        with torch.no_grad():
            out.append(model.encoder.feature_map(x, stages).float().flatten(1).cpu())
    return torch.cat(out)


def default_odometry_path(world: WorldModel) -> Path:
    return world.path.parent / ODOMETRY_FILE


def turn_pairs(
    world: WorldModel, base: str, split: str, pairs: int, max_deg: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start views, turned views, camera-frame rotation vectors in radians): each pair is a
    new object at the base env's initial orientation and one turn of up to ``max_deg`` about
    a random axis (executed by the env, so exactly what the homing task's turns do)."""
    env = make_base_env(base, world, {"split": split, "action_noise": 0.0})
    unit = env.unwrapped.turner.max_step_angle
    if np.radians(max_deg) > unit + 1e-9:
        raise ValueError(f"max_deg {max_deg} is more than one step of the base env ({unit} rad)")
    rng = np.random.default_rng([seed, 0x0D0])
    starts, turned, targets = [], [], []
    for _ in tqdm(range(pairs), desc=f"odometry pairs ({split})", unit="pair", leave=False):
        obs, _ = env.reset(seed=int(rng.integers(2**31)))
        axis = rng.normal(size=3)
        turn = axis / np.linalg.norm(axis) * np.radians(rng.uniform(0.0, max_deg))
        after, *_, info = env.step((turn / unit).astype(np.float32))
        starts.append(obs["view"])
        turned.append(after["view"])
        targets.append(Rotation.from_quat(info["executed_quat"]).as_rotvec())
    env.close()
    return np.stack(starts), np.stack(turned), np.asarray(targets, np.float32)


def fit_odometry(
    checkpoint: str | Path,
    base: str = "SeqJEPA-Rotate-v0",
    pairs: int = 12000,
    max_deg: float = 30.0,
    stages: int = 0,
    probe: MLPProbeConfig = ODOMETRY_PROBE,
    seed: int = 0,
    out: str | Path | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Fit the visual odometry of a world model on ``pairs`` train-split turn pairs (a fifth
    as many more for early stopping), score it on test-split objects, save it (default:
    beside the checkpoint) with a JSON summary; returns the summary. ``stages`` 0: the last
    but one stage."""
    if not isinstance(pairs, int) or pairs < 5:
        raise ValueError(
            f"pairs must be an integer >= 5 (a fifth more are held out), got {pairs!r}"
        )
    if not (np.isfinite(max_deg) and max_deg > 0):
        raise ValueError(f"max_deg must be a positive number of degrees, got {max_deg!r}")
    world = load_world_model(checkpoint, device)
    depth = len(world.model.encoder.stage_ends)
    stages = stages or max(depth - 1, 1)

    def samples(split: str, count: int, part: int) -> Samples:
        start, turned, target = turn_pairs(world, base, split, count, max_deg, seed * 3 + part)
        a, b = feature_maps(world, start, stages), feature_maps(world, turned, stages)
        return Samples(torch.cat([a, b, b - a], dim=1), torch.from_numpy(target))

    fit, held = samples("train", pairs, 0), samples("train", max(pairs // 5, 1), 1)
    test = samples("test", max(pairs // 5, 1), 2)
    bf16 = use_bf16("auto", torch.device("cpu"))
    regressor, scores = train_mlp_regressor(fit, held, probe, bf16)
    fitted = VisualOdometry(world, regressor, stages)
    with torch.no_grad():
        prediction = regressor(test.features())
    error = np.degrees(
        (
            Rotation.from_rotvec(prediction.double().numpy()).inv()
            * Rotation.from_rotvec(test.targets.double().numpy())
        ).magnitude()
    )
    path = fitted.save(Path(out) if out else default_odometry_path(world))
    summary = {
        "odometry": str(path),
        "checkpoint": str(world.path),
        "base": base,
        "stages": stages,
        "pairs": pairs,
        "max_deg": max_deg,
        "test_r2": r2_score(prediction, test.targets),
        "test_median_error_deg": float(np.median(error)),
        "test_median_turn_deg": float(np.median(np.degrees(np.linalg.norm(test.targets, axis=1)))),
        **scores,
    }
    write_text_atomic(path.with_suffix(".json"), json.dumps(summary, indent=1))
    return summary
