"""Image collections for the 2D glimpse env (the paper's STL-10 setting), without downloads.

A source is either a folder of images with one subfolder per class (``root/<class>/*.png``;
png, jpg, jpeg, bmp, webp) or an ``.npz`` file with ``images`` (N, H, W, 3) uint8 and
``labels`` (N,) int, optionally ``classes`` (names, str). Every image is centre-cropped to a
square and resized to ``size`` (default 96, STL-10's). Splits use the catalogs' rule: a hash of
(seed, class, index within the class), 80/10/10.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from assets.catalog import SPLITS, split_of

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class ImageSource:
    """Labelled images, loaded on demand.

    Args:
        source: a class-per-subfolder image folder or an .npz file (see module docstring).
        size: side of the square images returned.
        seed: split seed.
    """

    def __init__(self, source: str | Path, size: int = 96, seed: int = 0) -> None:
        self.source = Path(source)
        self.size = int(size)
        self.seed = int(seed)
        if self.size < 8:
            raise ValueError(f"image size must be >= 8, got {size}")
        if self.source.is_dir():
            classes = sorted(d.name for d in self.source.iterdir() if d.is_dir())
            self._files = [
                (label, path)
                for label, name in enumerate(classes)
                for path in sorted((self.source / name).iterdir())
                if path.suffix.lower() in IMAGE_SUFFIXES
            ]
            self._array = None
            labels = np.array([label for label, _ in self._files], dtype=np.int64)
        elif self.source.suffix == ".npz" and self.source.is_file():
            try:
                with np.load(self.source, allow_pickle=False) as data:
                    images, labels = data["images"], data["labels"].astype(np.int64)
                    names = data["classes"] if "classes" in data else None
            except (KeyError, ValueError, OSError) as err:
                raise ValueError(f"{self.source}: not an images/labels .npz file ({err})") from None
            if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
                raise ValueError(f"{self.source}: images must be uint8 (N, H, W, 3), got "
                                 f"{images.dtype} {images.shape}")  # fmt: skip
            if labels.shape != (len(images),) or labels.min(initial=0) < 0:
                raise ValueError(f"{self.source}: labels must be (N,) non-negative ints")
            self._array = images
            self._files = None
            count = int(labels.max(initial=-1)) + 1
            classes = (
                [str(n) for n in names] if names is not None else [str(i) for i in range(count)]
            )
        else:
            raise ValueError(f"{self.source}: not an image folder or an .npz file")
        if len(labels) == 0:
            raise ValueError(f"{self.source}: no images found ({', '.join(IMAGE_SUFFIXES)})")
        self.categories = tuple(classes)
        self.labels = labels
        # index within its class, for the split hash (stable when other classes change)
        self._within = np.zeros(len(labels), dtype=np.int64)
        for label in np.unique(labels):
            where = np.flatnonzero(labels == label)
            self._within[where] = np.arange(len(where))
        self.splits = np.array(
            [
                split_of(self.seed, self.categories[lab], int(k))
                for lab, k in zip(labels, self._within, strict=True)
            ]
        )

    def __len__(self) -> int:
        return len(self.labels)

    def indices(self, split: str | None) -> np.ndarray:
        """Indices of the images in ``split`` (None: all)."""
        if split is None:
            return np.arange(len(self))
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)} or None")
        return np.flatnonzero(self.splits == split)

    def image(self, index: int) -> np.ndarray:
        """uint8 (size, size, 3): centre-cropped and resized; errors name the file."""
        if not 0 <= index < len(self):
            raise ValueError(f"image index {index} out of range 0..{len(self) - 1}")
        if self._array is not None:
            picture = Image.fromarray(np.asarray(self._array[index]))
        else:
            path = self._files[index][1]
            try:
                with Image.open(path) as opened:
                    picture = opened.convert("RGB")
            except (OSError, ValueError) as err:
                raise ValueError(f"{path}: cannot be read as an image ({err})") from None
        w, h = picture.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        picture = picture.crop((left, top, left + side, top + side))
        if side != self.size:
            picture = picture.resize((self.size, self.size), Image.Resampling.BILINEAR)
        return np.asarray(picture, dtype=np.uint8)
