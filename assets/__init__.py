"""Objects to look at: catalogs of categories and instances, each buildable into coloured parts.

``make_catalog("procedural")`` (default in every env), ``"pybullet_data"`` or ``"meshfolder"``
(with ``root=``); or pass any Catalog instance to an env.
"""

from assets.catalog import PALETTE, SPLITS, Catalog, ObjectSpec, Part, normalise_parts
from assets.meshfolder import MeshError, MeshFolderCatalog, load_mesh
from assets.procedural import ProceduralCatalog
from assets.pybullet_data import PybulletDataCatalog

CATALOGS: dict[str, type[Catalog]] = {
    "procedural": ProceduralCatalog,
    "pybullet_data": PybulletDataCatalog,
    "meshfolder": MeshFolderCatalog,
}


def make_catalog(catalog: str | Catalog = "procedural", **kwargs) -> Catalog:
    """A catalog by name (with its constructor kwargs), or ``catalog`` itself if already one."""
    if isinstance(catalog, Catalog):
        if kwargs:
            raise ValueError("catalog kwargs given with a ready Catalog instance")
        return catalog
    if catalog not in CATALOGS:
        raise ValueError(f"unknown catalog {catalog!r}; valid: {', '.join(CATALOGS)}")
    return CATALOGS[catalog](**kwargs)


__all__ = [
    "CATALOGS",
    "PALETTE",
    "SPLITS",
    "Catalog",
    "MeshError",
    "MeshFolderCatalog",
    "ObjectSpec",
    "Part",
    "ProceduralCatalog",
    "PybulletDataCatalog",
    "load_mesh",
    "make_catalog",
    "normalise_parts",
]
