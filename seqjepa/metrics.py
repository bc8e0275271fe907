"""Representation metrics (CONVENTIONS.md)."""

from __future__ import annotations

import torch


def effective_rank(z: torch.Tensor) -> float:
    """exp of the entropy of the normalised singular values of the centred (N, D) matrix z.

    CONVENTIONS.md asks for at least 1,024 views when it is reported as a result; the training
    monitor applies it to a batch, as a cheap collapse alarm.
    """
    z = z.float()
    singular = torch.linalg.svdvals(z - z.mean(dim=0, keepdim=True))
    p = singular / singular.sum().clamp_min(1e-12)
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
    return float(torch.exp(entropy))


def r2_score(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """R^2 as the mean over output dimensions of 1 - SS_res / SS_tot (sklearn's
    "uniform_average", CONVENTIONS.md; SIE's single global mean is a different number).

    Dimensions constant in ``target`` (where R^2 is undefined, e.g. a fixed axis) are left out
    of the mean; a target constant in every dimension raises ValueError."""
    prediction, target = prediction.double(), target.double()
    residual = ((target - prediction) ** 2).sum(dim=0)
    total = ((target - target.mean(dim=0)) ** 2).sum(dim=0)
    varying = total > 1e-12 * max(float(total.max()), 1.0)
    if not bool(varying.any()):
        raise ValueError("R^2 is undefined for a target constant in every dimension")
    return float((1 - residual[varying] / total[varying]).mean())


def geodesic_deg(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Angle in degrees between rotations: 2 arccos |<q_hat, q>| with q_hat normalised first
    (CONVENTIONS.md); sign-blind, so canonicalisation does not matter here."""
    q_hat = torch.nn.functional.normalize(prediction.double(), dim=-1)
    q = torch.nn.functional.normalize(target.double(), dim=-1)
    dot = (q_hat * q).sum(dim=-1).abs().clamp(max=1.0)
    return torch.rad2deg(2 * torch.arccos(dot))
