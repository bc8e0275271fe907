"""SeqJEPA-Rotate-v0: an object the agent turns; each step renders the view the turn produced.

Frames and alignment follow CONVENTIONS.md: ``orientation`` is object-to-world (xyzw); a relative
action D in the camera frame turns the object as R_{t+1} = C D C^-1 R_t, in the object frame as
R_{t+1} = R_t D; ``rel_quat`` = R_t^-1 R_{t+1}; ``path_quat`` = R_0^-1 R_t; ``obs["action"]`` at
step t is the command that produced view t (identity after reset).
"""

from __future__ import annotations

import operator
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from scipy.spatial.transform import Rotation

from assets import Catalog, ObjectSpec, make_catalog
from envs.rotations import (
    IDENTITY,
    canonical,
    conjugate_by,
    euler_xyz,
    quat_inv,
    quat_mul,
    rotvec_to_quat,
)
from envs.scene import CAMERA_TO_WORLD, DEFAULT_MAX_LOADED_FACES, Lighting, Scene

ACTION_MODES = ("relative", "discrete", "absolute")
ACTION_FRAMES = ("camera", "object")
INITIAL_ORIENTATIONS = ("uniform", "3diebench", "identity")
LATENT_RESAMPLING = ("episode", "step")
RESET_OPTIONS = ("category", "instance", "orientation")
# Discrete actions: +-step about the action frame's x, y and z axes, in this order.
_DISCRETE_AXES = np.array(
    [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float
)


class RotateEnv(gym.Env):
    """Turn an object and see it from the fixed 3DIEBench camera.

    Args:
        catalog: "procedural" (default), "pybullet_data", "meshfolder", or a Catalog instance.
        catalog_kwargs: constructor kwargs of a catalog given by name (e.g. {"root": ...}).
        split: the catalog split objects are drawn from ("train", "val", "test", or None for all).
        image_size: side of ``obs["view"]`` in pixels.
        action_mode: "relative" (Box(-1, 1, (3,)): a rotation vector in units of max_step_angle),
            "discrete" (Discrete(6): +-max_step_angle about the x, y, z axes of the action frame) or
            "absolute" (Box(-1, 1, (4,)): the target orientation, an xyzw quaternion, normalised).
        action_frame: "camera" (egocentric: x right, y up, z toward the viewer) or "object".
        max_step_angle: radians; the largest turn per axis (relative) or the turn (discrete).
        action_noise: std in radians of a random rotation vector applied after each command, so
            that dead reckoning drifts; ``obs["action"]`` is the command, info["executed_quat"] and
            info["rel_quat"] what happened.
        initial_orientation: "uniform" on SO(3), "3diebench" (Euler xyz each in [-pi/2, pi/2]) or
            "identity".
        floor: draw 3DIEBench's floor at z = -1 (its hue is a latent).
        light_direction, light_hue: randomise the light (3DIEBench's spot light theta, phi, hue).
        latents: draw scene latents once per "episode" or at every "step" (3DIEBench-style).
        depth, mask: add "depth" (float32, camera-axis distance) and "mask" (uint8 object mask).
        render_mode: None or "rgb_array" (a ``render_size`` view for humans).
        renderer: "tiny" (CPU) or "egl" (opt-in on GPU machines).
        max_loaded_faces: face budget before the renderer is recycled (bounds memory).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 4}

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
    ) -> None:
        _check_choice("action_mode", action_mode, ACTION_MODES)
        _check_choice("action_frame", action_frame, ACTION_FRAMES)
        _check_choice("initial_orientation", initial_orientation, INITIAL_ORIENTATIONS)
        _check_choice("latents", latents, LATENT_RESAMPLING)
        _check_choice("render_mode", render_mode, (None, *self.metadata["render_modes"]))
        for name, value in (("image_size", image_size), ("render_size", render_size)):
            if int(value) < 8:
                raise ValueError(f"{name} must be >= 8 pixels, got {value}")
        if not (np.isfinite(max_step_angle) and 0 < max_step_angle <= np.pi):
            raise ValueError(f"max_step_angle must be in (0, pi] radians, got {max_step_angle}")
        if not (np.isfinite(action_noise) and action_noise >= 0):
            raise ValueError(f"action_noise must be >= 0 radians, got {action_noise}")
        self.catalog = make_catalog(catalog, **(catalog_kwargs or {}))
        self.split = split
        self.image_size = int(image_size)
        self.action_mode = action_mode
        self.action_frame = action_frame
        self.max_step_angle = float(max_step_angle)
        self.action_noise = float(action_noise)
        self.initial_orientation = initial_orientation
        self.floor = floor
        self.random_light_direction = light_direction
        self.random_light_hue = light_hue
        self.latents = latents
        self.depth = depth
        self.mask = mask
        self.render_mode = render_mode
        self.render_size = int(render_size)
        self.renderer = renderer
        self.max_loaded_faces = max_loaded_faces

        if action_mode == "relative":
            self.action_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
        elif action_mode == "discrete":
            self.action_space = spaces.Discrete(len(_DISCRETE_AXES))
        else:
            self.action_space = spaces.Box(-1.0, 1.0, (4,), np.float32)
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

        self._scene: Scene | None = None
        self._spec: ObjectSpec | None = None
        self._orientation = IDENTITY.copy()
        self._initial_inv = IDENTITY.copy()
        self._lighting = Lighting()
        self._latents = np.full(7, np.nan, dtype=np.float32)

    # -- Gymnasium API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - set(RESET_OPTIONS)
        if unknown:
            raise ValueError(
                f"unknown reset options {sorted(unknown)}; valid: {', '.join(RESET_OPTIONS)}"
            )
        if "instance" in options:
            if "category" not in options:
                raise ValueError("reset option 'instance' needs 'category' too")
            self._spec = self.catalog.spec(options["category"], options["instance"])
        else:
            self._spec = self.catalog.sample(self.np_random, self.split, options.get("category"))
        if "orientation" in options:
            self._orientation = canonical(
                _unit_quat(options["orientation"], "option 'orientation'")
            )
        else:
            self._orientation = canonical(self._sample_orientation())
        self._initial_inv = quat_inv(self._orientation)
        self._set_lighting(self._sample_lighting())
        observation = self._observe(IDENTITY)
        return observation, self._info(IDENTITY, IDENTITY)

    def step(self, action):
        if self._spec is None:
            raise RuntimeError("step() called before reset()")
        command = self._command(action)
        executed = command
        if self.action_noise > 0:
            executed = quat_mul(
                command, rotvec_to_quat(self.np_random.normal(0.0, self.action_noise, 3))
            )
        previous = self._orientation
        if self.action_frame == "camera":
            orientation = quat_mul(conjugate_by(CAMERA_TO_WORLD, executed), previous)
        else:
            orientation = quat_mul(previous, executed)
        self._orientation = canonical(orientation)  # renormalised: no drift off SO(3)
        if self.latents == "step":
            self._set_lighting(self._sample_lighting())
        rel = quat_mul(quat_inv(previous), self._orientation)
        observation = self._observe(command)
        return observation, 0.0, False, False, self._info(rel, executed)

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array" or self._spec is None:
            return None
        return self._render(size=self.render_size)["view"]

    def close(self) -> None:
        if self._scene is not None:
            self._scene.close()
            self._scene = None

    # -- pickling: the BulletClient stays behind and is re-created lazily

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_scene"] = None
        return state

    # -- internals

    @property
    def scene(self) -> Scene:
        """The renderer, created on first use (so the env pickles and runs in async workers)."""
        if self._scene is None:
            self._scene = Scene(self.image_size, self.floor, self.renderer, self.max_loaded_faces)
        return self._scene

    def _command(self, action) -> np.ndarray:
        """The commanded rotation D as a canonical quaternion in the action frame."""
        if self.action_mode == "discrete":
            try:
                index = operator.index(action)  # ints, numpy ints and 0-d integer arrays
            except TypeError:
                index = -1
            if not 0 <= index < len(_DISCRETE_AXES):
                raise ValueError(f"discrete action must be an integer in 0..5, got {action!r}")
            return canonical(rotvec_to_quat(_DISCRETE_AXES[index] * self.max_step_angle))
        expected = self.action_space.shape
        a = np.asarray(action, dtype=np.float64)
        if a.shape != expected:
            raise ValueError(f"action must have shape {expected}, got {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"action contains NaN or inf: {a}")
        a = np.clip(a, -1.0, 1.0)  # out-of-range values are clipped, as the Box implies
        if self.action_mode == "relative":
            return canonical(rotvec_to_quat(a * self.max_step_angle))
        target = _unit_quat(a, "absolute action")
        current = self._orientation
        if self.action_frame == "camera":
            return canonical(conjugate_by(CAMERA_TO_WORLD.T, quat_mul(target, quat_inv(current))))
        return canonical(quat_mul(quat_inv(current), target))

    def _sample_orientation(self) -> np.ndarray:
        if self.initial_orientation == "identity":
            return IDENTITY.copy()
        if self.initial_orientation == "3diebench":
            angles = self.np_random.uniform(-np.pi / 2, np.pi / 2, 3)
            return Rotation.from_euler("xyz", angles).as_quat()
        return Rotation.random(random_state=self.np_random).as_quat()

    def _sample_lighting(self) -> Lighting:
        rng = self.np_random
        return Lighting(
            floor_hue=float(rng.uniform()) if self.floor else None,
            light_theta=float(rng.uniform(0, np.pi / 4)) if self.random_light_direction else None,
            light_phi=float(rng.uniform(0, 2 * np.pi)) if self.random_light_direction else None,
            light_hue=float(rng.uniform()) if self.random_light_hue else None,
        )

    def _set_lighting(self, lighting: Lighting) -> None:
        self._lighting = lighting
        self._latents[3:] = lighting.as_array()

    def _render(self, size: int | None = None) -> dict[str, np.ndarray]:
        spec, catalog = self._spec, self.catalog
        self.scene.show(spec.key, lambda: catalog.build(spec))
        return self.scene.render(self._orientation, self._lighting, size, self.depth, self.mask)

    def _observe(self, command: np.ndarray) -> dict[str, np.ndarray]:
        observation = self._render()
        observation["action"] = command.astype(np.float32)
        return observation

    def _info(self, rel: np.ndarray, executed: np.ndarray) -> dict[str, Any]:
        spec = self._spec
        latents = self._latents.copy()
        latents[:3] = euler_xyz(self._orientation)
        return {
            "category": spec.category_index,
            "category_name": spec.category,
            "instance": spec.instance,
            "split": spec.split,
            "orientation": self._orientation.copy(),
            "rel_quat": canonical(rel),
            "path_quat": canonical(quat_mul(self._initial_inv, self._orientation)),
            "executed_quat": canonical(executed),
            "latents": latents,
        }


def _check_choice(name: str, value: Any, valid: tuple) -> None:
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(map(repr, valid))}")


def _unit_quat(q: Any, what: str) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    if q.shape != (4,) or not np.isfinite(q).all():
        raise ValueError(f"{what} must be 4 finite floats (x, y, z, w), got {q!r}")
    norm = np.linalg.norm(q)
    if norm < 1e-6:
        raise ValueError(f"{what} has zero norm: not a rotation")
    return q / norm
