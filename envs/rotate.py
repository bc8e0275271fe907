"""SeqJEPA-Rotate-v0: an object the agent turns; each step renders the view the turn produced.

Frames and alignment follow CONVENTIONS.md: ``orientation`` is object-to-world (xyzw); a relative
action D in the camera frame turns the object as R_{t+1} = C D C^-1 R_t, in the object frame as
R_{t+1} = R_t D; ``rel_quat`` = R_t^-1 R_{t+1}; ``path_quat`` = R_0^-1 R_t; ``obs["action"]`` at
step t is the command that produced view t (identity after reset).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from scipy.spatial.transform import Rotation

from assets import Catalog
from envs.object_scene import (
    ObjectSceneEnv,
    check_choice,
    discrete_index,
    float_vector,
    unit_quat,
)
from envs.rotations import (
    IDENTITY,
    canonical,
    conjugate_by,
    quat_inv,
    quat_mul,
    rotvec_to_quat,
)
from envs.scene import CAMERA_TO_WORLD, DEFAULT_MAX_LOADED_FACES

ACTION_MODES = ("relative", "discrete", "absolute", "poses")
ACTION_FRAMES = ("camera", "object")
# Discrete actions: +-step about the action frame's x, y and z axes, in this order.
_DISCRETE_AXES = np.array(
    [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float
)
#: "poses" actions: the 24 rotations of the cube (scipy's octahedral group, in its order) as
#: target orientations, canonical sign. Evenly spread views that include the object's upright
#: ones: a small discrete choice of where to look, for categorical policies.
POSES = np.array([canonical(q) for q in Rotation.create_group("O").as_quat()])


class Turner:
    """Turns actions into rotations of the object: validation, frames, noise.

    Args:
        action_mode: "relative", "discrete", "absolute" or "poses" (see RotateEnv).
        action_frame: "camera" or "object".
        max_step_angle: radians; the largest turn per axis (relative) or the turn (discrete).
        action_noise: std in radians of a random rotation vector applied after each command.
    """

    def __init__(
        self, action_mode: str, action_frame: str, max_step_angle: float, action_noise: float
    ) -> None:
        check_choice("action_mode", action_mode, ACTION_MODES)
        check_choice("action_frame", action_frame, ACTION_FRAMES)
        if not (np.isfinite(max_step_angle) and 0 < max_step_angle <= np.pi):
            raise ValueError(f"max_step_angle must be in (0, pi] radians, got {max_step_angle}")
        if not (np.isfinite(action_noise) and action_noise >= 0):
            raise ValueError(f"action_noise must be >= 0 radians, got {action_noise}")
        self.action_mode = action_mode
        self.action_frame = action_frame
        self.max_step_angle = float(max_step_angle)
        self.action_noise = float(action_noise)

    @property
    def action_space(self) -> spaces.Space:
        if self.action_mode == "relative":
            return spaces.Box(-1.0, 1.0, (3,), np.float32)
        if self.action_mode == "discrete":
            return spaces.Discrete(len(_DISCRETE_AXES))
        if self.action_mode == "poses":
            return spaces.Discrete(len(POSES))
        return spaces.Box(-1.0, 1.0, (4,), np.float32)

    def command(self, action: Any, current: np.ndarray) -> np.ndarray:
        """The commanded rotation D as a canonical quaternion in the action frame."""
        if self.action_mode == "discrete":
            index = discrete_index(action, len(_DISCRETE_AXES), "discrete action")
            return canonical(rotvec_to_quat(_DISCRETE_AXES[index] * self.max_step_angle))
        if self.action_mode == "poses":
            target = POSES[discrete_index(action, len(POSES), "pose action")]
        else:
            expected = (3,) if self.action_mode == "relative" else (4,)
            a = float_vector(action, expected, "rotation action")
            a = np.clip(a, -1.0, 1.0)  # out-of-range values are clipped, as the Box implies
            if self.action_mode == "relative":
                return canonical(rotvec_to_quat(a * self.max_step_angle))
            target = unit_quat(a, "absolute action")
        if self.action_frame == "camera":
            return canonical(conjugate_by(CAMERA_TO_WORLD.T, quat_mul(target, quat_inv(current))))
        return canonical(quat_mul(quat_inv(current), target))

    def execute(
        self, command: np.ndarray, current: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """(new orientation, executed rotation in the action frame), noise included."""
        executed = command
        if self.action_noise > 0:
            noise = rotvec_to_quat(rng.normal(0.0, self.action_noise, 3))
            executed = quat_mul(command, noise)
        if self.action_frame == "camera":
            return quat_mul(conjugate_by(CAMERA_TO_WORLD, executed), current), executed
        return quat_mul(current, executed), executed


class RotateEnv(ObjectSceneEnv):
    """Turn an object and see it from the fixed 3DIEBench camera.

    Args (besides ObjectSceneEnv's catalog, split, initial_orientation, floor, light_direction,
    light_hue, latents, render_mode, render_size, renderer, max_loaded_faces, supersample):
        image_size: side of ``obs["view"]`` in pixels.
        action_mode: "relative" (Box(-1, 1, (3,)): a rotation vector in units of max_step_angle),
            "discrete" (Discrete(6): +-max_step_angle about the x, y, z axes of the action frame),
            "absolute" (Box(-1, 1, (4,)): the target orientation, an xyzw quaternion, normalised)
            or "poses" (Discrete(24): the target orientation is ``POSES[action]``, a rotation of
            the cube).
        action_frame: "camera" (egocentric: x right, y up, z toward the viewer) or "object".
        max_step_angle: radians; the largest turn per axis (relative) or the turn (discrete).
        action_noise: std in radians of a random rotation vector applied after each command, so
            that dead reckoning drifts; ``obs["action"]`` is the command, info["executed_quat"] and
            info["rel_quat"] what happened.
        depth, mask: add "depth" (float32, camera-axis distance) and "mask" (uint8 object mask).
    """

    def __init__(
        self,
        catalog: str | Catalog = "procedural",
        catalog_kwargs: dict[str, Any] | None = None,
        split: str | None = "train",
        image_size: int = 64,
        action_mode: str = "relative",
        action_frame: str = "camera",
        max_step_angle: float = np.pi / 6,
        action_noise: float = 0.0,
        initial_orientation: str = "uniform",
        floor: bool = False,
        light_direction: bool = False,
        light_hue: bool = False,
        latents: str = "episode",
        depth: bool = False,
        mask: bool = False,
        render_mode: str | None = None,
        render_size: int = 256,
        renderer: str = "tiny",
        max_loaded_faces: int = DEFAULT_MAX_LOADED_FACES,
        supersample: int = 1,
    ) -> None:
        self.turner = Turner(action_mode, action_frame, max_step_angle, action_noise)
        super().__init__(
            image_size,
            catalog,
            catalog_kwargs,
            split,
            initial_orientation,
            floor,
            light_direction,
            light_hue,
            latents,
            render_mode,
            render_size,
            renderer,
            max_loaded_faces,
            supersample,
        )
        self.image_size = self.scene_size
        self.depth = depth
        self.mask = mask
        self.action_space = self.turner.action_space
        size = self.image_size
        obs = {
            "view": spaces.Box(0, 255, (size, size, 3), np.uint8),
            "action": spaces.Box(-1.0, 1.0, (4,), np.float32),
        }
        if depth:
            obs["depth"] = spaces.Box(0.0, np.inf, (size, size), np.float32)
        if mask:
            obs["mask"] = spaces.Box(0, 1, (size, size), np.uint8)
        self.observation_space = spaces.Dict(obs)

    @property
    def max_step_angle(self) -> float:
        return self.turner.max_step_angle

    @max_step_angle.setter
    def max_step_angle(self, value: float) -> None:
        self.turner.max_step_angle = float(value)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._reset_object(seed, options)
        return self._observe(IDENTITY), self._info(IDENTITY, IDENTITY)

    def step(self, action):
        if self._spec is None:
            raise RuntimeError("step() called before reset()")
        previous = self._orientation
        command = self.turner.command(action, previous)
        orientation, executed = self.turner.execute(command, previous, self.np_random)
        self._set_orientation(orientation)
        self._step_latents()
        rel = quat_mul(quat_inv(previous), self._orientation)
        return self._observe(command), 0.0, False, False, self._info(rel, executed)

    def _observe(self, command: np.ndarray) -> dict[str, np.ndarray]:
        observation = self._render(depth=self.depth, mask=self.mask)
        observation["action"] = command.astype(np.float32)
        return observation

    def _info(self, rel: np.ndarray, executed: np.ndarray) -> dict[str, Any]:
        info = self._object_info()
        info["rel_quat"] = canonical(rel)
        info["path_quat"] = canonical(quat_mul(self._initial_inv, self._orientation))
        info["executed_quat"] = canonical(executed)
        return info
