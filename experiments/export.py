"""`seqjepa-gym export-3diebench`: a recorded Rotate dataset in 3DIEBench's folder layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seqjepa.iebench import export_iebench
from seqjepa.rollouts import RolloutDataset


@dataclass
class ExportConfig:
    """What `seqjepa-gym export-3diebench` writes."""

    data: str
    """A dataset directory written by `seqjepa-gym collect` (a Rotate id)."""
    out: str
    """Output folder: <category>/<object_id>/image_<k>.jpg, latent_<k>.npy, index files."""
    quality: int = 95
    """JPEG quality of the exported views."""


def run(cfg: ExportConfig) -> Path:
    out = export_iebench(RolloutDataset(cfg.data, verify="eager"), cfg.out, cfg.quality)
    print(f"wrote the 3DIEBench layout to {out}")
    return out
