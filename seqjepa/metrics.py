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
