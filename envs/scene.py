"""One PyBullet client that shows one object at a time, under 3DIEBench's camera, lights and floor.

Design, and why:

- One ``BulletClient`` per Scene (p.DIRECT: headless). The tiny renderer is the default; EGL is an
  opt-in for GPU machines. Under EGL in-memory meshes do not render (ANCHORS.md), so shapes are
  written to OBJ files in a private temp folder and loaded from there.
- Each object instance becomes one multibody with one link per coloured part; the colour is baked
  into the visual shape. Every instance loaded stays in the client, hidden by alpha 0 when another
  one is shown (measured: hidden bodies cost no render time, and showing one is two
  changeVisualShape calls instead of a body creation).
- Memory: PyBullet frees a visual shape only when the client disconnects (measured: ~0.3-1.5 KiB
  per face, never returned by removeBody; disconnecting returns it). So the Scene counts the faces
  it has loaded and, when the next instance would exceed ``max_loaded_faces``, disconnects and
  starts a fresh client. Memory is therefore bounded by that budget whatever the number of
  distinct instances; the cost is one reconnect (~10 ms) per budget's worth of new instances.
"""

from __future__ import annotations

import colorsys
import ctypes
import pkgutil
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pybullet as p
import trimesh
from pybullet_utils.bullet_client import BulletClient

from assets.catalog import Part
from envs.shading import auto_smooth

# 3DIEBench camera: distance 2.5 from the origin, polar angle pi/4, looking at the origin.
CAMERA_DISTANCE = 2.5
CAMERA_POLAR = np.pi / 4
# The narrowest field of view that keeps the unit sphere (any orientation of any object) in frame:
# 2 * asin(1 / 2.5) = 47.2 degrees, rounded up.
CAMERA_FOV_DEG = 48.0
FLOOR_Z = -1.0
LIGHT_DISTANCE = 4.0
#: Camera frame axes in world coordinates (OpenGL: x right, y up, z toward the viewer), as the
#: columns of the camera-to-world rotation C (CONVENTIONS.md).
CAMERA_TO_WORLD = np.array(
    [
        [1.0, 0.0, 0.0],
        [0.0, np.cos(CAMERA_POLAR), -np.sin(CAMERA_POLAR)],
        [0.0, np.sin(CAMERA_POLAR), np.cos(CAMERA_POLAR)],
    ]
)
CAMERA_EYE = CAMERA_DISTANCE * CAMERA_TO_WORLD[:, 2]
RENDERERS = ("tiny", "egl")
#: Face budget of one client before it is recycled. Measured ~2 KiB of resident memory per loaded
#: face (pybullet's copies plus the tiny renderer's), so ~100 MiB per env at this default.
DEFAULT_MAX_LOADED_FACES = 50_000
_HIDDEN = (1.0, 1.0, 1.0, 0.0)


@dataclass(frozen=True)
class Lighting:
    """Scene latents other than the pose. None marks a latent that is switched off."""

    floor_hue: float | None = None
    light_theta: float | None = None
    light_phi: float | None = None
    light_hue: float | None = None

    def as_array(self) -> np.ndarray:
        """[floor_hue, light_theta, light_phi, light_hue], NaN where switched off."""
        values = (self.floor_hue, self.light_theta, self.light_phi, self.light_hue)
        return np.array([np.nan if v is None else v for v in values], dtype=np.float32)


# Light used when the light latents are off: from above and a little to the front-left.
DEFAULT_LIGHT_THETA = np.pi / 8
DEFAULT_LIGHT_PHI = -3 * np.pi / 4


def _hsv(hue: float, saturation: float, value: float) -> list[float]:
    return list(colorsys.hsv_to_rgb(hue % 1.0, saturation, value))


def create_mesh_shape(
    client: BulletClient,
    vertices: np.ndarray,
    faces: np.ndarray,
    normals: np.ndarray,
    rgba: Sequence[float],
) -> int:
    """``createVisualShape`` of an in-memory mesh, without pybullet 3.2.7's reference leak.

    pybullet's C wrapper takes two references to every list it reads from ``vertices``,
    ``indices`` and ``normals`` and never releases them, so the lists and their numbers are never
    freed (measured: ~90 KiB of Python objects per 130-vertex part, kept even after disconnect;
    numpy arguments leak more, as fresh lists of fresh scalars). We count each list's references
    before and after the call and release exactly that known leak - only when the count rose by
    exactly 2, so a pybullet that stops leaking (or leaks differently) is left alone.
    """
    vertex_rows, normal_rows = vertices.tolist(), normals.tolist()
    indices = faces.ravel().tolist()
    lists = [vertex_rows, normal_rows, indices, *vertex_rows, *normal_rows]
    before = [sys.getrefcount(obj) for obj in lists]
    shape = client.createVisualShape(
        p.GEOM_MESH, vertices=vertex_rows, indices=indices, normals=normal_rows, rgbaColor=rgba
    )
    after = [sys.getrefcount(obj) for obj in lists]  # measured exactly as `before` was
    if all(a - b == _PYBULLET_LEAKED_REFS for a, b in zip(after, before, strict=True)):
        for obj in lists:
            for _ in range(_PYBULLET_LEAKED_REFS):
                ctypes.pythonapi.Py_DecRef(ctypes.py_object(obj))
    return shape


_PYBULLET_LEAKED_REFS = 2


@dataclass
class _Loaded:
    body: int
    links: list[int]  # -1 for the base, then 0..n-2
    colours: list[tuple[float, float, float, float]]


class Scene:
    """Renders one object of unit size at a given orientation, with lights and an optional floor.

    Args:
        image_size: default side of rendered views, in pixels.
        floor: draw 3DIEBench's floor plane at z = -1.
        renderer: "tiny" (CPU, default) or "egl" (GPU machines; needs a working EGL driver).
        max_loaded_faces: face budget of loaded shapes before the client is recycled (memory bound).
    """

    def __init__(
        self,
        image_size: int = 64,
        floor: bool = False,
        renderer: str = "tiny",
        max_loaded_faces: int = DEFAULT_MAX_LOADED_FACES,
    ) -> None:
        if renderer not in RENDERERS:
            raise ValueError(f"unknown renderer {renderer!r}; valid: {', '.join(RENDERERS)}")
        if int(image_size) < 1:
            raise ValueError(f"image_size must be >= 1, got {image_size}")
        self.image_size = int(image_size)
        self.floor = floor
        self.renderer = renderer
        self.max_loaded_faces = int(max_loaded_faces)
        self.reconnects = 0
        self._mesh_dir: Path | None = None
        self._mesh_files = 0
        self._client: BulletClient | None = None
        self._connect()

    # -- client lifecycle

    def _connect(self) -> None:
        self._client = BulletClient(connection_mode=p.DIRECT)
        self._loaded: dict[tuple, _Loaded] = {}
        self._faces = 0
        self._current: tuple | None = None
        self._floor_body: int | None = None
        self._floor_hue: float | None = None
        self._render_flag = p.ER_TINY_RENDERER
        self._args_key: tuple | None = None
        self._args: dict = {}
        if self.renderer == "egl":
            self._load_egl()
        self._view = self._client.computeViewMatrix(
            CAMERA_EYE.tolist(), [0, 0, 0], CAMERA_TO_WORLD[:, 1].tolist()
        )
        self._projection = self._client.computeProjectionMatrixFOV(CAMERA_FOV_DEG, 1.0, 0.1, 10.0)
        if self.floor:
            shape = self._client.createVisualShape(p.GEOM_BOX, halfExtents=[4, 4, 0.01])
            self._floor_body = self._client.createMultiBody(
                baseVisualShapeIndex=shape, basePosition=[0, 0, FLOOR_Z - 0.01]
            )

    def _load_egl(self) -> None:
        egl = pkgutil.get_loader("eglRenderer")
        if egl is None:
            raise RuntimeError(
                "renderer='egl' needs pybullet's eglRenderer plugin, which is not installed"
            )
        if self._client.loadPlugin(egl.get_filename(), "_eglRendererPlugin") < 0:
            raise RuntimeError(
                "renderer='egl': the eglRenderer plugin failed to load (no EGL driver?)"
            )
        self._render_flag = p.ER_BULLET_HARDWARE_OPENGL
        self._mesh_dir = Path(tempfile.mkdtemp(prefix="seqjepa_gym_meshes_"))

    def _recycle(self) -> None:
        """Disconnect and start over: the only way PyBullet returns the memory of visual shapes."""
        self._client.disconnect()
        self.reconnects += 1
        self._connect()

    def close(self) -> None:
        """Release the client (and EGL's mesh files). Safe to call twice."""
        if self._client is not None:
            self._client.disconnect()
            self._client = None
        if self._mesh_dir is not None:
            shutil.rmtree(self._mesh_dir, ignore_errors=True)
            self._mesh_dir = None

    @property
    def loaded_faces(self) -> int:
        """Faces of the shapes the current client holds (what max_loaded_faces bounds)."""
        return self._faces

    # -- objects

    def show(self, key: tuple, build: Callable[[], Sequence[Part]]) -> None:
        """Make the object ``key`` the visible one, building and loading it on first use."""
        if key == self._current:
            return
        if key not in self._loaded:
            parts = build()
            faces = sum(len(part.faces) for part in parts)
            if self._loaded and self._faces + faces > self.max_loaded_faces:
                self._recycle()
            self._loaded[key] = self._load(parts)
            self._faces += faces
        if self._current is not None:
            self._set_colours(self._loaded[self._current], hidden=True)
        self._set_colours(self._loaded[key], hidden=False)
        self._current = key

    def _load(self, parts: Sequence[Part]) -> _Loaded:
        shapes = [self._visual_shape(part) for part in parts]
        n = len(shapes) - 1
        body = self._client.createMultiBody(
            baseVisualShapeIndex=shapes[0],
            linkMasses=[0.0] * n,
            linkCollisionShapeIndices=[-1] * n,
            linkVisualShapeIndices=shapes[1:],
            linkPositions=[[0, 0, 0]] * n,
            linkOrientations=[[0, 0, 0, 1]] * n,
            linkInertialFramePositions=[[0, 0, 0]] * n,
            linkInertialFrameOrientations=[[0, 0, 0, 1]] * n,
            linkParentIndices=[0] * n,
            linkJointTypes=[p.JOINT_FIXED] * n,
            linkJointAxis=[[0, 0, 1]] * n,
        )
        return _Loaded(body, list(range(-1, n)), [(*part.color, 1.0) for part in parts])

    def _visual_shape(self, part: Part) -> int:
        # Split vertices only along sharp edges: boxes look flat, cylinders smooth, and fewer
        # vertices than fully flat shading means less memory per shape.
        vertices, faces, normals = auto_smooth(part.vertices, part.faces)
        rgba = [*part.color, 1.0]
        if self._mesh_dir is not None:  # EGL: in-memory meshes do not render there
            # Unique names: pybullet caches OBJ files by path for the life of the process.
            self._mesh_files += 1
            path = self._mesh_dir / f"shape_{self._mesh_files}.obj"
            mesh = trimesh.Trimesh(vertices, faces, vertex_normals=normals, process=False)
            mesh.export(path, include_normals=True)
            return self._client.createVisualShape(p.GEOM_MESH, fileName=str(path), rgbaColor=rgba)
        return create_mesh_shape(self._client, vertices, faces, normals, rgba)

    def _set_colours(self, loaded: _Loaded, hidden: bool) -> None:
        for link, colour in zip(loaded.links, loaded.colours, strict=True):
            self._client.changeVisualShape(
                loaded.body, link, rgbaColor=_HIDDEN if hidden else colour
            )

    # -- rendering

    def camera_args(self, lighting: Lighting, size: int, mask: bool = False) -> dict:
        """The exact getCameraImage arguments of a render (the bare-render benchmark uses them)."""
        theta = DEFAULT_LIGHT_THETA if lighting.light_theta is None else lighting.light_theta
        phi = DEFAULT_LIGHT_PHI if lighting.light_phi is None else lighting.light_phi
        light_dir = LIGHT_DISTANCE * np.array(
            [np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)]
        )
        hue = lighting.light_hue
        return {
            "width": size,
            "height": size,
            "viewMatrix": self._view,
            "projectionMatrix": self._projection,
            "lightDirection": light_dir.tolist(),
            "lightColor": [1.0, 1.0, 1.0] if hue is None else _hsv(hue, 0.4, 1.0),
            "lightAmbientCoeff": 0.45,
            "lightDiffuseCoeff": 0.6,
            "lightSpecularCoeff": 0.05,
            "renderer": self._render_flag,
            "flags": 0 if mask else p.ER_NO_SEGMENTATION_MASK,
        }

    @property
    def client(self) -> BulletClient:
        """The underlying BulletClient (for benchmarks and debugging; recycling replaces it)."""
        return self._client

    @property
    def body(self) -> int:
        """Body id of the object shown now."""
        return self._loaded[self._current].body

    def render(
        self,
        orientation: Sequence[float],
        lighting: Lighting = Lighting(),
        size: int | None = None,
        depth: bool = False,
        mask: bool = False,
        supersample: int = 1,
    ) -> dict[str, np.ndarray]:
        """Render the shown object at ``orientation`` (xyzw, object to world).

        Returns {"view": uint8 (H, W, 3)} plus, on request, "depth" (float32 (H, W), distance along
        the camera axis in scene units) and "mask" (uint8 (H, W), 1 where the object is).
        ``supersample`` k > 1 renders k x k samples per pixel and averages the colours
        (anti-aliasing: the tiny renderer takes one sample per pixel, so thin parts flicker in and
        out of small views); depth and mask take each pixel's centre sample.
        """
        if self._current is None:
            raise RuntimeError("Scene.render called before Scene.show")
        size = size or self.image_size
        if supersample > 1:
            out = self.render(orientation, lighting, size * supersample, depth, mask)
            k, centre = supersample, supersample // 2
            blocks = out.pop("view").reshape(size, k, size, k, 3)
            view = (blocks.mean(axis=(1, 3), dtype=np.float32) + 0.5).astype(np.uint8)
            return {"view": view, **{key: a[centre::k, centre::k] for key, a in out.items()}}
        client = self._client
        loaded = self._loaded[self._current]
        client.resetBasePositionAndOrientation(loaded.body, [0, 0, 0], orientation)
        if self._floor_body is not None and lighting.floor_hue != self._floor_hue:
            colour = (
                _hsv(lighting.floor_hue, 0.6, 0.6) if lighting.floor_hue is not None else [0.6] * 3
            )
            client.changeVisualShape(self._floor_body, -1, rgbaColor=[*colour, 1.0])
            self._floor_hue = lighting.floor_hue
        key = (lighting, size, mask)
        if self._args_key != key:  # lighting changes at most once per step: build args once
            self._args, self._args_key = self.camera_args(lighting, size, mask), key
        _, _, rgba, zbuf, seg = client.getCameraImage(**self._args)
        # A view into the fresh RGBA buffer pybullet allocated for this call: no copy (a copy of
        # the strided RGB channels costs ~15 us, 4% of a 64 px render), nothing aliased.
        out = {"view": rgba[..., :3]}
        if depth:
            near, far = 0.1, 10.0
            out["depth"] = (far * near / (far - (far - near) * zbuf)).astype(np.float32)
        if mask:
            out["mask"] = (seg == loaded.body).astype(np.uint8)
        return out
