"""A catalog of the object models that ship inside the ``pybullet_data`` package.

No download needed, so it is the quickest way to see real (non-procedural) meshes. Single models
(duck, teddy, mug, ...) are one-instance categories, hence always in the train split; the 1,000
``random_urdfs`` objects form the ``random_object`` category with ordinary hash splits.
"""

from __future__ import annotations

from pathlib import Path

import pybullet_data

from assets.meshfolder import FileCatalog

SINGLE_MODELS = {
    "duck": "duck.obj",
    "teddy": "teddy2_VHACD_CHs.obj",
    "mug": "objects/mug.obj",
    "soccerball": "soccerball.obj",
    "bunny": "bunny.obj",
    "torus": "torus/torus_textured.obj",
    "lego": "lego/lego.obj",
    "shape_sorter": "toys/shape_sorter.obj",
    "tray": "tray/tray_textured2.obj",
}


class PybulletDataCatalog(FileCatalog):
    """The models of ``pybullet_data``: SINGLE_MODELS plus ``random_object`` (random_urdfs)."""

    name = "pybullet_data"

    def __init__(self, seed: int = 0, **kwargs) -> None:
        root = Path(pybullet_data.getDataPath())
        files = {category: [root / rel] for category, rel in SINGLE_MODELS.items()}
        files["random_object"] = sorted(root.glob("random_urdfs/*/*.obj"))
        super().__init__(files, seed=seed, **kwargs)
