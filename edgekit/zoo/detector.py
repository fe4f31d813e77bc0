"""A small CenterNet-style single-shot detector (workstation tier: torch).

Outputs at stride 4: ``heatmap`` (sigmoid class scores per cell), ``size`` (log of box
width and height in stride units) and ``offset`` (box centre minus the cell's corner, in
stride units). Decoding is numpy, in ``edgekit.tasks.detection``.
"""

from __future__ import annotations

import torch
from torch import nn

STRIDE = 4
OUTPUT_NAMES = ("heatmap", "size", "offset")


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class CenterNetSmall(nn.Module):
    """Stride-2 stages down to 1/16, a top-down path back to 1/4, 1×1 heads (≈0.3 M parameters)."""

    def __init__(self, num_classes: int, width: int = 16, features: int = 48) -> None:
        super().__init__()
        w, f = width, features
        self.stem = nn.Sequential(_conv(3, w, 2), _conv(w, 2 * w, 2), _conv(2 * w, 2 * w))  # /4
        self.stage3 = nn.Sequential(_conv(2 * w, 4 * w, 2), _conv(4 * w, 4 * w))            # /8
        self.stage4 = nn.Sequential(_conv(4 * w, 8 * w, 2), _conv(8 * w, 8 * w))            # /16
        self.lateral2 = nn.Conv2d(2 * w, f, 1)
        self.lateral3 = nn.Conv2d(4 * w, f, 1)
        self.lateral4 = nn.Conv2d(8 * w, f, 1)
        self.smooth = _conv(f, f)
        self.heatmap = nn.Conv2d(f, num_classes, 1)
        self.size = nn.Conv2d(f, 2, 1)
        self.offset = nn.Conv2d(f, 2, 1)
        nn.init.constant_(self.heatmap.bias, -4.6)  # start near p = 0.01 (focal-loss prior)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c2 = self.stem(x)
        c3 = self.stage3(c2)
        c4 = self.stage4(c3)
        p3 = self.lateral3(c3) + nn.functional.interpolate(self.lateral4(c4), scale_factor=2.0, mode="nearest")
        p2 = self.lateral2(c2) + nn.functional.interpolate(p3, scale_factor=2.0, mode="nearest")
        features = self.smooth(p2)
        return torch.sigmoid(self.heatmap(features)), self.size(features), self.offset(features)


def centernet_small(num_classes: int = 3, width: int = 16, features: int = 48) -> CenterNetSmall:
    return CenterNetSmall(num_classes, width, features)
