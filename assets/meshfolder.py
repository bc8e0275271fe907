"""Catalogs over folders of real meshes: ShapeNetCore v2, ModelNet, or ``category/*.{obj,...}``.

Loading is defensive because real datasets contain broken and enormous files:

- the face count is read from the file header (OFF, PLY, binary STL, GLB) or counted by streaming
  (OBJ) and an absurd count is rejected *before* the mesh is parsed;
- a missing, empty, unparsable or non-finite mesh raises MeshError naming the file;
- meshes above ``max_faces`` are decimated (quadric decimation, via fast-simplification),
  because the tiny renderer's cost grows with triangles;
- files must lie inside the catalog root (no symlink escapes).

Each instance is one part coloured from the shared palette (the files' own materials are ignored:
the tiny renderer cannot show OBJ/MTL colours anyway, see ANCHORS.md).
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from pathlib import Path

import numpy as np
import trimesh

from assets.catalog import PALETTE, Catalog, Part

MESH_SUFFIXES = (".obj", ".glb", ".stl", ".ply", ".off")
DEFAULT_MAX_FACES = 4_000
DEFAULT_REJECT_FACES = 2_000_000


class MeshError(ValueError):
    """A mesh file that cannot be used; the message names the file and the reason."""


def header_face_count(path: Path) -> int | None:
    """The number of faces a mesh file announces, read without parsing the mesh (None: unknown)."""
    suffix = path.suffix.lower()
    with path.open("rb") as f:
        if suffix == ".off":
            return _off_faces(f.read(4096).decode("latin-1"), path)
        if suffix == ".ply":
            head = f.read(65536).split(b"end_header")[0].decode("latin-1")
            found = re.search(r"^element\s+face\s+(\d+)", head, re.MULTILINE)
            return int(found.group(1)) if found else None
        if suffix == ".stl":
            head = f.read(84)
            if len(head) == 84 and not head.lstrip().startswith(b"solid"):
                return struct.unpack("<I", head[80:84])[0]
            return None
        if suffix == ".glb":
            return _glb_faces(f.read(), path)
        if suffix == ".obj":
            count, tail = 0, b"\n"
            while chunk := f.read(1 << 20):
                count += (tail[-1:] + chunk).count(b"\nf ")
                tail = chunk
            return count
    return None


def _off_faces(text: str, path: Path) -> int:
    lines = [ln.split("#")[0].strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines or not lines[0].upper().startswith("OFF"):
        raise MeshError(f"{path}: not an OFF file (no OFF header)")
    first = lines[0][3:].split()  # ModelNet has files like "OFF490 518 0"
    counts = first if first else (lines[1].split() if len(lines) > 1 else [])
    try:
        return int(counts[1])
    except (IndexError, ValueError):
        raise MeshError(f"{path}: OFF header has no vertex/face counts") from None


def _glb_faces(data: bytes, path: Path) -> int:
    if len(data) < 20 or data[:4] != b"glTF":
        raise MeshError(f"{path}: not a binary glTF file")
    length = struct.unpack("<I", data[12:16])[0]
    try:
        doc = json.loads(data[20 : 20 + length])
        accessors = doc.get("accessors", [])
        total = 0
        for mesh in doc.get("meshes", []):
            for prim in mesh.get("primitives", []):
                ref = prim.get("indices", prim.get("attributes", {}).get("POSITION"))
                total += accessors[ref]["count"] // 3 if ref is not None else 0
        return total
    except (ValueError, KeyError, IndexError, TypeError) as err:
        raise MeshError(f"{path}: corrupt glTF JSON chunk ({err})") from None


def load_mesh(
    path: Path,
    max_faces: int = DEFAULT_MAX_FACES,
    reject_faces: int = DEFAULT_REJECT_FACES,
) -> trimesh.Trimesh:
    """Load one mesh file as a single triangle mesh, checked and decimated to ``max_faces``."""
    path = Path(path)
    if not path.is_file():
        raise MeshError(f"{path}: mesh file is missing")
    if path.stat().st_size == 0:
        raise MeshError(f"{path}: mesh file is empty")
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise MeshError(
            f"{path}: unsupported extension; expected one of {', '.join(MESH_SUFFIXES)}"
        )
    announced = header_face_count(path)
    if announced is not None and announced > reject_faces:
        raise MeshError(
            f"{path}: announces {announced:,} faces, over the limit of {reject_faces:,}; "
            "decimate it offline or raise reject_faces"
        )
    try:
        mesh = trimesh.load(path, force="mesh", process=True)
    except Exception as err:  # trimesh raises many types for corrupt files
        raise MeshError(
            f"{path}: cannot be parsed as a mesh ({type(err).__name__}: {err})"
        ) from None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise MeshError(f"{path}: contains no triangles")
    if not np.isfinite(mesh.vertices).all():
        raise MeshError(f"{path}: has NaN or infinite vertex coordinates")
    if np.ptp(mesh.vertices, axis=0).max() <= 0:
        raise MeshError(f"{path}: is degenerate (zero extent)")
    if len(mesh.faces) > max_faces:
        mesh = mesh.simplify_quadric_decimation(face_count=max_faces)
    return mesh


def palette_colour(seed: int, category: str, instance: int) -> tuple[float, float, float]:
    """A palette colour chosen by hash, for single-part objects."""
    digest = hashlib.blake2b(f"colour:{seed}:{category}:{instance}".encode(), digest_size=4)
    return PALETTE[int.from_bytes(digest.digest(), "little") % len(PALETTE)]


class FileCatalog(Catalog):
    """A catalog whose instances are mesh files: ``files[category][instance]``.

    Subclasses (or callers) fill ``self._files``; this class loads, checks and colours them.
    """

    def __init__(
        self,
        files: dict[str, list[Path]],
        seed: int = 0,
        max_faces: int = DEFAULT_MAX_FACES,
        reject_faces: int = DEFAULT_REJECT_FACES,
    ) -> None:
        super().__init__(seed)
        self._files = {c: list(fs) for c, fs in sorted(files.items()) if fs}
        if not self._files:
            raise ValueError(f"{type(self).__name__} found no mesh files")
        self.max_faces = max_faces
        self.reject_faces = reject_faces

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(self._files)

    def num_instances(self, category: str) -> int:
        return len(self._files[category])

    def path(self, category: str, instance: int) -> Path:
        """The file behind one instance."""
        return self._files[self.category_name(category)][instance]

    def _build_parts(self, category: str, instance: int) -> list[Part]:
        mesh = load_mesh(self.path(category, instance), self.max_faces, self.reject_faces)
        colour = palette_colour(self.seed, category, instance)
        return [Part(np.asarray(mesh.vertices, float), np.asarray(mesh.faces, np.int64), colour)]


class MeshFolderCatalog(FileCatalog):
    """Meshes under a root folder, in one of three layouts (``layout="auto"`` detects it):

    - ``shapenet``: ShapeNetCore v2, ``<synset>/<model id>/models/model_normalized.obj``; category
      names from the root's ``taxonomy.json`` when present, else the synset ids;
    - ``modelnet``: ``<category>/{train,test}/<name>.off`` (ModelNet10/40; our hash split is used,
      not ModelNet's own, so that all catalogs share one split rule);
    - ``generic``: ``<category>/*.{obj,glb,stl,ply,off}``.

    Instances are the files of a category in sorted order. A file is only opened when built.
    """

    name = "meshfolder"

    def __init__(self, root: str | Path, layout: str = "auto", **kwargs) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise ValueError(f"mesh folder {self.root} does not exist or is not a directory")
        layouts = {
            "shapenet": self._scan_shapenet,
            "modelnet": self._scan_modelnet,
            "generic": self._scan_generic,
        }
        if layout == "auto":
            layout = self._detect_layout()
        if layout not in layouts:
            raise ValueError(f"unknown layout {layout!r}; valid: auto, {', '.join(layouts)}")
        self.layout = layout
        files = {c: [self._inside_root(f) for f in fs] for c, fs in layouts[layout]().items()}
        if not any(files.values()):
            raise ValueError(
                f"no mesh files ({', '.join(MESH_SUFFIXES)}) under {self.root} ({layout} layout)"
            )
        super().__init__(files, **kwargs)

    def _inside_root(self, path: Path) -> Path:
        resolved = path.resolve()
        if not resolved.is_relative_to(self.root):
            raise ValueError(f"{path} resolves to {resolved}, outside the catalog root {self.root}")
        return resolved

    def _detect_layout(self) -> str:
        if next(self.root.glob("*/*/models/model_normalized.obj"), None) is not None:
            return "shapenet"
        if next(self.root.glob("*/train/*.off"), None) is not None:
            return "modelnet"
        return "generic"

    def _scan_shapenet(self) -> dict[str, list[Path]]:
        names: dict[str, str] = {}
        taxonomy = self.root / "taxonomy.json"
        if taxonomy.is_file():
            for entry in json.loads(taxonomy.read_text()):
                names[entry["synsetId"]] = entry["name"].split(",")[0].strip()
        files: dict[str, list[Path]] = {}
        for synset in sorted(d for d in self.root.iterdir() if d.is_dir()):
            found = sorted(synset.glob("*/models/model_normalized.obj"))
            if found:
                files.setdefault(names.get(synset.name, synset.name), []).extend(found)
        return files

    def _scan_modelnet(self) -> dict[str, list[Path]]:
        return {
            d.name: sorted(d.glob("train/*.off")) + sorted(d.glob("test/*.off"))
            for d in sorted(self.root.iterdir())
            if d.is_dir()
        }

    def _scan_generic(self) -> dict[str, list[Path]]:
        return {
            d.name: sorted(f for f in d.iterdir() if f.suffix.lower() in MESH_SUFFIXES)
            for d in sorted(self.root.iterdir())
            if d.is_dir()
        }
