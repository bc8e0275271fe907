"""What every object env shares: which object, its pose, the lights, and the renderer.

RotateEnv, SaccadeEnv and RotateSaccadeEnv subclass ObjectSceneEnv and add their own actions and
observations; this class owns reset's object/orientation/latent sampling, the lazily created
Scene (so envs pickle and run in worker processes), human rendering and the info keys that
describe the object (CONVENTIONS.md).
"""

from __future__ import annotations

import operator
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from scipy.spatial.transform import Rotation

from assets import Catalog, ObjectSpec, make_catalog
from envs.rotations import IDENTITY, canonical, euler_xyz, quat_inv, sample_3diebench
from envs.scene import DEFAULT_MAX_LOADED_FACES, Lighting, Scene

INITIAL_ORIENTATIONS = ("uniform", "3diebench", "3diebench-ood", "identity")
LATENT_RESAMPLING = ("episode", "step")


def check_choice(name: str, value: Any, valid: tuple) -> None:
    """ValueError naming ``name`` and the valid choices unless ``value`` is one of them."""
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(map(repr, valid))}")


def discrete_index(action: Any, n: int, what: str) -> int:
    """A discrete action as an int in 0..n-1 (ints, numpy ints, 0-d integer arrays), or a
    ValueError naming ``what`` and the valid range."""
    try:
        index = operator.index(action)
    except TypeError:
        index = -1
    if not 0 <= index < n:
        raise ValueError(f"{what} must be an integer in 0..{n - 1}, got {action!r}")
    return index


def check_reset_options(options: dict[str, Any] | None, valid: tuple[str, ...]) -> dict[str, Any]:
    """A copy of reset's ``options``; ValueError listing the valid keys if any is unknown."""
    options = dict(options or {})
    unknown = set(options) - set(valid)
    if unknown:
        raise ValueError(f"unknown reset options {sorted(unknown)}; valid: {', '.join(valid)}")
    return options


def float_vector(value: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    """``value`` as a finite float64 array of ``shape``, or a ValueError naming ``what`` and the
    problem (not a number, complex, wrong shape, NaN or inf) - whatever the caller passed."""
    if np.iscomplexobj(value):
        raise ValueError(f"{what} must be real numbers, got complex values {value!r}")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{what} must be {shape} floats; could not convert {value!r}") from None
    if array.shape != shape:
        raise ValueError(f"{what} must have shape {shape}, got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{what} contains NaN or inf: {array}")
    return array


def unit_quat(q: Any, what: str) -> np.ndarray:
    """``q`` as a unit quaternion, or a ValueError naming ``what`` was wrong with it."""
    q = float_vector(q, (4,), f"{what} (x, y, z, w)")
    norm = np.linalg.norm(q)
    if norm < 1e-6:
        raise ValueError(f"{what} has zero norm: not a rotation")
    return q / norm


class ObjectSceneEnv(gym.Env):
    """Base of the object envs (not registered itself).

    Args:
        catalog: "procedural" (default), "pybullet_data", "meshfolder", or a Catalog instance.
        catalog_kwargs: constructor kwargs of a catalog given by name (e.g. {"root": ...}).
        split: the catalog split objects are drawn from ("train", "val", "test", or None for all).
        initial_orientation: "uniform" on SO(3), "3diebench" (Euler xyz each in [-pi/2, pi/2]),
            "3diebench-ood" (a rotation outside that range) or "identity".
        floor: draw 3DIEBench's floor at z = -1 (its hue is a latent).
        light_direction, light_hue: randomise the light (3DIEBench's spot light theta, phi, hue).
        latents: draw scene latents once per "episode" or at every "step" (3DIEBench-style).
        render_mode: None or "rgb_array" (a ``render_size`` view for humans).
        renderer: "tiny" (CPU) or "egl" (opt-in on GPU machines).
        max_loaded_faces: face budget before the renderer is recycled (bounds memory).
        supersample: k > 1 renders observations with k x k samples per pixel, averaged
            (anti-aliased small views; costs about a k x k larger render).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 4}
    #: reset(options=...) keys; subclasses may add their own.
    reset_options: ClassVar[tuple[str, ...]] = ("category", "instance", "orientation")

    def __init__(
        self,
        scene_size: int,
        catalog: str | Catalog = "procedural",
        catalog_kwargs: dict[str, Any] | None = None,
        split: str | None = "train",
        initial_orientation: str = "uniform",
        floor: bool = False,
        light_direction: bool = False,
        light_hue: bool = False,
        latents: str = "episode",
        render_mode: str | None = None,
        render_size: int = 256,
        renderer: str = "tiny",
        max_loaded_faces: int = DEFAULT_MAX_LOADED_FACES,
        supersample: int = 1,
    ) -> None:
        check_choice("initial_orientation", initial_orientation, INITIAL_ORIENTATIONS)
        if not isinstance(supersample, (int, np.integer)) or not 1 <= supersample <= 8:
            raise ValueError(f"supersample must be an integer in 1..8, got {supersample!r}")
        check_choice("latents", latents, LATENT_RESAMPLING)
        if not isinstance(max_loaded_faces, (int, np.integer)) or max_loaded_faces < 1:
            raise ValueError(f"max_loaded_faces must be an integer >= 1, got {max_loaded_faces!r}")
        check_choice("render_mode", render_mode, (None, *self.metadata["render_modes"]))
        for name, value in (("image_size", scene_size), ("render_size", render_size)):
            if int(value) < 8:
                raise ValueError(f"{name} must be >= 8 pixels, got {value}")
        self.catalog = make_catalog(catalog, **(catalog_kwargs or {}))
        self.split = split
        self.scene_size = int(scene_size)
        self.initial_orientation = initial_orientation
        self.floor = floor
        self.random_light_direction = light_direction
        self.random_light_hue = light_hue
        self.latents = latents
        self.render_mode = render_mode
        self.render_size = int(render_size)
        self.renderer = renderer
        self.max_loaded_faces = max_loaded_faces
        self.supersample = int(supersample)
        self._scene: Scene | None = None
        self._spec: ObjectSpec | None = None
        self._orientation = IDENTITY.copy()
        self._initial_inv = IDENTITY.copy()
        self._lighting = Lighting()
        self._latents = np.full(7, np.nan, dtype=np.float32)

    # -- shared Gymnasium API

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array" or self._spec is None:
            return None
        return self._render(size=self.render_size)["view"]

    def close(self) -> None:
        if self._scene is not None:
            self._scene.close()
            self._scene = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the BulletClient; it is re-created lazily on the next render."""
        state = self.__dict__.copy()
        state["_scene"] = None
        return state

    # -- for subclasses

    @property
    def scene(self) -> Scene:
        """The renderer, created on first use (so the env pickles and runs in async workers)."""
        if self._scene is None:
            self._scene = Scene(self.scene_size, self.floor, self.renderer, self.max_loaded_faces)
        return self._scene

    def _reset_object(self, seed: int | None, options: dict[str, Any] | None) -> dict[str, Any]:
        """Seed, then draw (or pin, from ``options``) the object, orientation and latents.

        Returns the options this class did not consume, for the subclass.
        """
        super().reset(seed=seed)
        options = check_reset_options(options, self.reset_options)
        if "instance" in options:
            if "category" not in options:
                raise ValueError("reset option 'instance' needs 'category' too")
            self._spec = self.catalog.spec(options.pop("category"), options.pop("instance"))
        else:
            self._spec = self.catalog.sample(
                self.np_random, self.split, options.pop("category", None)
            )
        if "orientation" in options:
            orientation = unit_quat(options.pop("orientation"), "option 'orientation'")
        else:
            orientation = self._sample_orientation()
        self._set_orientation(orientation)
        self._initial_inv = quat_inv(self._orientation)
        self._set_lighting(self._sample_lighting())
        return options

    def _set_orientation(self, orientation: np.ndarray) -> None:
        self._orientation = canonical(orientation)  # renormalised: no drift off SO(3)

    def _step_latents(self) -> None:
        """Redraw the scene latents if they change every step."""
        if self.latents == "step":
            self._set_lighting(self._sample_lighting())

    def _sample_orientation(self) -> np.ndarray:
        if self.initial_orientation == "identity":
            return IDENTITY.copy()
        if self.initial_orientation.startswith("3diebench"):
            return sample_3diebench(self.np_random, ood=self.initial_orientation.endswith("ood"))
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

    def _render(
        self, size: int | None = None, depth: bool = False, mask: bool = False
    ) -> dict[str, np.ndarray]:
        spec, catalog = self._spec, self.catalog
        self.scene.show(spec.key, lambda: catalog.build(spec))
        k = self.supersample if size is None else 1  # observations only, not the human view
        return self.scene.render(self._orientation, self._lighting, size, depth, mask, k)

    def _object_info(self) -> dict[str, Any]:
        """The info keys that describe the object and scene (CONVENTIONS.md)."""
        spec = self._spec
        latents = self._latents.copy()
        latents[:3] = euler_xyz(self._orientation)
        return {
            "category": spec.category_index,
            "category_name": spec.category,
            "instance": spec.instance,
            "split": spec.split,
            "orientation": self._orientation.copy(),
            "latents": latents,
        }
