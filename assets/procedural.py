"""A procedural catalog of ShapeNet-like categories, built from trimesh primitives.

Each category is one small function ``(rng) -> [(mesh, colour role), ...]``. The rng is seeded from
(catalog seed, category, instance), so an instance is the same in every process. Proportions, part
counts and optional parts vary within a category; every category has an element that breaks
rotational symmetry (a drawer, a handle, an offset arm, a closed back...), so that orientations can
be told apart. Colours: each colour role of an instance gets a distinct colour from the one shared
PALETTE, so colour never names the category.

Axes while building: x is the object's "front", y its width, z up. Meshes stay low-poly (cylinders
of 16 sections) because the tiny renderer's cost grows with triangles.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import trimesh
from scipy.spatial.transform import Rotation

from assets.catalog import PALETTE, Catalog, Part

Builder = Callable[[np.random.Generator], list[tuple[trimesh.Trimesh, int]]]
SECTIONS = 16


# -- primitives


def _placed(mesh: trimesh.Trimesh, at, rotvec=None) -> trimesh.Trimesh:
    if rotvec is not None:
        mesh.apply_transform(_rot4(rotvec))
    mesh.apply_translation(at)
    return mesh


def _rot4(rotvec) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    return m


_AXIS_TO_ROTVEC = {"x": (0, np.pi / 2, 0), "y": (np.pi / 2, 0, 0), "z": None}


def box(size, at=(0, 0, 0), rotvec=None) -> trimesh.Trimesh:
    return _placed(trimesh.creation.box(extents=size), at, rotvec)


def cylinder(radius, height, at=(0, 0, 0), axis="z", sections=SECTIONS) -> trimesh.Trimesh:
    mesh = trimesh.creation.cylinder(radius=radius, height=height, sections=sections)
    return _placed(mesh, at, _AXIS_TO_ROTVEC[axis])


def cone(radius, height, at=(0, 0, 0), rotvec=None) -> trimesh.Trimesh:
    """A cone with its base at ``at`` pointing +z (before ``rotvec``)."""
    return _placed(
        trimesh.creation.cone(radius=radius, height=height, sections=SECTIONS), at, rotvec
    )


def sphere(radius, at=(0, 0, 0)) -> trimesh.Trimesh:
    return _placed(trimesh.creation.icosphere(subdivisions=1, radius=radius), at)


def torus(major, minor, at=(0, 0, 0), axis="z") -> trimesh.Trimesh:
    mesh = trimesh.creation.torus(major, minor, major_sections=16, minor_sections=8)
    return _placed(mesh, at, _AXIS_TO_ROTVEC[axis])


# -- categories


def airplane(rng: np.random.Generator):
    length, radius = rng.uniform(1.6, 2.2), rng.uniform(0.09, 0.15)
    span, chord = rng.uniform(1.4, 2.2), rng.uniform(0.25, 0.45)
    wing_x = rng.uniform(-0.1, 0.2)
    parts = [
        (cylinder(radius, length, axis="x"), 0),
        (cone(radius, rng.uniform(0.2, 0.4), (length / 2, 0, 0), (0, np.pi / 2, 0)), 0),
        (box((chord, span, 0.04), (wing_x, 0, -radius * 0.3)), 1),
        (box((0.18, span * 0.35, 0.03), (-length / 2 + 0.1, 0, 0)), 2),
        (box((0.22, 0.03, rng.uniform(0.25, 0.4)), (-length / 2 + 0.1, 0, radius + 0.12)), 2),
    ]
    engines = int(rng.choice([0, 2, 4]))
    for k in range(engines):
        side = 1 if k % 2 else -1
        y = side * span * (0.22 if k < 2 else 0.38)
        parts.append((cylinder(0.06, 0.3, (wing_x + 0.05, y, -radius - 0.05), axis="x"), 3))
    return parts


def car(rng: np.random.Generator):
    length, width, height = rng.uniform(1.6, 2.2), rng.uniform(0.7, 0.9), rng.uniform(0.3, 0.45)
    wheel_r = rng.uniform(0.14, 0.2)
    cabin_len = length * rng.uniform(0.35, 0.55)
    parts = [
        (box((length, width, height), (0, 0, wheel_r)), 0),
        (
            box(
                (cabin_len, width * 0.85, height * rng.uniform(0.7, 1.0)),
                (-length * rng.uniform(0.05, 0.2), 0, wheel_r + height * 0.9),
            ),
            1,
        ),
    ]
    for x in (length * 0.32, -length * 0.32):
        for y in (width / 2, -width / 2):
            parts.append((cylinder(wheel_r, 0.12, (x, y, wheel_r * 0.6), axis="y"), 2))
    if rng.random() < 0.5:  # spoiler at the back
        parts.append((box((0.12, width * 0.9, 0.04), (-length / 2, 0, wheel_r + height * 0.9)), 3))
    parts.append((box((0.04, width * 0.7, 0.08), (length / 2, 0, wheel_r + 0.05)), 3))  # grille
    return parts


def chair(rng: np.random.Generator):
    seat, height = rng.uniform(0.8, 1.1), rng.uniform(0.7, 1.0)
    back = rng.uniform(0.8, 1.3)
    leg = rng.uniform(0.05, 0.09)
    parts = [(box((seat, seat, 0.1), (0, 0, height)), 0)]
    for x in (seat / 2 - leg, -seat / 2 + leg):
        for y in (seat / 2 - leg, -seat / 2 + leg):
            parts.append((box((leg, leg, height), (x, y, height / 2)), 1))
    parts.append((box((0.08, seat, back), (-seat / 2, 0, height + back / 2)), 2))
    if rng.random() < 0.5:  # armrests
        for y in (seat / 2, -seat / 2):
            parts.append((box((seat * 0.8, 0.07, 0.06), (0, y, height + 0.3)), 2))
    return parts


def table(rng: np.random.Generator):
    length, width = rng.uniform(1.4, 2.0), rng.uniform(0.7, 1.1)
    height, leg = rng.uniform(0.8, 1.1), rng.uniform(0.06, 0.1)
    parts = [(box((length, width, 0.08), (0, 0, height)), 0)]
    if rng.random() < 0.3:  # pedestal table
        parts.append((cylinder(0.1, height, (0, 0, height / 2)), 1))
        parts.append((box((length * 0.6, width * 0.6, 0.06), (0, 0, 0.03)), 1))
    else:
        for x in (length / 2 - leg, -length / 2 + leg):
            for y in (width / 2 - leg, -width / 2 + leg):
                parts.append((box((leg, leg, height), (x, y, height / 2)), 1))
    # A drawer block hangs under one end only: it breaks the table's 180-degree symmetry.
    block = length * rng.uniform(0.25, 0.35)
    drop = height * rng.uniform(0.25, 0.4)
    parts.append(
        (box((block, width * 0.8, drop), (length / 2 - leg - block / 2, 0, height - drop / 2)), 2)
    )
    if rng.random() < 0.4:  # lower shelf
        parts.append((box((length * 0.85, width * 0.85, 0.04), (0, 0, height * 0.25)), 0))
    return parts


def lamp(rng: np.random.Generator):
    height, reach = rng.uniform(1.2, 1.8), rng.uniform(0.3, 0.7)
    base = (
        cylinder(rng.uniform(0.2, 0.3), 0.08, (0, 0, 0.04))
        if rng.random() < 0.5
        else box((0.5, 0.4, 0.08), (0, 0, 0.04))
    )
    shade_r = rng.uniform(0.15, 0.3)
    shade_h = shade_r * 1.3
    return [
        (base, 0),
        (cylinder(0.035, height, (0, 0, height / 2)), 1),
        (box((reach, 0.05, 0.05), (reach / 2, 0, height)), 1),
        (
            cone(
                shade_r, shade_h, (reach, 0, height - shade_h + 0.03), (0, rng.uniform(0, 0.5), 0)
            ),
            2,
        ),
        (sphere(0.06, (0, 0, height)), 2),
    ]


def mug(rng: np.random.Generator):
    radius, height = rng.uniform(0.3, 0.45), rng.uniform(0.6, 1.0)
    handle, flare = rng.uniform(0.2, 0.3), rng.uniform(1.1, 1.3)
    # The body widens toward the rim and the handle sits high: upside down it looks different.
    body = cylinder(radius, height, (0, 0, height / 2))
    top = body.vertices[:, 2] > height / 2
    body.vertices[top, :2] *= flare
    parts = [
        (body, 0),
        (cylinder(radius * flare * 0.85, 0.02, (0, 0, height + 0.005)), 2),  # the opening
        (torus(handle, 0.06, (radius * 1.1 + handle * 0.6, 0, height * 0.62), axis="y"), 1),
    ]
    if rng.random() < 0.4:  # saucer
        parts.append((cylinder(radius * 1.6, 0.04, (0, 0, -0.02)), 1))
    return parts


def bottle(rng: np.random.Generator):
    radius, body = rng.uniform(0.2, 0.32), rng.uniform(0.7, 1.1)
    neck_r, neck = radius * rng.uniform(0.3, 0.45), rng.uniform(0.25, 0.45)
    shoulder = rng.uniform(0.15, 0.3)
    top = body + shoulder
    # A flask: the body is flattened along y, the neck sits off-axis toward +x and the label is
    # on the +x face, so no turn about the bottle's axis maps it onto itself.
    flat = np.diag([1.0, rng.uniform(0.55, 0.8), 1.0, 1.0])
    shoulder_cone = trimesh.creation.cone(radius=radius, height=shoulder * 1.6, sections=SECTIONS)
    neck_x = radius * rng.uniform(0.25, 0.45)
    parts = [
        (cylinder(radius, body, (0, 0, body / 2)).apply_transform(flat), 0),
        (shoulder_cone.apply_translation((0, 0, body)).apply_transform(flat), 0),
        (cylinder(neck_r, neck + shoulder, (neck_x, 0, top + (neck - shoulder) / 2)), 0),
        (cylinder(neck_r * 1.2, 0.08, (neck_x, 0, top + neck)), 1),
        (box((0.04, radius * 0.9, body * 0.5), (radius, 0, body * 0.5)), 2),
    ]
    if rng.random() < 0.35:  # jug handle
        parts.append((torus(0.15, 0.035, (-radius - 0.05, 0, body * 0.7), axis="y"), 1))
    return parts


def bench(rng: np.random.Generator):
    length, depth = rng.uniform(1.6, 2.4), rng.uniform(0.4, 0.6)
    height = rng.uniform(0.45, 0.7)
    parts = [(box((depth, length, 0.08), (0, 0, height)), 0)]
    if rng.random() < 0.5:  # slab legs
        for y in (length / 2 - 0.1, -length / 2 + 0.1):
            parts.append((box((depth * 0.9, 0.08, height), (0, y, height / 2)), 1))
    else:
        for y in (length / 2 - 0.1, -length / 2 + 0.1):
            for x in (depth / 2 - 0.05, -depth / 2 + 0.05):
                parts.append((cylinder(0.04, height, (x, y, height / 2)), 1))
    back = rng.uniform(0.3, 0.6)
    slats = int(rng.integers(1, 4))
    for k in range(slats):
        z = height + 0.1 + (k + 0.5) * back / slats
        parts.append((box((0.05, length, back / slats * 0.6), (-depth / 2, 0, z)), 2))
    parts.append(
        (box((0.05, 0.06, back + 0.1), (-depth / 2, length / 2 - 0.1, height + back / 2)), 1)
    )
    return parts


def sofa(rng: np.random.Generator):
    length, depth, seat_h = rng.uniform(1.8, 2.6), rng.uniform(0.8, 1.0), rng.uniform(0.35, 0.5)
    back_h, arm_h = rng.uniform(0.4, 0.7), rng.uniform(0.15, 0.35)
    parts = [
        (box((depth, length, seat_h), (0, 0, seat_h / 2)), 0),
        (box((0.2, length, seat_h + back_h), (-depth / 2 + 0.1, 0, (seat_h + back_h) / 2)), 0),
    ]
    for y in (length / 2 + 0.08, -length / 2 - 0.08):
        parts.append((box((depth, 0.16, seat_h + arm_h), (0, y, (seat_h + arm_h) / 2)), 1))
    cushions = int(rng.integers(1, 4))
    width = (length - 0.1) / cushions
    for k in range(cushions):
        y = -length / 2 + 0.05 + (k + 0.5) * width
        parts.append((box((depth - 0.25, width - 0.04, 0.12), (0.1, y, seat_h + 0.06)), 2))
    return parts


def bed(rng: np.random.Generator):
    length, width, height = rng.uniform(2.0, 2.4), rng.uniform(1.0, 1.8), rng.uniform(0.3, 0.45)
    parts = [
        (box((length, width, height), (0, 0, height / 2)), 0),
        (box((length - 0.1, width - 0.1, 0.18), (0, 0, height + 0.09)), 1),
        (box((0.1, width, height + rng.uniform(0.5, 0.9)), (-length / 2, 0, height)), 0),
    ]
    if rng.random() < 0.5:  # footboard
        parts.append((box((0.08, width, height + 0.2), (length / 2, 0, (height + 0.2) / 2)), 0))
    pillows = int(rng.integers(1, 3))
    for k in range(pillows):
        y = (k + 0.5) * width / pillows - width / 2
        parts.append(
            (box((0.3, width / pillows - 0.1, 0.12), (-length / 2 + 0.3, y, height + 0.24)), 2)
        )
    return parts


def bookshelf(rng: np.random.Generator):
    width, height, depth = rng.uniform(0.8, 1.4), rng.uniform(1.4, 2.2), rng.uniform(0.3, 0.45)
    shelves = int(rng.integers(2, 6))
    t = 0.05
    parts = [
        (box((depth, t, height), (0, width / 2, height / 2)), 0),
        (box((depth, t, height), (0, -width / 2, height / 2)), 0),
        (box((depth, width, t), (0, 0, height)), 0),
        (box((depth, width, t), (0, 0, 0)), 0),
        (box((0.02, width, height), (-depth / 2, 0, height / 2)), 1),  # closed back, open front
    ]
    gap = height / (shelves + 1)
    for k in range(1, shelves + 1):
        parts.append((box((depth, width, t * 0.6), (0, 0, k * gap)), 0))
    # Cabinet doors close the bottom compartment's front: no upside-down (180 deg about x) twin.
    parts.append((box((0.03, width, gap), (depth / 2, 0, gap / 2)), 1))
    for k in range(shelves + 1):  # books on most shelves, pushed to one end
        if k == 0 or rng.random() < 0.6:
            books = rng.uniform(0.2, 0.7) * width
            parts.append(
                (
                    box(
                        (depth * 0.7, books, gap * 0.7),
                        (0, -width / 2 + books / 2 + t, k * gap + gap * 0.38),
                    ),
                    2,
                )
            )
    return parts


def guitar(rng: np.random.Generator):
    lower, upper = rng.uniform(0.35, 0.45), rng.uniform(0.25, 0.33)
    thick, neck = rng.uniform(0.12, 0.2), rng.uniform(0.9, 1.3)
    waist = lower * 0.9
    parts = [
        (cylinder(lower, thick, (-waist / 2, 0, 0)), 0),
        (cylinder(upper, thick, (waist / 2 + upper * 0.4, 0, 0)), 0),
        (box((neck, 0.09, 0.05), (waist / 2 + upper * 0.4 + neck / 2, 0, thick / 2)), 1),
        (
            box(
                (0.22, 0.13, 0.05),
                (waist / 2 + upper * 0.4 + neck + 0.1, 0, thick / 2 + 0.03),
                (0, -0.25, 0),
            ),
            1,
        ),
        (
            cylinder(upper * 0.45, 0.01, (waist / 2, 0, thick / 2 + 0.005)),
            2,
        ),  # sound hole on the front
        (
            box((0.06, lower * 0.8, 0.03), (-waist / 2 - lower * 0.4, 0, thick / 2 + 0.01)),
            1,
        ),  # bridge
    ]
    if rng.random() < 0.4:  # cutaway horn on one side
        parts.append((sphere(0.1, (waist / 2, upper * 0.75, 0)), 0))
    return parts


BUILDERS: dict[str, Builder] = {
    f.__name__: f
    for f in (airplane, car, chair, table, lamp, mug, bottle, bench, sofa, bed, bookshelf, guitar)
}


def _rng_for(seed: int, category: str, instance: int) -> np.random.Generator:
    digest = hashlib.blake2b(f"procedural:{seed}:{category}:{instance}".encode(), digest_size=16)
    return np.random.default_rng(int.from_bytes(digest.digest(), "little"))


class ProceduralCatalog(Catalog):
    """ShapeNet-like categories generated on demand: unlimited, reproducible instances.

    Args:
        seed: catalog seed; changes every instance's shape, colours and split.
        instances_per_category: cap on instance indices (None = unlimited). A finite cap bounds
            how many distinct shapes a long run loads (see README, "Memory").
        categories: a subset of category names (default: all of BUILDERS, in its order).
    """

    name = "procedural"

    def __init__(
        self,
        seed: int = 0,
        instances_per_category: int | None = None,
        categories: tuple[str, ...] | None = None,
    ) -> None:
        super().__init__(seed)
        if instances_per_category is not None and instances_per_category < 1:
            raise ValueError(
                f"instances_per_category must be >= 1 or None, got {instances_per_category}"
            )
        self.instances_per_category = instances_per_category
        unknown = set(categories or ()) - set(BUILDERS)
        if unknown:
            raise ValueError(f"unknown categories {sorted(unknown)}; valid: {', '.join(BUILDERS)}")
        self._categories = tuple(categories) if categories else tuple(BUILDERS)

    @property
    def categories(self) -> tuple[str, ...]:
        return self._categories

    def num_instances(self, category: str) -> int | None:
        return self.instances_per_category

    def _build_parts(self, category: str, instance: int) -> list[Part]:
        rng = _rng_for(self.seed, category, instance)
        pieces = BUILDERS[category](rng)
        roles = sorted({role for _, role in pieces})
        colours = rng.choice(len(PALETTE), size=len(roles), replace=False)
        colour_of = {role: PALETTE[int(c)] for role, c in zip(roles, colours, strict=True)}
        # Parts of one role share a colour, so they merge into one mesh: fewer shapes to load.
        return [
            Part(
                np.asarray(mesh.vertices, dtype=np.float64),
                np.asarray(mesh.faces, dtype=np.int64),
                colour_of[role],
            )
            for role in roles
            for mesh in [trimesh.util.concatenate([m for m, r in pieces if r == role])]
        ]
