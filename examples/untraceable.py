"""Models that torch.fx cannot trace symbolically: each uses one pattern common in real code.

``cnnshape --tracer auto`` analyses them with the eager tracer. Every model runs a CPU forward
on its input below; shapes and parameter counts are worked out here by hand.

OddPad        1x3x31x31 -> 1x8x16x16    ``if x.shape[-1] % 2:`` pads odd sizes to even (31 -> 32);
              conv 3->8, k3 s2 p1: (32 + 2 - 3) // 2 + 1 = 16. Params 3*8*9 + 8 = 224.
LenLoop       1x4x8x8 -> 1x4x8x8        ``for _ in range(len(x))`` / ``int(x.shape[1])``;
              conv 4->4 k3 p1 applied once per sample. Params 4*4*9 + 4 = 148.
RowIterator   1x2x8x8 -> 1x2x8x8        iterates over the batch (``for sample in x``) and concatenates.
              conv 2->2 k3 p1: params 2*2*9 + 2 = 38.
SamePad       1x3x30x30 -> 1x8x15x15    TF-style "same" padding computed in forward with math.ceil:
              out = ceil(30 / 2) = 15, pad = max((15 - 1) * 2 + 3 - 30, 0) = 1 (0 before, 1 after).
              Params 3*8*9 + 8 = 224.
ShapeAssert   1x3x16x16 -> 1x10         ``assert x.shape[1] == 3``; conv 3->6 k3 p1, global pool, fc 6->10.
              Params 3*6*9 + 6 + 6*10 + 10 = 238.
DictHeads     1x3x16x16 -> {"logits": 1x10, "mask": 1x1x16x16}: the keys of the output dict depend
              on a size test. Params conv 3*8*9 + 8 = 224, fc 8*10 + 10 = 90, mask conv 8*1 + 1 = 9:
              323.
SharedRepeat  1x8x8x8 -> 1x8x8x8        one block applied ``x.shape[1] // 4`` times (twice here):
              shared weights, 8*8*9 + 8 = 584 params.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class OddPad(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 2:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class LenLoop(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = int(x.shape[1])
        outs = [self.conv(x[i : i + 1, :channels]) for i in range(len(x))]
        return torch.cat(outs, dim=0)


class RowIterator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.conv(sample) for sample in x])


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME": total padding so that out = ceil(size / stride), split low/high."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SamePad(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = same_padding(x.shape[-2], 3, 2)
        left, right = same_padding(x.shape[-1], 3, 2)
        return self.conv(F.pad(x, (left, right, top, bottom)))


class ShapeAssert(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, kernel_size=3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1] == 3, f"expected RGB input, got {x.shape[1]} channels"
        return self.fc(torch.flatten(self.pool(self.conv(x)), 1))


class DictHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)
        self.mask = nn.Conv2d(8, 1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = F.relu(self.conv(x))
        out = {"logits": self.fc(torch.flatten(self.pool(features), 1))}
        if min(x.shape[-2:]) >= 16:
            out["mask"] = self.mask(features)
        return out


class SharedRepeat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Conv2d(8, 8, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(x.shape[1] // 4):
            x = F.relu(self.block(x))
        return x


#: name -> (input shape, output shapes by key, parameter count) from the docstring arithmetic
CASES: dict[str, tuple[tuple[int, ...], dict[str, tuple[int, ...]], int]] = {
    "OddPad": ((1, 3, 31, 31), {"": (1, 8, 16, 16)}, 224),
    "LenLoop": ((1, 4, 8, 8), {"": (1, 4, 8, 8)}, 148),
    "RowIterator": ((1, 2, 8, 8), {"": (1, 2, 8, 8)}, 38),
    "SamePad": ((1, 3, 30, 30), {"": (1, 8, 15, 15)}, 224),
    "ShapeAssert": ((1, 3, 16, 16), {"": (1, 10)}, 238),
    "DictHeads": ((1, 3, 16, 16), {"['logits']": (1, 10), "['mask']": (1, 1, 16, 16)}, 323),
    "SharedRepeat": ((1, 8, 8, 8), {"": (1, 8, 8, 8)}, 584),
}
