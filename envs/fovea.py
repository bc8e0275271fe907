"""The fovea of the glimpse envs: its actions, its position, and what it sees of a scene.

Shared by SeqJEPA-Saccade-v0 (a rendered object), SeqJEPA-SaccadeImage-v0 (a 2D image) and
SeqJEPA-RotateSaccade-v0 (both turning and looking): each gives the Fovea a scene image (and an
object mask where there is one) and asks it to move and look.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from envs.glimpse import GlimpseSampler, saliency_map, to_pixels, to_position
from envs.object_scene import check_choice, discrete_index, float_vector

SACCADE_MODES = ("relative", "absolute", "discrete")
INITIAL_FIXATIONS = ("centre", "uniform", "saliency")


class Fovea:
    """Where the agent looks and what it sees there.

    Args:
        glimpse_size: side of ``view`` (the fovea) in pixels.
        action_mode: "relative" (Box(-1, 1, (2,)) times ``max_saccade``), "absolute" (Box(-1, 1,
            (2,)): the next fixation) or "discrete" (Discrete(grid**2): the centres of a
            grid x grid partition of the scene, row-major from the top-left).
        max_saccade: largest relative move per axis, in position units (the scene is 2 wide).
        grid: cells per side of the discrete fixation grid.
        initial_fixation: "centre", "uniform" (over [-1, 1]^2) or "saliency" (sampled from
            the saliency map).
        scales: glimpse scales; scale s > 1 adds ``view_x{s}``, s*G scene pixels averaged to G.
        periphery_size: side of ``periphery``, the whole scene at low resolution (0: none).
    """

    def __init__(
        self,
        glimpse_size: int = 32,
        action_mode: str = "relative",
        max_saccade: float = 0.5,
        grid: int = 5,
        initial_fixation: str = "centre",
        scales: tuple[int, ...] = (1,),
        periphery_size: int = 0,
    ) -> None:
        check_choice("saccade action_mode", action_mode, SACCADE_MODES)
        check_choice("initial_fixation", initial_fixation, INITIAL_FIXATIONS)
        if int(glimpse_size) < 4:
            raise ValueError(f"glimpse_size must be >= 4 pixels, got {glimpse_size}")
        if not (np.isfinite(max_saccade) and 0 < max_saccade <= 2):
            raise ValueError(f"max_saccade must be in (0, 2], got {max_saccade}")
        if int(grid) < 1:
            raise ValueError(f"grid must be >= 1, got {grid}")
        scales = tuple(int(s) for s in scales)
        if (
            not scales
            or scales[0] != 1
            or any(s < 1 for s in scales)
            or len(set(scales)) < len(scales)
        ):
            raise ValueError(f"scales must start with 1 and be distinct integers, got {scales}")
        if int(periphery_size) < 0:
            raise ValueError(f"periphery_size must be >= 0, got {periphery_size}")
        self.glimpse_size = int(glimpse_size)
        self.action_mode = action_mode
        self.max_saccade = float(max_saccade)
        self.grid = int(grid)
        self.initial_fixation = initial_fixation
        self.scales = scales
        self.periphery_size = int(periphery_size)
        self._sampler: GlimpseSampler | None = None
        self._mask_sampler: GlimpseSampler | None = None
        self._saliency: np.ndarray | None = None
        self._scene: np.ndarray | None = None
        self._mask: np.ndarray | None = None
        self._periphery: np.ndarray | None = None

    # -- spaces

    @property
    def action_space(self) -> spaces.Space:
        if self.action_mode == "discrete":
            return spaces.Discrete(self.grid * self.grid)
        return spaces.Box(-1.0, 1.0, (2,), np.float32)

    def observation_spaces(self) -> dict[str, spaces.Space]:
        g = self.glimpse_size
        out: dict[str, spaces.Space] = {
            "view": spaces.Box(0, 255, (g, g, 3), np.uint8),
            "position": spaces.Box(-1.0, 1.0, (2,), np.float32),
        }
        for s in self.scales[1:]:
            out[f"view_x{s}"] = spaces.Box(0, 255, (g, g, 3), np.uint8)
        if self.periphery_size:
            p = self.periphery_size
            out["periphery"] = spaces.Box(0, 255, (p, p, 3), np.uint8)
        return out

    # -- scene

    def set_scene(self, scene: np.ndarray, mask: np.ndarray | None = None) -> None:
        """A new scene to look at (square uint8 (S, S, 3)); the mask marks the object, if any."""
        if scene.ndim != 3 or scene.shape[0] != scene.shape[1] or scene.shape[2] != 3:
            raise ValueError(f"scene must be a square (S, S, 3) image, got shape {scene.shape}")
        self._scene = scene
        self._mask = mask
        self._sampler = GlimpseSampler(scene, self.glimpse_size, self.scales)
        self._mask_sampler = None if mask is None else GlimpseSampler(mask, self.glimpse_size)
        self._saliency = None  # computed on first use
        self._periphery = None
        if self.periphery_size:
            self._periphery = _area_resize(scene, self.periphery_size)

    @property
    def scene_size(self) -> int:
        return self._scene.shape[0]

    def saliency(self) -> np.ndarray:
        """The current scene's saliency map: float32 (S, S), summing to 1 (see saliency_map)."""
        if self._saliency is None:
            self._saliency = saliency_map(self._scene, self._mask, self.glimpse_size)
        return self._saliency

    # -- moving

    def initial_position(self, rng: np.random.Generator) -> np.ndarray:
        if self.initial_fixation == "centre":
            return np.zeros(2)
        if self.initial_fixation == "uniform":
            return rng.uniform(-1.0, 1.0, 2)
        return sample_from_map(self.saliency(), rng)

    def move(self, action: Any, position: np.ndarray) -> np.ndarray:
        """The next position (clipped to the scene, [-1, 1]^2) after ``action``."""
        if self.action_mode == "discrete":
            index = discrete_index(action, self.grid * self.grid, "discrete saccade")
            row, col = divmod(index, self.grid)
            return (np.array([col, row]) + 0.5) * (2.0 / self.grid) - 1.0
        a = float_vector(action, (2,), "saccade action")
        a = np.clip(a, -1.0, 1.0)  # out-of-range values are clipped, as the Box implies
        target = a if self.action_mode == "absolute" else position + a * self.max_saccade
        return np.clip(target, -1.0, 1.0)

    # -- looking

    def observe(self, position: np.ndarray) -> dict[str, np.ndarray]:
        px = to_pixels(position, self.scene_size)
        out = {
            "view": self._sampler.glimpse(px),
            "position": position.astype(np.float32),
        }
        for s in self.scales[1:]:
            out[f"view_x{s}"] = self._sampler.glimpse(px, s)
        if self._periphery is not None:
            out["periphery"] = self._periphery.copy()
        return out

    def info(self, position: np.ndarray, initial: np.ndarray) -> dict[str, Any]:
        """fixation (pixels, x then y), path_displacement and, with a mask, coverage."""
        px = to_pixels(position, self.scene_size)
        info = {"fixation": px, "path_displacement": position - initial}
        if self._mask_sampler is not None:
            info["coverage"] = float(self._mask_sampler.crop(px).mean())
        return info


def position_option(value: Any) -> np.ndarray:
    """The reset option 'position', validated."""
    position = np.asarray(value, dtype=np.float64)
    if position.shape != (2,) or not np.isfinite(position).all() or np.abs(position).max() > 1:
        raise ValueError(
            f"reset option 'position' must be 2 finite floats in [-1, 1], got {value!r}"
        )
    return position


class GlimpseMixin:
    """What the glimpse envs share: the fixation state, saccade steps, saliency and the human
    render (the scene with the fovea's outline: what the agent looks at, not a fresh render).

    The env provides ``fovea``, ``render_mode``, ``render_size``, ``np_random``,
    ``_episode_started()`` and ``_info()``.
    """

    fovea: Fovea
    _position: np.ndarray
    _initial_position: np.ndarray

    def _start_fixation(self, options: dict[str, Any]) -> None:
        """The first fixation: the 'position' option, else the fovea's initial_fixation rule."""
        if "position" in options:
            self._position = position_option(options["position"])
        else:
            self._position = self.fovea.initial_position(self.np_random)
        self._initial_position = self._position.copy()

    def step(self, action):
        """One saccade (the envs that also turn the object override this)."""
        self._require_episode("step")
        previous = self._position
        self._position = self.fovea.move(action, previous)
        return self._observe(self._position - previous), 0.0, False, False, self._info()

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array" or not self._episode_started():
            return None
        return draw_fovea(self.fovea, self._position, self.render_size)

    def saliency(self) -> np.ndarray:
        """Saliency map of the current scene: float32 (S, S), sums to 1."""
        self._require_episode("saliency")
        return self.fovea.saliency()

    def _require_episode(self, what: str) -> None:
        if not self._episode_started():
            raise RuntimeError(f"{what}() called before reset()")

    def _observe(self, action: np.ndarray) -> dict[str, np.ndarray]:
        observation = self.fovea.observe(self._position)
        observation["action"] = np.asarray(action, dtype=np.float32)
        return observation

    def _fixation_info(self) -> dict[str, Any]:
        return self.fovea.info(self._position, self._initial_position)


def draw_fovea(fovea: Fovea, position: np.ndarray, size: int) -> np.ndarray:
    """The scene with the fovea's outline, upscaled (nearest) to about ``size`` pixels: what a
    person watching the agent wants to see."""
    scene = fovea._scene.copy()
    s = fovea.scene_size
    x, y = to_pixels(position, s)
    half = fovea.glimpse_size / 2
    x0, x1 = (int(np.clip(v, 0, s - 1)) for v in (x - half, x + half - 1))
    y0, y1 = (int(np.clip(v, 0, s - 1)) for v in (y - half, y + half - 1))
    colour = np.array([255, 40, 40], np.uint8)
    scene[y0 : y1 + 1, [x0, x1]] = colour
    scene[[y0, y1], x0 : x1 + 1] = colour
    factor = max(size // s, 1)
    return scene.repeat(factor, 0).repeat(factor, 1)


def sample_from_map(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A position drawn from a (S, S) probability map: a pixel by its mass, then uniformly
    within it."""
    size = probabilities.shape[0]
    flat = probabilities.ravel().astype(np.float64)
    index = rng.choice(flat.size, p=flat / flat.sum())
    row, col = divmod(int(index), size)
    return to_position(np.array([col, row]) + rng.uniform(0, 1, 2), size)


def _area_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Downsample a square image to size x size by area averaging (exact for integer factors,
    nearest-area otherwise)."""
    s = image.shape[0]
    edges = np.linspace(0, s, size + 1).round().astype(int)
    sums = np.add.reduceat(np.add.reduceat(image.astype(np.float64), edges[:-1], 0), edges[:-1], 1)
    counts = np.outer(np.diff(edges), np.diff(edges))[..., None]
    return np.clip(np.rint(sums / counts), 0, 255).astype(np.uint8)
