"""VICReg (Bardes et al. 2022): the invariance-only two-view baseline, on seq-JEPA's encoder.

Why VICReg among the invariance methods: its variance and covariance terms prevent collapse
explicitly, so it trains stably with the small batches of CPU runs (SimCLR needs large batches
for its negatives; BYOL relies on the same EMA/predictor asymmetry as seq-JEPA, so it would not
separate "invariance objective" from "training dynamics"). It sees the same sequences as
seq-JEPA and ignores their actions: views (0, 1), (2, 3), ... of a sequence are its positive
pairs, two views of one object under different rotations (and scene latents).

It offers seq-JEPA's evaluation interface: ``encode`` gives per-view z, and ``aggregate``
returns the mean of the views' z as the sequence representation (the natural multi-view read
out of an invariant encoder).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqjepa.model import ModelConfig, SeqJEPA
from seqjepa.resnet import ResNet


class VICReg(nn.Module):
    """ResNet encoder + expander MLP trained with VICReg's loss (coefficients 25 / 25 / 1)."""

    invariance_weight = 25.0
    variance_weight = 25.0
    covariance_weight = 1.0

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = ResNet(config.widths, config.depths, config.stem, config.pool_grid)
        self.z_dim = self.encoder.out_dim
        self.d_model = self.z_dim  # the sequence representation is the mean z
        width = 4 * self.z_dim  # the paper's expander is 4x the representation (8192 for 2048)
        self.expander = nn.Sequential(
            nn.Linear(self.z_dim, width, bias=False),
            nn.BatchNorm1d(width),
            nn.ReLU(inplace=True),
            nn.Linear(width, width, bias=False),
            nn.BatchNorm1d(width),
            nn.ReLU(inplace=True),
            nn.Linear(width, width),
        )

    prepare = staticmethod(SeqJEPA.prepare)

    def encode(self, views: torch.Tensor, target: bool = False) -> torch.Tensor:
        """Per-view z: (..., H, W, 3) uint8 -> (..., z_dim). There is no target encoder."""
        z = self.encoder(self.prepare(views))
        return z.reshape(*views.shape[:-3], self.z_dim)

    def aggregate(
        self, views: torch.Tensor, transitions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean of z over the views, z); the transitions are ignored."""
        z = self.encode(views)
        return self.aggregate_z(z, transitions), z

    def aggregate_z(
        self, z: torch.Tensor, transitions: torch.Tensor, blind: bool = False
    ) -> torch.Tensor:
        return z.mean(dim=1)

    def loss(
        self, views: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """VICReg on the pairs (0, 1), (2, 3), ... of each sequence of >= 2 views."""
        if views.shape[1] < 2:
            raise ValueError(f"need views (B, >=2, H, W, 3), got {tuple(views.shape)}")
        pairs = views.shape[1] // 2
        z = self.encode(views)
        expanded = self.expander(z[:, : 2 * pairs].reshape(-1, self.z_dim)).float()
        expanded = expanded.reshape(len(views), pairs, 2, -1).transpose(0, 1)
        loss = sum(vicreg_loss(e[:, 0], e[:, 1], self) for e in expanded) / pairs
        extras = {"z": z.detach(), "z_agg": z.detach().mean(dim=1)}
        return loss, extras

    def forward(self, views: torch.Tensor, actions: torch.Tensor):
        return self.loss(views, actions)

    def update_target(self, momentum: float) -> None:
        """No target network (the training loop's EMA step is a no-op here)."""


def vicreg_loss(a: torch.Tensor, b: torch.Tensor, weights=VICReg) -> torch.Tensor:
    """Invariance (MSE) + variance (hinge on each dimension's std at 1) + covariance
    (squared off-diagonal covariances), VICReg's formula, for two (N, D) batches."""
    invariance = F.mse_loss(a, b)
    variance = covariance = a.new_zeros(())
    for x in (a, b):
        x = x - x.mean(dim=0)
        std = torch.sqrt(x.var(dim=0) + 1e-4)
        variance = variance + F.relu(1 - std).mean() / 2
        cov = (x.T @ x) / (len(x) - 1)
        off = cov - torch.diag(torch.diag(cov))
        covariance = covariance + off.pow(2).sum() / x.shape[1]  # summed over both branches
    return (
        weights.invariance_weight * invariance
        + weights.variance_weight * variance
        + weights.covariance_weight * covariance
    )
