"""SeqJEPA-RotateSaccade-v0: turn the object, then move the fovea, in one action.

The action is Box(-1, 1, (5,)): a rotation vector (Rotate-v0's relative mode: units of
``max_step_angle``, in ``action_frame``) followed by a saccade (Saccade-v0's relative mode:
units of ``max_saccade``). The scene is re-rendered only when the rotation is non-zero.
``obs["action"]`` is the executed rotation quaternion followed by the displacement (6 floats).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from assets import Catalog
from envs.fovea import Fovea, GlimpseMixin
from envs.object_scene import ObjectSceneEnv, float_vector
from envs.rotate import Turner
from envs.rotations import IDENTITY, canonical, quat_inv, quat_mul
from envs.scene import DEFAULT_MAX_LOADED_FACES


class RotateSaccadeEnv(GlimpseMixin, ObjectSceneEnv):
    """Turn an object and look around it with a fovea.

    Args: ObjectSceneEnv's (catalog, split, initial_orientation, floor, light_direction,
    light_hue, render_mode, render_size, renderer, max_loaded_faces), Turner's (action_frame,
    max_step_angle, action_noise; the mode is relative) and the Fovea's (glimpse_size,
    max_saccade, initial_fixation, scales, periphery_size; the mode is relative); scene_size is
    the side of the rendered scene.
    """

    reset_options: ClassVar[tuple[str, ...]] = ("category", "instance", "orientation", "position")

    def __init__(
        self,
        catalog: str | Catalog = "procedural",
        catalog_kwargs: dict[str, Any] | None = None,
        split: str | None = "train",
        scene_size: int = 128,
        glimpse_size: int = 32,
        action_frame: str = "camera",
        max_step_angle: float = np.pi / 6,
        action_noise: float = 0.0,
        max_saccade: float = 0.5,
        initial_fixation: str = "centre",
        scales: tuple[int, ...] = (1,),
        periphery_size: int = 0,
        initial_orientation: str = "uniform",
        floor: bool = False,
        light_direction: bool = False,
        light_hue: bool = False,
        render_mode: str | None = None,
        render_size: int = 256,
        renderer: str = "tiny",
        max_loaded_faces: int = DEFAULT_MAX_LOADED_FACES,
    ) -> None:
        self.turner = Turner("relative", action_frame, max_step_angle, action_noise)
        self.fovea = Fovea(
            glimpse_size, "relative", max_saccade, 1, initial_fixation, scales, periphery_size
        )
        super().__init__(
            scene_size,
            catalog,
            catalog_kwargs,
            split,
            initial_orientation,
            floor,
            light_direction,
            light_hue,
            "episode",
            render_mode,
            render_size,
            renderer,
            max_loaded_faces,
        )
        self.action_space = spaces.Box(-1.0, 1.0, (5,), np.float32)
        self.observation_space = spaces.Dict(
            {
                **self.fovea.observation_spaces(),
                "action": spaces.Box(-2.0, 2.0, (6,), np.float32),
            }
        )
        self.renders = 0  # scene renders so far (resets included): rotations cost, saccades not

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        rest = self._reset_object(seed, options)
        self._render_scene()
        self._start_fixation(rest)
        return self._observe(np.concatenate([IDENTITY, np.zeros(2)])), self._info(
            IDENTITY, IDENTITY
        )

    def step(self, action):
        self._require_episode("step")
        # the whole action is checked before either part acts: a bad saccade must not leave
        # the object turned
        a = float_vector(action, (5,), "rotate-saccade action")
        previous = self._orientation
        command = self.turner.command(a[:3], previous)
        if np.any(np.clip(a[:3], -1, 1) != 0) or self.turner.action_noise > 0:
            orientation, executed = self.turner.execute(command, previous, self.np_random)
            self._set_orientation(orientation)
            self._render_scene()
        else:
            executed = IDENTITY
        start = self._position
        self._position = self.fovea.move(a[3:], start)
        rel = quat_mul(quat_inv(previous), self._orientation)
        observation = self._observe(np.concatenate([command, self._position - start]))
        return observation, 0.0, False, False, self._info(rel, executed)

    def _episode_started(self) -> bool:
        return self._spec is not None

    def _render_scene(self) -> None:
        rendered = self._render(mask=True)
        self.fovea.set_scene(rendered["view"], rendered["mask"])
        self.renders += 1

    def _info(self, rel: np.ndarray, executed: np.ndarray) -> dict[str, Any]:
        info = self._object_info()
        info["rel_quat"] = canonical(rel)
        info["path_quat"] = canonical(quat_mul(self._initial_inv, self._orientation))
        info["executed_quat"] = canonical(executed)
        return info | self._fixation_info()
