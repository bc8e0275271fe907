"""SeqJEPA-Saccade-v0: a fovea moving over one rendered view of an object.

Each episode renders one object (random orientation, scene latents as in Rotate-v0) once, at
``scene_size``; every step moves the fovea and cuts a glimpse - no rendering, so steps are cheap
and resets carry the render cost. ``obs["action"]`` is the executed displacement (position_t -
position_{t-1}, zeros after reset) in CONVENTIONS.md's position units.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from assets import Catalog
from envs.fovea import Fovea, GlimpseMixin
from envs.object_scene import ObjectSceneEnv
from envs.scene import DEFAULT_MAX_LOADED_FACES


class SaccadeEnv(GlimpseMixin, ObjectSceneEnv):
    """Look around one view of an object with a fovea.

    Args (besides ObjectSceneEnv's catalog, split, initial_orientation, floor, light_direction,
    light_hue, render_mode, render_size, renderer, max_loaded_faces; latents are drawn per
    episode, as the scene is rendered once):
        scene_size: side in pixels of the rendered scene the fovea moves over.
        glimpse_size, action_mode, max_saccade, grid, initial_fixation, scales, periphery_size:
            the Fovea's (see envs.fovea.Fovea).
    """

    reset_options: ClassVar[tuple[str, ...]] = ("category", "instance", "orientation", "position")

    def __init__(
        self,
        catalog: str | Catalog = "procedural",
        catalog_kwargs: dict[str, Any] | None = None,
        split: str | None = "train",
        scene_size: int = 128,
        glimpse_size: int = 32,
        action_mode: str = "relative",
        max_saccade: float = 0.5,
        grid: int = 5,
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
        self.fovea = Fovea(
            glimpse_size, action_mode, max_saccade, grid, initial_fixation, scales, periphery_size
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
        self.action_space = self.fovea.action_space
        self.observation_space = spaces.Dict(
            {
                **self.fovea.observation_spaces(),
                "action": spaces.Box(-2.0, 2.0, (2,), np.float32),
            }
        )

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        rest = self._reset_object(seed, options)
        rendered = self._render(mask=True)
        self.fovea.set_scene(rendered["view"], rendered["mask"])
        self._start_fixation(rest)
        return self._observe(np.zeros(2)), self._info()

    def _episode_started(self) -> bool:
        return self._spec is not None

    def _info(self) -> dict[str, Any]:
        return self._object_info() | self._fixation_info()
