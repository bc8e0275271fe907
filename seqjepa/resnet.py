"""ResNet encoders written here (torchvision's wheel does not import beside this project's torch).

``resnet(widths=(64, 128, 256, 512), depths=(2, 2, 2, 2), stem="standard")`` is ResNet-18 as
seq-JEPA uses it: BasicBlocks, the last BatchNorm of every residual branch zero-initialised (so
each block starts as the identity), global average pooling, no fc; the output is the 512-d z.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

STEMS = ("standard", "small", "cheap")


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (1x1 projection when the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        nn.init.zeros_(self.bn2.weight)  # zero-init residual: the block starts as the identity
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


def make_stem(kind: str, out_channels: int) -> nn.Sequential:
    """standard: 7x7 stride 2 + 3x3 max-pool (ImageNet, 128 px); small: 3x3 stride 1, no pool
    (CIFAR-style, 32 px glimpses); cheap: 3x3 stride 2, no pool (CPU-sized 64 px)."""
    if kind == "standard":
        conv = nn.Conv2d(3, out_channels, 7, 2, 3, bias=False)
        pool: nn.Module = nn.MaxPool2d(3, 2, 1)
    elif kind == "small":
        conv, pool = nn.Conv2d(3, out_channels, 3, 1, 1, bias=False), nn.Identity()
    elif kind == "cheap":
        conv, pool = nn.Conv2d(3, out_channels, 3, 2, 1, bias=False), nn.Identity()
    else:
        raise ValueError(f"unknown stem {kind!r}; valid: {', '.join(STEMS)}")
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True), pool)


class GridPool(nn.Module):
    """Average over a ``grid`` x ``grid`` layout of cells, flatten, project linearly back to C.

    Global average pooling (grid 1) keeps what is in the view and discards where: a small turn
    of the object moves its parts across the map, which pooling averages away. Keeping a coarse
    layout lets z carry that pose (docs/equivariance.md)."""

    def __init__(self, channels: int, grid: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.proj = nn.Linear(channels * grid * grid, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.pool(x).flatten(1))


class ResNet(nn.Module):
    """A ResNet trunk: stem, stages of BasicBlocks (the first of each later stage strides 2),
    global average pooling (or ``GridPool`` for ``pool_grid`` > 1). ``forward`` maps
    (B, 3, H, W) float images to (B, widths[-1])."""

    def __init__(
        self,
        widths: tuple[int, ...] = (64, 128, 256, 512),
        depths: tuple[int, ...] = (2, 2, 2, 2),
        stem: str = "standard",
        pool_grid: int = 1,
    ) -> None:
        super().__init__()
        if len(widths) != len(depths) or not widths:
            raise ValueError(f"widths {widths} and depths {depths} must be non-empty, equal length")
        if pool_grid < 1:
            raise ValueError(f"pool_grid must be >= 1, got {pool_grid}")
        self.stem = make_stem(stem, widths[0])
        blocks: list[nn.Module] = []
        in_channels = widths[0]
        for stage, (width, depth) in enumerate(zip(widths, depths, strict=True)):
            for block in range(depth):
                stride = 2 if stage > 0 and block == 0 else 1
                blocks.append(BasicBlock(in_channels, width, stride))
                in_channels = width
        self.blocks = nn.Sequential(*blocks)
        #: blocks[:stage_ends[k]] are the first k + 1 stages
        self.stage_ends = tuple(itertools.accumulate(depths))
        self.pool: nn.Module = (
            nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
            if pool_grid == 1
            else GridPool(widths[-1], pool_grid)
        )
        self.out_dim = widths[-1]
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.blocks(self.stem(x)))

    def feature_map(self, x: torch.Tensor, stages: int) -> torch.Tensor:
        """The (B, C, h, w) map after the first ``stages`` stages, before pooling: it keeps where
        things are in the view, which the pooled output (nearly) discards."""
        if not 1 <= stages <= len(self.stage_ends):
            raise ValueError(f"stages must be in 1..{len(self.stage_ends)}, got {stages}")
        return self.blocks[: self.stage_ends[stages - 1]](self.stem(x))
