"""Cheap online probes for the training loop: linear heads trained on detached features.

They never touch the model's gradients; they tell, while training runs, whether z_AGG carries
the class and whether (z_1, z_2) carries the action between two views - the invariance and
equivariance seq-JEPA should produce. Each step they report their score on the current batch
*before* learning from it (a held-out estimate), then take one SGD step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class OnlineProbes(nn.Module):
    """Class from z_AGG (linear, cross-entropy) and the first transition from concat(z_1, z_2)
    (linear, mean squared error; reported as R^2, CONVENTIONS.md's uniform average)."""

    def __init__(self, agg_dim: int, z_dim: int, num_classes: int, action_dim: int) -> None:
        super().__init__()
        self.classify = nn.Linear(agg_dim, num_classes)
        self.relative = nn.Linear(2 * z_dim, action_dim)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=1e-3)

    def step(
        self, z_agg: torch.Tensor, z: torch.Tensor, labels: torch.Tensor, actions: torch.Tensor
    ) -> dict[str, float]:
        """Score on this batch, then learn from it. z (B, M, D) needs M >= 2 for the action."""
        z_agg, z = z_agg.detach().float(), z.detach().float()
        logits = self.classify(z_agg)
        loss = F.cross_entropy(logits, labels)
        out = {"probe_class_top1": float((logits.argmax(-1) == labels).float().mean())}
        if z.shape[1] >= 2:
            target = actions[:, 1].float()  # the transition from view 0 to view 1
            prediction = self.relative(torch.cat([z[:, 0], z[:, 1]], dim=-1))
            loss = loss + F.mse_loss(prediction, target)
            residual = ((prediction.detach() - target) ** 2).sum(0)
            total = ((target - target.mean(0)) ** 2).sum(0).clamp_min(1e-8)
            out["probe_relative_r2"] = float((1 - residual / total).mean())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return out
