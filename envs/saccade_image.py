"""SeqJEPA-SaccadeImage-v0: the glimpse mechanics of Saccade-v0 over 2D images (the paper's
STL-10 setting), from a user's image folder or .npz file (assets.images.ImageSource)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from assets.images import ImageSource
from envs.fovea import Fovea, GlimpseMixin
from envs.object_scene import check_choice, check_reset_options


class SaccadeImageEnv(GlimpseMixin, gym.Env):
    """Look around one image per episode with a fovea.

    Args:
        source: an image folder (one subfolder per class) or an .npz file (images, labels).
        image_size: side the images are centre-cropped and resized to (STL-10: 96).
        split: "train", "val", "test" (hash split, as the object catalogs) or None for all.
        seed: the split seed.
        glimpse_size, action_mode, max_saccade, grid, initial_fixation, scales, periphery_size:
            the Fovea's (see envs.fovea.Fovea).
        render_mode, render_size: "rgb_array" shows the image with the fovea's outline.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 4}
    reset_options: ClassVar[tuple[str, ...]] = ("index", "position")

    def __init__(
        self,
        source: str | Path,
        image_size: int = 96,
        split: str | None = "train",
        seed: int = 0,
        glimpse_size: int = 32,
        action_mode: str = "relative",
        max_saccade: float = 0.5,
        grid: int = 5,
        initial_fixation: str = "centre",
        scales: tuple[int, ...] = (1,),
        periphery_size: int = 0,
        render_mode: str | None = None,
        render_size: int = 256,
    ) -> None:
        check_choice("render_mode", render_mode, (None, *self.metadata["render_modes"]))
        self.fovea = Fovea(
            glimpse_size, action_mode, max_saccade, grid, initial_fixation, scales, periphery_size
        )
        self.images = ImageSource(source, image_size, seed)
        self.split = split
        self._pool = self.images.indices(split)
        if len(self._pool) == 0:
            raise ValueError(f"{source}: no images in split {split!r}")
        self.render_mode = render_mode
        self.render_size = int(render_size)
        self.action_space = self.fovea.action_space
        self.observation_space = spaces.Dict(
            {
                **self.fovea.observation_spaces(),
                "action": spaces.Box(-2.0, 2.0, (2,), np.float32),
            }
        )
        self._index: int | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = check_reset_options(options, self.reset_options)
        if "index" in options:
            self._index = int(options["index"])
        else:
            self._index = int(self._pool[self.np_random.integers(len(self._pool))])
        self.fovea.set_scene(self.images.image(self._index))
        self._start_fixation(options)
        return self._observe(np.zeros(2)), self._info()

    def _episode_started(self) -> bool:
        return self._index is not None

    def _info(self) -> dict[str, Any]:
        label = int(self.images.labels[self._index])
        info = {
            "category": label,
            "category_name": self.images.categories[label],
            "instance": self._index,
            "split": str(self.images.splits[self._index]),
        }
        return info | self._fixation_info()
