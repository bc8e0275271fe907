"""Foveal glimpses over a scene image, and the saliency maps that guide where to look.

Positions follow CONVENTIONS.md: (x, y) in [-1, 1], x to the right, y downward, (-1, -1) the
top-left corner of the scene and (1, 1) the bottom-right corner (pixel edges, not centres). In
pixels, x_px = (x + 1) / 2 * S, so pixel i spans [i, i + 1] and its centre is i + 0.5.

A glimpse of size G at scale s covers s*G scene pixels centred on the fixation, cut with
bilinear sampling (sub-pixel fixations interpolate) and averaged down to G x G; outside the scene
it sees ``PAD_VALUE``. Because the sampling grid is axis-aligned with a fixed spacing, every
sample shares the same fractional offset, so a bilinear crop is four shifted slices and one
weighted sum: ~15 us for a 32 px glimpse.
"""

from __future__ import annotations

import numpy as np

#: Value seen outside the scene (black).
PAD_VALUE = 0.0


def to_pixels(position: np.ndarray, size: int) -> np.ndarray:
    """Normalised position(s) -> continuous pixel coordinates (x, y) on a size x size scene."""
    return (np.asarray(position, dtype=np.float64) + 1.0) * (size / 2.0)


def to_position(pixels: np.ndarray, size: int) -> np.ndarray:
    """Continuous pixel coordinates (x, y) -> normalised position(s)."""
    return np.asarray(pixels, dtype=np.float64) * (2.0 / size) - 1.0


class GlimpseSampler:
    """Glimpses of one scene image at any fixation; build once per scene, sample many times.

    Args:
        scene: (S, S, C) image (uint8 or float).
        glimpse_size: G, the side of each glimpse in pixels.
        scales: integer scales; scale s covers s*G scene pixels, averaged down to G x G.
    """

    def __init__(self, scene: np.ndarray, glimpse_size: int, scales: tuple[int, ...] = (1,)):
        if scene.ndim == 2:
            scene = scene[..., None]
        self.size = scene.shape[0]
        self.glimpse_size = int(glimpse_size)
        self.scales = tuple(int(s) for s in scales)
        # Padding wide enough for the largest glimpse fixated anywhere in [-1, 1], plus one pixel
        # for the bilinear neighbour.
        self.pad = max(self.scales) * self.glimpse_size // 2 + 2
        self._padded = np.pad(
            scene.astype(np.float32),
            ((self.pad, self.pad), (self.pad, self.pad), (0, 0)),
            constant_values=PAD_VALUE,
        )

    def crop(self, fixation_px: np.ndarray, scale: int = 1) -> np.ndarray:
        """float32 (G, G, C) glimpse at ``fixation_px`` (continuous pixel coordinates x, y)."""
        n = scale * self.glimpse_size
        # Top-left sample centre is at fixation - n/2 + 0.5; in index units (centre i + 0.5):
        start = np.asarray(fixation_px, dtype=np.float64) + self.pad - n / 2
        corner = np.floor(start).astype(int)
        ax, ay = start - corner
        x0, y0 = corner
        if not (0 <= x0 and x0 + n + 1 <= self._padded.shape[1]):
            raise ValueError(f"fixation {fixation_px} is too far outside the scene")
        if not (0 <= y0 and y0 + n + 1 <= self._padded.shape[0]):
            raise ValueError(f"fixation {fixation_px} is too far outside the scene")
        p = self._padded
        top = p[y0 : y0 + n, x0 : x0 + n] * (1 - ax) + p[y0 : y0 + n, x0 + 1 : x0 + n + 1] * ax
        bottom = p[y0 + 1 : y0 + n + 1, x0 : x0 + n] * (1 - ax)
        bottom += p[y0 + 1 : y0 + n + 1, x0 + 1 : x0 + n + 1] * ax
        out = top * (1 - ay) + bottom * ay
        if scale > 1:
            g = self.glimpse_size
            out = out.reshape(g, scale, g, scale, -1).mean(axis=(1, 3))
        return out

    def glimpse(self, fixation_px: np.ndarray, scale: int = 1) -> np.ndarray:
        """uint8 (G, G, C) glimpse, rounded from ``crop``."""
        return np.clip(np.rint(self.crop(fixation_px, scale)), 0, 255).astype(np.uint8)


def box_blur(image: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window (edges: the window shrinks), via summed-area tables."""
    if radius <= 0:
        return image.astype(np.float32)
    h, w = image.shape
    table = np.zeros((h + 1, w + 1))
    table[1:, 1:] = image.cumsum(0).cumsum(1)
    ys, xs = np.arange(h), np.arange(w)
    y0, y1 = np.clip(ys - radius, 0, h), np.clip(ys + radius + 1, 0, h)
    x0, x1 = np.clip(xs - radius, 0, w), np.clip(xs + radius + 1, 0, w)
    total = table[y1][:, x1] - table[y0][:, x1] - table[y1][:, x0] + table[y0][:, x0]
    area = np.outer(y1 - y0, x1 - x0)
    return (total / area).astype(np.float32)


def saliency_map(view: np.ndarray, mask: np.ndarray | None, glimpse_size: int) -> np.ndarray:
    """Where an observer would look: float32 (S, S), non-negative, summing to 1.

    Recipe (no learned model, nothing downloaded): the luminance gradient magnitude (edges and
    texture), normalised to [0, 1]; plus, where the renderer provides it, the object mask from
    pybullet's segmentation buffer, so the object outweighs the background; blurred over an
    eighth of a glimpse so neighbouring fixations share mass; plus a floor of 1% of the mean, so
    no fixation is impossible and inhibition of return never empties the map.
    """
    luminance = view[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    gy, gx = np.gradient(luminance)
    edges = np.hypot(gx, gy)
    edges /= max(float(edges.max()), 1e-6)
    raw = edges if mask is None else 0.5 * edges + 0.5 * mask.astype(np.float32)
    blurred = box_blur(raw, max(glimpse_size // 8, 1))
    blurred += 0.01 * max(float(blurred.mean()), 1e-6)
    return (blurred / blurred.sum()).astype(np.float32)
