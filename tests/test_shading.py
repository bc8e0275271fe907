"""Auto-smooth shading: flat across sharp edges, smooth across shallow ones."""

from __future__ import annotations

import numpy as np
import trimesh

from envs.shading import auto_smooth


def test_box_is_flat_shaded_with_24_vertices():
    box = trimesh.creation.box((1, 2, 3))
    vertices, faces, normals = auto_smooth(box.vertices, box.faces)
    assert len(vertices) == 24  # 6 sides x 4 corners: every corner split
    assert np.allclose(np.abs(normals).max(axis=1), 1)  # axis-aligned
    # each face's corners carry that face's own normal
    face_normals = trimesh.Trimesh(vertices, faces, process=False).face_normals
    assert np.allclose(normals[faces], face_normals[:, None, :])


def test_cylinder_side_is_smooth_and_caps_flat():
    cylinder = trimesh.creation.cylinder(radius=1, height=2, sections=16)
    vertices, faces, normals = auto_smooth(cylinder.vertices, cylinder.faces)
    side = np.abs(vertices[:, 2]) > 0.99  # rim vertices: one side and one cap copy each
    horizontal = np.abs(normals[:, 2]) < 1e-9
    assert np.allclose(normals[horizontal][:, :2], vertices[horizontal][:, :2], atol=1e-6)
    assert np.count_nonzero(horizontal & side) == 32  # 16 rim vertices per end, radial normals
    assert np.allclose(np.abs(normals[~horizontal][:, 2]), 1)  # caps point straight up/down
    # same geometry: positions of every face unchanged
    assert np.allclose(vertices[faces], cylinder.vertices[cylinder.faces])


def test_degenerate_faces_get_a_unit_normal():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 1, 0]], float)
    faces = np.array([[0, 1, 2], [0, 1, 3]])
    _, _, normals = auto_smooth(vertices, faces)
    assert np.allclose(np.linalg.norm(normals, axis=1), 1)
