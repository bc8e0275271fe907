"""Catalogs: determinism, splits, geometry, asymmetry, mesh folders and their errors."""

from __future__ import annotations

import json
import struct
from collections import Counter

import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from assets import (
    PALETTE,
    SPLITS,
    MeshError,
    MeshFolderCatalog,
    ProceduralCatalog,
    PybulletDataCatalog,
    load_mesh,
    make_catalog,
)
from assets.meshfolder import header_face_count
from envs.rotate import RotateEnv

CATALOG = ProceduralCatalog()


def geometry(parts) -> tuple[np.ndarray, np.ndarray]:
    """All parts as one mesh: stacked vertices, faces re-indexed into them."""
    offsets = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
    vertices = np.concatenate([p.vertices for p in parts])
    faces = np.concatenate([p.faces + o for p, o in zip(parts, offsets, strict=True)])
    return vertices, faces


def test_at_least_twelve_categories():
    assert len(CATALOG.categories) >= 12
    assert {"airplane", "car", "chair", "table", "mug", "guitar"} <= set(CATALOG.categories)


@pytest.mark.parametrize("category", CATALOG.categories)
def test_every_category_builds_normalised_coloured_low_poly(category):
    for instance in range(5):
        parts = CATALOG.build(CATALOG.spec(category, instance))
        vertices, faces = geometry(parts)
        radius = np.linalg.norm(vertices, axis=1)
        assert radius.max() == pytest.approx(1.0)
        centre = (vertices.min(axis=0) + vertices.max(axis=0)) / 2
        assert np.allclose(centre, 0, atol=1e-9)
        assert 12 <= len(faces) <= 1_500  # render cost grows with triangles
        colours = {p.color for p in parts}
        assert colours <= set(PALETTE) and len(colours) == len(parts) >= 2


def test_instances_are_deterministic_and_seed_dependent():
    spec = CATALOG.spec("chair", 17)
    a = geometry(CATALOG.build(spec))
    b = geometry(ProceduralCatalog().build(spec))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    other_seed = ProceduralCatalog(seed=1)
    c = geometry(other_seed.build(other_seed.spec("chair", 17)))
    assert a[0].shape != c[0].shape or not np.allclose(a[0], c[0])


@pytest.mark.parametrize("category", CATALOG.categories)
def test_intra_class_variation(category):
    extents = [
        np.ptp(geometry(CATALOG.build(CATALOG.spec(category, i)))[0], axis=0) for i in range(8)
    ]
    spread = np.std(np.array(extents), axis=0).max()
    assert spread > 0.03, f"{category} instances barely differ in proportions"


def spread(a: np.ndarray, b: np.ndarray) -> float:
    """How far apart two point sets are: the 98th percentile of nearest-neighbour distances, both
    ways. A percentile, not a mean, so a small displaced part (a drawer, a handle) counts."""
    return max(np.quantile(cKDTree(a).query(b)[0], 0.98), np.quantile(cKDTree(b).query(a)[0], 0.98))


def symmetry_ratio(mesh: trimesh.Trimesh) -> float:
    """How far the closest candidate symmetry is from leaving the shape unchanged, in units of
    the sampling noise (the spread between two independent samplings of the surface).
    Candidates: 2-, 3- and 4-fold turns about the frame axes, which for these axis-aligned
    builders are the axes a symmetric shape would turn about. ~1 means symmetric."""
    points, again = mesh.sample(4000, seed=0), mesh.sample(4000, seed=1)
    turns = [Rotation.from_rotvec(axis * 2 * np.pi / k) for axis in np.eye(3) for k in (2, 3, 4)]
    return min(spread(again, turn.apply(points)) for turn in turns) / spread(points, again)


@pytest.mark.parametrize("category", CATALOG.categories)
def test_shapes_are_not_rotationally_symmetric(category):
    for instance in range(3):
        vertices, faces = geometry(CATALOG.build(CATALOG.spec(category, instance)))
        ratio = symmetry_ratio(trimesh.Trimesh(vertices, faces, process=False))
        assert ratio > 1.5, f"{category} #{instance} looks the same after a turn ({ratio:.2f})"


def test_a_rotationally_symmetric_shape_is_caught():
    """The symmetry test above must be able to fail: a cylinder and a box are caught."""
    assert symmetry_ratio(trimesh.creation.cylinder(0.5, 1.0, sections=64)) < 1.2
    assert symmetry_ratio(trimesh.creation.box((1.0, 0.5, 0.3))) < 1.2


def test_splits_are_reproducible_disjoint_and_80_10_10():
    counts = Counter(CATALOG.split_of("mug", i) for i in range(20_000))
    assert set(counts) == set(SPLITS)
    assert counts["train"] / 20_000 == pytest.approx(0.8, abs=0.015)
    assert counts["val"] / 20_000 == pytest.approx(0.1, abs=0.01)
    assert [CATALOG.split_of("mug", i) for i in range(200)] == [
        ProceduralCatalog().split_of("mug", i) for i in range(200)
    ]
    assert [CATALOG.split_of("mug", i) for i in range(200)] != [
        ProceduralCatalog(seed=9).split_of("mug", i) for i in range(200)
    ]
    train = set(_take(CATALOG.instances("mug", "train"), 300))
    val = set(_take(CATALOG.instances("mug", "val"), 30))
    assert not train & val


def _take(iterator, n):
    return [next(iterator) for _ in range(n)]


def test_sampling_respects_split_and_category():
    rng = np.random.default_rng(0)
    for split in SPLITS:
        for _ in range(50):
            spec = CATALOG.sample(rng, split)
            assert spec.split == split == CATALOG.split_of(spec.category, spec.instance)
    assert CATALOG.sample(rng, "val", category="bed").category == "bed"
    capped = ProceduralCatalog(instances_per_category=10)
    assert all(capped.sample(rng, None).instance < 10 for _ in range(100))
    with pytest.raises(ValueError, match="unknown split"):
        CATALOG.sample(rng, "holdout")


def test_unknown_category_and_instance_errors():
    with pytest.raises(ValueError, match="unknown category 'zebra'.*valid: airplane"):
        CATALOG.spec("zebra", 0)
    with pytest.raises(ValueError, match="unknown category 99"):
        CATALOG.spec(99, 0)
    with pytest.raises(ValueError, match="valid: 0..9"):
        ProceduralCatalog(instances_per_category=10).spec("mug", 10)
    with pytest.raises(ValueError, match="unknown categories"):
        ProceduralCatalog(categories=("mug", "dragon"))
    with pytest.raises(ValueError, match="unknown catalog"):
        make_catalog("objaverse")


# -- mesh folders


def write_meshes(root, layout):
    box, ball = trimesh.creation.box((1, 2, 3)), trimesh.creation.icosphere(2)
    if layout == "generic":
        (root / "boxes").mkdir()
        (root / "balls").mkdir()
        for suffix in ("obj", "stl", "ply", "off", "glb"):
            box.export(root / "boxes" / f"b.{suffix}")
        ball.export(root / "balls" / "a.obj")
        (root / "balls" / "notes.txt").write_text("not a mesh")
    elif layout == "shapenet":
        for synset, mesh in (("02691156", box), ("03797390", ball)):
            folder = root / synset / "model1" / "models"
            folder.mkdir(parents=True)
            mesh.export(folder / "model_normalized.obj")
        taxonomy = [{"synsetId": "02691156", "name": "airplane,aeroplane,plane"}]
        (root / "taxonomy.json").write_text(json.dumps(taxonomy))
    else:
        for category, mesh in (("bathtub", box), ("bowl", ball)):
            for split in ("train", "test"):
                (root / category / split).mkdir(parents=True)
                mesh.export(root / category / split / f"{category}_0001.off")


@pytest.mark.parametrize(
    ("layout", "categories", "counts"),
    [
        ("generic", ("balls", "boxes"), (1, 5)),
        ("shapenet", ("03797390", "airplane"), (1, 1)),
        ("modelnet", ("bathtub", "bowl"), (2, 2)),
    ],
)
def test_mesh_folder_layouts(tmp_path, layout, categories, counts):
    write_meshes(tmp_path, layout)
    catalog = MeshFolderCatalog(tmp_path)
    assert catalog.layout == layout
    assert set(catalog.categories) == set(categories)
    assert [catalog.num_instances(c) for c in categories] == list(counts)
    for category in categories:
        for instance in range(catalog.num_instances(category)):
            parts = catalog.build(catalog.spec(category, instance))
            assert np.linalg.norm(parts[0].vertices, axis=1).max() == pytest.approx(1.0)


def test_all_formats_load_to_the_same_box(tmp_path):
    write_meshes(tmp_path, "generic")
    for path in sorted((tmp_path / "boxes").iterdir()):
        mesh = load_mesh(path)
        assert len(mesh.faces) == 12, path.suffix
        assert np.allclose(np.ptp(mesh.vertices, axis=0), [1, 2, 3]), path.suffix
        assert header_face_count(path) in (12, None), path.suffix


def test_large_meshes_are_decimated(tmp_path):
    trimesh.creation.icosphere(5).export(tmp_path / "big.ply")  # 20,480 faces
    mesh = load_mesh(tmp_path / "big.ply", max_faces=1_000)
    assert 500 <= len(mesh.faces) <= 1_000


def test_pybullet_data_catalog():
    catalog = PybulletDataCatalog()
    assert {"duck", "teddy", "mug", "soccerball", "random_object"} <= set(catalog.categories)
    assert catalog.spec("duck", 0).split == "train"  # single-instance categories
    splits = Counter(catalog.split_of("random_object", i) for i in range(1000))
    assert splits["val"] > 50 and splits["test"] > 50
    parts = catalog.build(catalog.spec("duck", 0))
    assert len(parts[0].faces) <= 4_000


# -- bad meshes


def test_missing_empty_and_corrupt_files_are_named(tmp_path):
    with pytest.raises(MeshError, match=r"nowhere\.obj: mesh file is missing"):
        load_mesh(tmp_path / "nowhere.obj")
    (tmp_path / "empty.obj").write_bytes(b"")
    with pytest.raises(MeshError, match=r"empty\.obj: mesh file is empty"):
        load_mesh(tmp_path / "empty.obj")
    (tmp_path / "junk.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 9")
    with pytest.raises(MeshError, match=r"junk\.ply"):
        load_mesh(tmp_path / "junk.ply")
    (tmp_path / "nofaces.obj").write_text("v 0 0 0\nv 1 0 0\n")
    with pytest.raises(MeshError, match=r"nofaces\.obj: (contains no triangles|cannot be parsed)"):
        load_mesh(tmp_path / "nofaces.obj")
    (tmp_path / "mesh.xyz").write_text("1 2 3")
    with pytest.raises(MeshError, match="unsupported extension"):
        load_mesh(tmp_path / "mesh.xyz")


def test_nan_vertices_are_rejected(tmp_path):
    (tmp_path / "nan.off").write_text("OFF\n3 1 0\n0 0 0\nnan 1 0\n0 1 1\n3 0 1 2\n")
    with pytest.raises(MeshError, match=r"nan\.off: (has NaN|cannot be parsed|contains no)"):
        load_mesh(tmp_path / "nan.off")


@pytest.mark.parametrize("suffix", ["off", "ply", "stl"])
def test_absurd_face_counts_are_rejected_from_the_header(tmp_path, suffix):
    """A header announcing 10 million faces is refused before parsing; the file itself is tiny."""
    path = tmp_path / f"huge.{suffix}"
    if suffix == "off":
        path.write_text("OFF\n3 10000000 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
    elif suffix == "ply":
        path.write_text(
            "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
            "property float z\nelement face 10000000\nproperty list uchar int vertex_indices\n"
            "end_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n"
        )
    else:
        path.write_bytes(b"\0" * 80 + struct.pack("<I", 10_000_000) + b"\0" * 50)
    with pytest.raises(MeshError, match="announces 10,000,000 faces"):
        load_mesh(path)


def test_files_outside_the_root_are_rejected(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    trimesh.creation.box().export(outside / "secret.obj")
    root = tmp_path / "root"
    (root / "boxes").mkdir(parents=True)
    (root / "boxes" / "link.obj").symlink_to(outside / "secret.obj")
    with pytest.raises(ValueError, match="outside the catalog root"):
        MeshFolderCatalog(root)


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        MeshFolderCatalog(tmp_path / "nope")
    (tmp_path / "cats").mkdir()
    with pytest.raises(ValueError, match="no mesh files"):
        MeshFolderCatalog(tmp_path)


def test_non_manifold_meshes_load_and_render(tmp_path):
    """A triangle soup (three faces on one edge, a dangling face, a duplicate) is not a closed
    surface, but the renderer draws triangles: it loads as it is, and it renders."""
    (tmp_path / "soup.obj").write_text(
        "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 -1 0\nv 0 0 1\nv 3 3 3\nv 4 3 3\nv 3 4 3\n"
        "f 1 2 3\nf 1 2 4\nf 1 2 5\nf 6 7 8\nf 1 2 3\n"
    )
    mesh = load_mesh(tmp_path / "soup.obj")
    assert not mesh.is_watertight and len(mesh.faces) >= 4
    root = tmp_path / "root"
    (root / "soups").mkdir(parents=True)
    (tmp_path / "soup.obj").rename(root / "soups" / "soup.obj")
    env = RotateEnv(catalog=MeshFolderCatalog(root), split=None, image_size=24)
    obs, _ = env.reset(seed=0)
    assert obs["view"].std() > 0  # something was drawn
    env.close()
