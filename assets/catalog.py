"""The catalog API: categories, instances, splits, and instances built into coloured mesh parts.

Every catalog (procedural, mesh folder, pybullet_data) answers the same questions, so that the
environments never care where an object came from:

- ``categories``: the category names, in a fixed order (their index is the class label);
- ``num_instances(category)``: how many instances exist (``None`` = unlimited);
- ``split_of(category, instance)``: "train", "val" or "test", from a hash of
  (catalog seed, category, instance index) - reproducible, disjoint, and defined for unlimited
  instances without any list being stored;
- ``build(spec)``: the instance as coloured parts, normalised (bounding-box centre at the origin,
  every vertex within the unit sphere).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)

# One palette for every category, so colour alone never names the category: shape must.
# Saturated but not extreme colours that stay distinct under the tiny renderer's lighting.
PALETTE: tuple[tuple[float, float, float], ...] = (
    (0.85, 0.20, 0.18),  # red
    (0.95, 0.55, 0.15),  # orange
    (0.93, 0.80, 0.20),  # yellow
    (0.45, 0.75, 0.25),  # green
    (0.15, 0.55, 0.45),  # teal
    (0.25, 0.60, 0.90),  # sky blue
    (0.25, 0.30, 0.75),  # indigo
    (0.60, 0.35, 0.80),  # violet
    (0.90, 0.45, 0.65),  # pink
    (0.55, 0.38, 0.22),  # brown
    (0.80, 0.80, 0.78),  # light grey
    (0.30, 0.30, 0.32),  # charcoal
)


@dataclass(frozen=True)
class Part:
    """One rigid, single-coloured piece of an object: a triangle mesh and an RGB colour in [0,1]."""

    vertices: np.ndarray  # (n, 3) float64
    faces: np.ndarray  # (m, 3) int64, indices into vertices
    color: tuple[float, float, float]


@dataclass(frozen=True)
class ObjectSpec:
    """Names one instance of one catalog; cheap, hashable and picklable (it holds no geometry)."""

    catalog: str
    category: str
    category_index: int
    instance: int
    split: str

    @property
    def key(self) -> tuple[str, str, int]:
        """What identifies the geometry: the renderer caches loaded shapes under this key."""
        return (self.catalog, self.category, self.instance)


def split_of(seed: int, category: str, instance: int) -> str:
    """The split of one instance: a stable hash mapped to 80/10/10 (train/val/test).

    blake2b, not Python's ``hash``, so the answer is the same in every process and version.
    """
    digest = hashlib.blake2b(f"{seed}:{category}:{instance}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "little") / 2**64
    edge = 0.0
    for name, fraction in zip(SPLITS, SPLIT_FRACTIONS, strict=True):
        edge += fraction
        if u < edge:
            return name
    return SPLITS[-1]


def normalise_parts(parts: Sequence[Part]) -> list[Part]:
    """Centre the parts on their joint bounding-box centre and scale them into the unit sphere.

    The bounding-box centre is 3DIEBench's recentring rule; the unit sphere keeps every orientation
    inside the camera's field of view and above the floor at z = -1.
    """
    if not parts:
        raise ValueError("an object needs at least one part")
    stacked = np.concatenate([p.vertices for p in parts])
    if not np.isfinite(stacked).all():
        raise ValueError("object has non-finite vertices")
    centre = (stacked.min(axis=0) + stacked.max(axis=0)) / 2
    radius = float(np.linalg.norm(stacked - centre, axis=1).max())
    if radius <= 0:
        raise ValueError("object is degenerate (all vertices coincide)")
    return [Part((p.vertices - centre) / radius, p.faces, p.color) for p in parts]


class Catalog(ABC):
    """Categories, instances and splits, and the geometry of each instance.

    Subclasses implement ``categories``, ``num_instances`` and ``_build_parts``; everything else
    (validation, splits, sampling, normalisation) is shared here.
    """

    #: Short name used in ObjectSpec.catalog and cache keys.
    name: str = "catalog"

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)

    @property
    @abstractmethod
    def categories(self) -> tuple[str, ...]:
        """Category names; a category's index in this tuple is its integer label."""

    @abstractmethod
    def num_instances(self, category: str) -> int | None:
        """Number of instances of ``category``, or None when unlimited."""

    @abstractmethod
    def _build_parts(self, category: str, instance: int) -> list[Part]:
        """The raw (not yet normalised) parts of one instance."""

    # -- shared behaviour

    @cached_property
    def _category_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.categories)}

    def split_of(self, category: str, instance: int) -> str:
        """ "train", "val" or "test" for one instance.

        A category with a single instance is always "train": hashing it away to val or test would
        leave a class no model can learn.
        """
        if self.num_instances(category) == 1:
            return "train"
        return split_of(self.seed, category, instance)

    def category_name(self, category: str | int) -> str:
        """Resolve a category given by name or index; ValueError lists the valid ones."""
        if isinstance(category, (int, np.integer)) and not isinstance(category, bool):
            if 0 <= int(category) < len(self.categories):
                return self.categories[int(category)]
        elif category in self._category_index:
            return str(category)
        raise ValueError(
            f"unknown category {category!r} in catalog {self.name!r}; valid: "
            f"{', '.join(self.categories)} (or their indices 0..{len(self.categories) - 1})"
        )

    def spec(self, category: str | int, instance: int) -> ObjectSpec:
        """The spec of one instance, validated; ValueError says which instances exist."""
        name = self.category_name(category)
        count = self.num_instances(name)
        if (
            not isinstance(instance, (int, np.integer))
            or isinstance(instance, bool)
            or instance < 0
            or (count is not None and instance >= count)
        ):
            valid = "any integer >= 0" if count is None else f"0..{count - 1}"
            raise ValueError(f"unknown instance {instance!r} of category {name!r}; valid: {valid}")
        instance = int(instance)
        return ObjectSpec(
            self.name, name, self._category_index[name], instance, self.split_of(name, instance)
        )

    def instances(self, category: str | int, split: str | None = None) -> Iterator[int]:
        """Instance indices of a category in a split, in increasing order (endless if unlimited)."""
        name = self.category_name(category)
        count = self.num_instances(name)
        i = 0
        while count is None or i < count:
            if split is None or self.split_of(name, i) == split:
                yield i
            i += 1

    def sample(
        self,
        rng: np.random.Generator,
        split: str | None = "train",
        category: str | int | None = None,
    ) -> ObjectSpec:
        """A uniformly random instance of the split (and category, if given).

        Categories are drawn uniformly, then an instance by rejection on the split hash, which works
        for unlimited instances without listing them.
        """
        if split is not None and split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)} or None")
        names = [self.category_name(category)] if category is not None else self.categories
        candidates = [n for n in names if self._has_split(n, split)]
        if not candidates:
            raise ValueError(f"catalog {self.name!r} has no {split!r} instances of {names}")
        name = candidates[int(rng.integers(len(candidates)))]
        count = self.num_instances(name)
        high = count if count is not None else 2**31 - 1
        while True:
            instance = int(rng.integers(high))
            if split is None or self.split_of(name, instance) == split:
                return self.spec(name, instance)

    def _has_split(self, category: str, split: str | None) -> bool:
        count = self.num_instances(category)
        if split is None or count is None:
            return True
        return any(self.split_of(category, i) == split for i in range(count))

    def build(self, spec: ObjectSpec) -> list[Part]:
        """The normalised, coloured parts of ``spec``'s instance."""
        if spec.catalog != self.name:
            raise ValueError(f"spec is from catalog {spec.catalog!r}, not {self.name!r}")
        return normalise_parts(self._build_parts(spec.category, spec.instance))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seed={self.seed}, categories={len(self.categories)})"
