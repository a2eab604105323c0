"""A plain stack of eight 3x3 convolutions without bias, 3 -> 32 -> 64 -> ... -> 4096 channels: the
network channel-pruning tutorials walk through layer by layer.

Parameters: each conv has 9·c_in·c_out weights, so
9·(3·32 + 32·64 + 64·128 + 128·256 + 256·512 + 512·1024 + 1024·2048 + 2048·4096)
= 9·(96 + 2,048 + 8,192 + 32,768 + 131,072 + 524,288 + 2,097,152 + 8,388,608)
= 9·11,184,224 = 100,658,016.

Pruning half of every conv's outputs (the input's 3 channels stay) leaves
9·(3·16 + 16·32 + 32·64 + 64·128 + 128·256 + 256·512 + 512·1024 + 1024·2048) = 9·2,796,080 = 25,164,720;
keeping the last conv's 4096 outputs (they are the model's output) leaves
9·(2,796,080 - 1024·2048 + 1024·4096) = 9·4,893,232 = 44,039,088.
"""
from __future__ import annotations

import torch
from torch import nn

WIDTHS = (3, 32, 64, 128, 256, 512, 1024, 2048, 4096)


class PlainConv8(nn.Module):
    """Eight 3x3 convs (padding 1, no bias) with a ReLU after each; ``widths`` sets the channels."""

    def __init__(self, widths: tuple[int, ...] = WIDTHS) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False) for c_in, c_out in zip(widths, widths[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = torch.relu(conv(x))
        return x
