"""RegNetX / RegNetY, torchvision layout and widths.

Source: I. Radosavovic, R. P. Kosaraju, R. Girshick, K. He, P. Dollár, "Designing Network Design
Spaces", CVPR 2020 (arXiv:2003.13678); block and stage widths as torchvision.models.regnet
derives them. Written from the paper's design, not from torchvision's code.

Widths. Block j of `depth` gets the linear width u_j = w_0 + w_a·j (paper eq. 2), rounded in the
log domain to w_0·w_m^s_j with s_j = round(log(u_j / w_0) / log(w_m)) (eq. 3), then to a multiple
of 8 (eq. 4). Consecutive blocks of equal width form a stage. With bottleneck multiplier 1.0, the
group width of a stage is min(group_width, stage width) and the stage width is rounded to a
multiple of it (to the nearest, never more than 10% below). As in torchvision, `__init__` computes
this with tensor arithmetic and `.tolist()`, which the meta device cannot run.

Blocks. X block: 1x1 conv-bn-relu, 3x3 grouped conv (stride)-bn-relu, 1x1 conv-bn, added to the
input (through a strided 1x1 conv-bn when the shape changes), then relu. The Y block adds
squeeze-and-excitation after the 3x3 conv: global pool, 1x1 conv to round(0.25·block input width)
channels with bias, relu, 1x1 conv back with bias, sigmoid, channel scaling. Stem: 3x3 conv, 32
channels, stride 2, bn, relu. Each stage's first block has stride 2. Head: global average pool,
fc to 1000 classes.

Canonical input: 1x3x224x224 -> output 1x1000 (224 -> 112 stem -> 56, 28, 14, 7 stages).

            depth  w_0  w_a     w_m   group  SE    stage widths / depths          params (torchvision)
    y_400mf   16    48   27.89  2.09    8   0.25  48,104,208,440 / 1,3,6,6         4,344,144  (0.40 GMACs)
    x_400mf   22    24   24.48  2.54   16   -     32,64,160,400 / 1,2,7,12         5,495,976  (0.41 GMACs)
    y_128gf   27   456  160.83  2.52  264   0.25  528,1056,2904,7392 / 2,7,17,1  644,812,894  (127.52 GMACs)

Parameter arithmetic, regnet_x_400mf stage 1 (one block, 32 -> 32, group width 16 so 2 groups,
stride 2): 1x1 32·32 + bn 64; 3x3 grouped 32·16·9 + bn 64; 1x1 32·32 + bn 64; projection
32·32 + bn 64: 1,024 + 4,608 + 1,024 + 1,024 + 4·64 = 7,936.
"""
from __future__ import annotations

import itertools
import math

import torch
from torch import nn

WIDTH_QUANTUM = 8


def _round_to_multiple(value: int, divisor: int) -> int:
    """Nearest multiple of ``divisor`` (halves round up), at least ``divisor``, and raised by one
    ``divisor`` if that lost more than 10% of ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def regnet_stages(
    depth: int, w_0: int, w_a: float, w_m: float, group_width: int
) -> list[tuple[int, int, int]]:
    """(width, number of blocks, group width) per stage of the quantised linear width rule."""
    u = torch.arange(depth) * w_a + w_0
    s = torch.round(torch.log(u / w_0) / math.log(w_m))
    widths = torch.round(w_0 * torch.pow(w_m, s) / WIDTH_QUANTUM) * WIDTH_QUANTUM
    stages = []
    for width, run in itertools.groupby(widths.int().tolist()):
        group = min(group_width, width)
        stages.append((_round_to_multiple(width, group), len(list(run)), group))
    return stages


def conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, squeezed: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.sigmoid(self.fc2(self.relu(self.fc1(self.avgpool(x)))))
        return x * scale


class Block(nn.Module):
    """X block; a Y block when ``se_ratio`` > 0."""

    def __init__(self, w_in: int, w_out: int, stride: int, group_width: int, se_ratio: float) -> None:
        super().__init__()
        self.a = conv_bn(w_in, w_out, 1)
        self.b = conv_bn(w_out, w_out, 3, stride, groups=w_out // group_width)
        self.se = SqueezeExcitation(w_out, int(round(se_ratio * w_in))) if se_ratio else None
        self.c = conv_bn(w_out, w_out, 1, relu=False)
        self.proj = conv_bn(w_in, w_out, 1, stride, relu=False) if w_in != w_out or stride != 1 else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.b(self.a(x))
        if self.se is not None:
            out = self.se(out)
        out = self.c(out)
        shortcut = x if self.proj is None else self.proj(x)
        return self.relu(out + shortcut)


class RegNet(nn.Module):
    def __init__(
        self,
        depth: int,
        w_0: int,
        w_a: float,
        w_m: float,
        group_width: int,
        se_ratio: float = 0.0,
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        self.stem = conv_bn(3, 32, 3, stride=2)
        stages = []
        w_in = 32
        for width, blocks, group in regnet_stages(depth, w_0, w_a, w_m, group_width):
            stages.append(nn.Sequential(*[
                Block(w_in if i == 0 else width, width, 2 if i == 0 else 1, group, se_ratio)
                for i in range(blocks)
            ]))
            w_in = width
        self.stages = nn.Sequential(*stages)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(w_in, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def regnet_y_400mf(num_classes: int = 1000) -> RegNet:
    return RegNet(16, 48, 27.89, 2.09, 8, se_ratio=0.25, num_classes=num_classes)


def regnet_x_400mf(num_classes: int = 1000) -> RegNet:
    return RegNet(22, 24, 24.48, 2.54, 16, num_classes=num_classes)


def regnet_y_128gf(num_classes: int = 1000) -> RegNet:
    return RegNet(27, 456, 160.83, 2.52, 264, se_ratio=0.25, num_classes=num_classes)
