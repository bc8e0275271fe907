"""Colour augmentation of training views (``TrainConfig.augment``).

Why: the procedural catalog paints every part from one palette shared by all categories, so an
object's colours are the most view-invariant thing about it, yet they name no category. An
objective that rewards what views of one object share (seq-JEPA's prediction, VICReg's
invariance) can be met with colour alone. Turning each view's hues by its own random angle
takes that shortcut away, as colour distortion does in SimCLR (Chen et al. 2020, section 3).
Shapes, shading and the geometry of the rotation are untouched.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation

AUGMENTS = ("none", "hue", "colour")
GREY_AXIS = np.full(3, 1 / np.sqrt(3))


def check_augment(name: str) -> None:
    if name not in AUGMENTS:
        raise ValueError(f"unknown augment {name!r}; valid: {', '.join(AUGMENTS)}")


def augment_views(views: torch.Tensor, name: str) -> torch.Tensor:
    """``views`` under augmentation ``name`` (torch's global generator draws it: the training
    loop seeds it per micro-batch, so runs resume exactly)."""
    check_augment(name)
    if name == "none":
        return views
    return hue_rotate(views, saturation=name == "colour")


def hue_rotate(views: torch.Tensor, saturation: bool = False) -> torch.Tensor:
    """uint8 (..., H, W, 3) views, each with its hues turned by its own uniform angle.

    The turn is a rotation of RGB space about the grey axis: greys (the white background, the
    shading's black) keep their value and every colour keeps its distance from grey; values
    leaving [0, 255] are clipped. With ``saturation``, that distance is also scaled by a factor
    from U[0.2, 1.8], or by 0 (grey) for a fifth of the views, as SimCLR's colour distortion."""
    if views.dtype != torch.uint8 or views.shape[-1] != 3:
        raise TypeError(f"views must be uint8 (..., H, W, 3), got {views.dtype} {views.shape}")
    flat = views.reshape(-1, *views.shape[-3:])
    angles = torch.rand(len(flat), dtype=torch.float64) * (2 * np.pi)
    matrices = Rotation.from_rotvec(angles.numpy()[:, None] * GREY_AXIS).as_matrix()
    if saturation:
        scale = torch.rand(len(flat), dtype=torch.float64) * 1.6 + 0.2
        scale[torch.rand(len(flat)) < 0.2] = 0.0
        grey = np.outer(GREY_AXIS, GREY_AXIS)
        matrices = grey + scale.numpy()[:, None, None] * (matrices - grey)
    turn = torch.from_numpy(matrices).to(views.device, torch.float32)
    turned = torch.einsum("nij,nhwj->nhwi", turn, flat.float())
    return turned.round_().clamp_(0, 255).to(torch.uint8).reshape(views.shape)
