"""Generated deep networks for the depth benchmark (benchmarks/depth.py), plain torch.

    cnnshape summary benchmarks/depth_models.py:chain --arg blocks=5000 --input 1,3,32,32
    cnnshape summary benchmarks/depth_models.py:residual --arg blocks=5000 --input 1,3,32,32

Both: stem conv 3 -> C (k3 p1), ``blocks`` blocks at C channels and the input resolution, then
global average pool and a linear head C -> 10.

chain     block = conv3x3 - bn - relu                      (3 graph nodes per block)
residual  block = conv3x3 - bn - relu - conv3x3 - bn, + x, relu  (7 graph nodes per block)

Parameters, C = 16: stem 3*16*9 + 16 = 448, head 16*10 + 10 = 170; a chain block
16*16*9 + 16 (conv) + 2*16 (bn) = 2,352; a residual block twice that, 4,704.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


def _conv_bn(channels: int) -> list[nn.Module]:
    return [nn.Conv2d(channels, channels, kernel_size=3, padding=1), nn.BatchNorm2d(channels)]


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*_conv_bn(channels), nn.ReLU(), *_conv_bn(channels))
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + x)


def _network(body: list[nn.Module], channels: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict(
        stem=nn.Conv2d(3, channels, kernel_size=3, padding=1),
        blocks=nn.Sequential(*body),
        head=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 10)),
    ))


def chain(blocks: int = 500, channels: int = 16) -> nn.Sequential:
    """A plain chain of ``blocks`` conv3x3-bn-relu blocks."""
    return _network([nn.Sequential(*_conv_bn(channels), nn.ReLU()) for _ in range(blocks)], channels)


def residual(blocks: int = 500, channels: int = 16) -> nn.Sequential:
    """``blocks`` residual blocks: conv-bn-relu-conv-bn, identity add, relu."""
    return _network([ResidualBlock(channels) for _ in range(blocks)], channels)
