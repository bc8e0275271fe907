"""3DIEBench both ways: export a recorded dataset to its layout, and read a real 3DIEBench folder.

Layout (Garrido et al. 2023, as used by SIE and seq-JEPA):

    <category>/<object_id>/image_<k>.jpg    one view (256 px in the original)
    <category>/<object_id>/latent_<k>.npy   float32[7]: rot_x, rot_y, rot_z (extrinsic "xyz"
                                            Euler, radians), floor_hue, spot_theta, spot_phi,
                                            spot_hue
    train_images.npy, val_images.npy        "<category>/<object_id>" per object (unicode array)
    train_labels.npy, val_labels.npy        int class label per object

The index files are written and read as plain (non-object) numpy arrays: no pickle.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from seqjepa.rollouts import DatasetError, RolloutDataset

IEBENCH_SPLITS = ("train", "val")


def export_iebench(data: RolloutDataset, out: str | Path, quality: int = 95) -> Path:
    """Write ``data`` in the 3DIEBench layout: one object folder per episode, one image and one
    latent file per observation; catalog val and test instances go to 3DIEBench's val split."""
    out = Path(out)
    names = data.meta.get("categories")
    if not names:
        raise DatasetError(f"{data.root}: dataset.json lists no categories; recollect it")
    index: dict[str, tuple[list[str], list[int]]] = {s: ([], []) for s in IEBENCH_SPLITS}
    for e in tqdm(range(len(data)), desc="export 3DIEBench", unit="object"):
        episode = data.episode(e)
        if "latents" not in episode:
            raise DatasetError(f"{data.root}: no latents recorded (not a Rotate dataset)")
        category = names[episode["label"]]
        object_id = f"{episode['instance']:09d}_{episode['episode']:07d}"
        folder = out / category / object_id
        folder.mkdir(parents=True, exist_ok=True)
        for k, (view, latent) in enumerate(zip(episode["views"], episode["latents"], strict=True)):
            tmp = folder / f".image_{k}.jpg.tmp"
            Image.fromarray(np.asarray(view)).save(tmp, format="JPEG", quality=quality)
            os.replace(tmp, folder / f"image_{k}.jpg")
            _save_atomic(folder / f"latent_{k}.npy", np.asarray(latent, np.float32))
        split = "train" if episode["split"] == "train" else "val"
        index[split][0].append(f"{category}/{object_id}")
        index[split][1].append(episode["label"])
    for split, (images, labels) in index.items():
        # Index files last: a folder without them is visibly unfinished, never half-indexed.
        _save_atomic(out / f"{split}_images.npy", np.array(images, dtype=str))
        _save_atomic(out / f"{split}_labels.npy", np.array(labels, dtype=np.int64))
    return out


def _save_atomic(path: Path, array: np.ndarray) -> None:
    """np.save via a temporary sibling and a rename (no pickle)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("wb") as f:
        np.save(f, array, allow_pickle=False)
    os.replace(tmp, path)


class IEBenchDataset:
    """A 3DIEBench folder (real, or exported here) as objects with views and latents.

    Args:
        root: the folder with the index files and <category>/<object_id>/ folders.
        split: "train" or "val".
        image_size: views are resized to this side (seq-JEPA uses 128); None keeps them.
    """

    def __init__(self, root: str | Path, split: str = "train", image_size: int | None = None):
        self.root = Path(root)
        if split not in IEBENCH_SPLITS:
            raise ValueError(f"unknown split {split!r}; valid: {', '.join(IEBENCH_SPLITS)}")
        images_path = self.root / f"{split}_images.npy"
        labels_path = self.root / f"{split}_labels.npy"
        for path in (images_path, labels_path):
            if not path.is_file():
                raise DatasetError(f"{path}: missing 3DIEBench index file")
        try:
            self.objects = np.load(images_path, allow_pickle=False).astype(str)
            self.labels = np.load(labels_path, allow_pickle=False).astype(np.int64)
        except ValueError as err:
            raise DatasetError(f"{images_path}: not a plain array index ({err})") from None
        if len(self.objects) != len(self.labels):
            raise DatasetError(f"{self.root}: {split} images and labels differ in length")
        self.image_size = image_size
        self._views: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.objects)

    def num_views(self, index: int) -> int:
        """Views of object ``index`` (50 in 3DIEBench), counted once from its folder."""
        if index not in self._views:
            count = len(list((self.root / self.objects[index]).glob("image_*.jpg")))
            if count == 0:
                raise DatasetError(f"{self.root / self.objects[index]}: no image_<k>.jpg views")
            self._views[index] = count
        return self._views[index]

    def view(self, index: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 (H, W, 3) image, float32[7] latent) of view ``k`` of object ``index``."""
        folder = self.root / self.objects[index]
        image_path, latent_path = folder / f"image_{k}.jpg", folder / f"latent_{k}.npy"
        try:
            with Image.open(image_path) as opened:
                picture = opened.convert("RGB")
                if self.image_size is not None and picture.size != (self.image_size,) * 2:
                    picture = picture.resize((self.image_size,) * 2, Image.Resampling.BILINEAR)
                image = np.asarray(picture, dtype=np.uint8)
        except (OSError, ValueError) as err:
            raise DatasetError(f"{image_path}: cannot be read ({err})") from None
        try:
            latent = np.load(latent_path, allow_pickle=False).astype(np.float32)
        except (OSError, ValueError) as err:
            raise DatasetError(f"{latent_path}: cannot be read ({err})") from None
        if latent.shape != (7,):
            raise DatasetError(f"{latent_path}: expected 7 latents, got shape {latent.shape}")
        return image, latent

    @staticmethod
    def orientation(latent: np.ndarray) -> np.ndarray:
        """The object's orientation (xyzw, w >= 0) from a latent's Euler angles."""
        q = Rotation.from_euler("xyz", latent[:3]).as_quat()
        return -q if q[3] < 0 else q
