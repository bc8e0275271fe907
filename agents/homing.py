"""Homing: path integration as a task. Watch a random path, then undo it.

Episode: reset takes ``warmup`` random actions (relative turns, or saccades) that the agent
observes through the world model; the agent then has ``budget`` steps to turn the object back
to its initial orientation (or return the fovea to its first fixation). The episode terminates
when the budget is spent.

- Error: the geodesic angle of ``path_quat`` = R_0^-1 R_t (degrees), or the norm of
  ``path_displacement`` (position units; the scene is 2 wide).
- Success: error < ``success_deg`` (15 degrees) or < ``success_distance`` (0.2, a tenth of the
  scene) at the end.
- Reward ("dense"): the reduction in error per step, as a fraction of the largest error (180
  degrees, or the scene's diagonal); ("sparse"): 1 at the end on success.
- Observation: z_AGG (the warm-up views and actions included), the latest z, z of the first
  view (the goal), the budget left, and ``dead_reckoning``: the move that undoes the composed
  *commanded* path (a rotation vector / pi, or a displacement / 2). Without actuation noise that
  move is exact; with it (``action_noise``) it drifts, and only vision can tell by how much.
- With ``odometry`` (turns only; agents.odometry): ``visual_path``, what vision says the path
  from the first view is (a camera-frame rotation vector / pi), from the world model's feature
  maps of the first and the latest view. It is what lets a policy see the drift.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from scipy.spatial.transform import Rotation

from agents.odometry import VisualOdometry
from agents.policies import sample_space
from agents.representation import RepresentationWrapper, WorldModel
from agents.tasks import world_and_base
from envs.object_scene import check_choice, float_vector
from envs.rotations import IDENTITY, geodesic_deg, quat_inv, quat_mul

REWARDS = ("dense", "sparse")
#: The largest error in each kind, the unit of the dense reward.
MAX_ERROR = {"rotation": 180.0, "displacement": 2.0 * np.sqrt(2.0)}


class Homing(gym.Wrapper):
    """Return the object (or fovea) to where it started (module docstring).

    Args:
        checkpoint: the world model (file, run folder or a loaded WorldModel).
        base: the base env id (a Rotate or Saccade id the checkpoint fits), relative actions.
        warmup: random steps shown at reset.
        budget: the agent's steps.
        success_deg, success_distance: success thresholds (rotations, glimpses).
        reward: "dense" (error reduction) or "sparse" (1 on success at the end).
        residual: 0 (the agent's action is the base env's) or r > 0: the action is a
            correction, scaled by r, added to the dead-reckoning action (residual RL: the
            zero policy is dead reckoning, and learning can only add what vision tells).
        split: catalog split of the objects ("test" for held-out evaluation).
        base_kwargs: further base-env kwargs (e.g. {"action_noise": 0.1}).
        device: where the world model runs.
        odometry: a visual odometry of this world model (file or loaded), adding
            ``visual_path`` to the observation; None: no visual odometry.
    """

    def __init__(
        self,
        checkpoint: str | Path | WorldModel,
        base: str = "SeqJEPA-Rotate-v0",
        warmup: int = 3,
        budget: int = 6,
        success_deg: float = 15.0,
        success_distance: float = 0.2,
        reward: str = "dense",
        residual: float = 0.0,
        split: str | None = "train",
        base_kwargs: dict[str, Any] | None = None,
        device: str = "auto",
        odometry: str | Path | VisualOdometry | None = None,
    ) -> None:
        for name, value, least in (("warmup", warmup, 0), ("budget", budget, 1)):
            if not isinstance(value, (int, np.integer)) or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
        check_choice("reward", reward, REWARDS)
        world, base_env = world_and_base(checkpoint, base, split, base_kwargs, device)
        unwrapped = base_env.unwrapped
        self.kind = "displacement" if hasattr(unwrapped, "fovea") else "rotation"
        mode = (unwrapped.fovea if self.kind == "displacement" else unwrapped.turner).action_mode
        if mode != "relative":
            raise ValueError(f"homing needs relative actions, the base env's are {mode!r}")
        if self.kind == "rotation" and unwrapped.turner.action_frame != "camera":
            raise ValueError("homing composes commands in the camera frame (action_frame='camera')")
        self.odometry = None
        if odometry is not None:
            if self.kind != "rotation":
                raise ValueError("visual odometry reads turns: it needs a Rotate base env")
            self.odometry = (
                odometry
                if isinstance(odometry, VisualOdometry)
                else VisualOdometry.load(odometry, world)
            )
        keep = ("action", "view") if self.odometry else ("action",)
        super().__init__(RepresentationWrapper(base_env, world, keep=keep))
        self.warmup = int(warmup)
        self.budget = int(budget)
        self.threshold = success_deg if self.kind == "rotation" else success_distance
        self.reward_kind = reward
        if not (np.isfinite(residual) and residual >= 0):
            raise ValueError(f"residual must be a finite number >= 0, got {residual!r}")
        self.residual = float(residual)
        spaces = dict(self.env.observation_space.spaces)
        spaces.pop("action")
        spaces.pop("view", None)
        self.dims = 3 if self.kind == "rotation" else 2
        moves = ("dead_reckoning", "visual_path") if self.odometry else ("dead_reckoning",)
        self.observation_space = gym.spaces.Dict(
            spaces
            | {
                "z_start": spaces["z"],
                "steps_left": gym.spaces.Box(0.0, 1.0, (1,), np.float32),
            }
            | {key: gym.spaces.Box(-1.0, 1.0, (self.dims,), np.float32) for key in moves}
        )

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._z_start = obs["z"].copy()
        if self.odometry:
            self._map_start = self.odometry.features(obs["view"][None])
        self._command = IDENTITY.copy() if self.kind == "rotation" else np.zeros(2)
        rng = np.random.default_rng(self.env.unwrapped.np_random.integers(2**63))
        for _ in range(self.warmup):
            obs, _, _, _, info = self.env.step(sample_space(self.action_space, rng))
            self._compose(obs["action"])
        self._steps = 0
        self._error = self.error(info)
        self._see(obs)
        return self._observation(obs), self._info(info)

    def step(self, action):
        if self._steps >= self.budget:
            raise RuntimeError("the step budget is spent: reset() first")
        if self.residual > 0:  # the agent corrects dead reckoning instead of replacing it
            correction = float_vector(action, self.action_space.shape, "homing action")
            action = np.clip(self.dead_reckoning_action() + self.residual * correction, -1, 1)
            action = action.astype(np.float32)
        obs, _, _, truncated, info = self.env.step(action)
        self._compose(obs["action"])
        self._steps += 1
        previous, self._error = self._error, self.error(info)
        done = self._steps >= self.budget
        self._see(obs)
        if self.reward_kind == "dense":
            reward = (previous - self._error) / MAX_ERROR[self.kind]
        else:
            reward = float(done and self._error < self.threshold)
        return self._observation(obs), float(reward), done, truncated, self._info(info)

    def error(self, info: dict[str, Any]) -> float:
        """Degrees from the initial orientation, or distance from the first fixation."""
        if self.kind == "rotation":
            return geodesic_deg(info["path_quat"], IDENTITY)
        return float(np.linalg.norm(info["path_displacement"]))

    def dead_reckoning(self) -> np.ndarray:
        """The move undoing the commanded path: a rotation vector (radians, camera frame) or
        a displacement (position units)."""
        if self.kind == "rotation":
            return Rotation.from_quat(quat_inv(self._command)).as_rotvec()
        return -self._command

    def dead_reckoning_action(self) -> np.ndarray:
        """The base-env action that goes as far along ``dead_reckoning`` as one step allows."""
        return self.move_action(self.dead_reckoning())

    def move_action(self, move: np.ndarray) -> np.ndarray:
        """The base-env action that goes as far along ``move`` (a rotation vector, or a
        displacement) as one step allows: straight, the move scaled, not clipped per axis."""
        unwrapped = self.env.unwrapped
        unit = (
            unwrapped.fovea.max_saccade
            if self.kind == "displacement"
            else (unwrapped.turner.max_step_angle)
        )
        scaled = np.asarray(move, np.float64) / unit
        return scaled / max(np.abs(scaled).max(), 1.0)

    def _see(self, obs: dict[str, np.ndarray]) -> None:
        """What visual odometry says the path from the first view is (radians), if any."""
        if self.odometry:
            now = self.odometry.features(obs["view"][None])
            self._visual = self.odometry.estimate(self._map_start, now)[0]

    def _compose(self, command: np.ndarray) -> None:
        if self.kind == "rotation":  # camera-frame commands act on the left
            self._command = quat_mul(np.asarray(command, np.float64), self._command)
        else:
            self._command = self._command + np.asarray(command, np.float64)

    def _observation(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        scale = np.pi if self.kind == "rotation" else 2.0
        out = {key: value for key, value in obs.items() if key not in ("action", "view")}
        moves = {"dead_reckoning": self.dead_reckoning()}
        if self.odometry:
            moves["visual_path"] = self._visual
        return (
            out
            | {
                "z_start": self._z_start.copy(),
                "steps_left": np.array([(self.budget - self._steps) / self.budget], np.float32),
            }
            | {key: np.clip(m / scale, -1, 1).astype(np.float32) for key, m in moves.items()}
        )

    def _info(self, info: dict[str, Any]) -> dict[str, Any]:
        out = info | {
            "error": self._error,
            "success": self._error < self.threshold,
            "dead_reckoning": self.dead_reckoning(),
        }
        return out | ({"visual_path": self._visual.copy()} if self.odometry else {})
