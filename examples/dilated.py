"""Stacks of dilated convolutions, 2-D and 1-D.

DilatedStack -- source: F. Yu, V. Koltun, "Multi-Scale Context Aggregation by
Dilated Convolutions", ICLR 2016 (arXiv:1511.07122), the "context module":
3x3 convs with exponentially growing dilation and padding = dilation, so the
spatial size is kept while the receptive field grows to
1 + 2*(1 + 2 + 4 + 8) = 31. This is a reduced version (dilations 1, 2, 4, 8,
no identity initialisation); no count is published.

    Canonical input: 1x3x64x64 -> output 1x64x64x64.
    Parameter count: 112,576
        3*64*9 + 64 = 1,792; then 3 x (64*64*9 + 64) = 3 x 36,928 = 110,784

DilatedConv1dStack -- source: A. van den Oord et al., "WaveNet: A Generative
Model for Raw Audio", 2016 (arXiv:1609.03499): kernel-size-2 1-D convs with
dilations 1, 2, ..., 512 (receptive field 1 + (2-1)*1023 = 1024 samples).
Reduced to a plain conv + ReLU stack (no gated units, residual or skip
connections). With causal=True each conv is preceded by a left-only zero pad
of (kernel_size-1)*dilation, so the length is kept and no output sees the
future; with causal=False the convs are unpadded and the length shrinks by
(kernel_size-1)*sum(dilations) = 1023.

    Canonical input: 1x1x16000 -> output 1x32x16000 (causal=True) or
    1x32x14977 (causal=False).
    Parameter count: 20,864
        input 1x1 conv 1*32 + 32 = 64; then 10 x (32*32*2 + 32) = 10 x 2,080
"""

import torch
from torch import nn


class DilatedStack(nn.Module):
    def __init__(
        self, in_channels: int = 3, channels: int = 64, dilations: tuple[int, ...] = (1, 2, 4, 8)
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for dilation in dilations:
            layers.append(
                nn.Conv2d(in_channels, channels, kernel_size=3, padding=dilation, dilation=dilation)
            )
            layers.append(nn.ReLU(inplace=True))
            in_channels = channels
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DilatedConv1dStack(nn.Module):
    def __init__(
        self,
        in_channels: int = 1,
        channels: int = 32,
        kernel_size: int = 2,
        dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
        causal: bool = True,
    ) -> None:
        super().__init__()
        self.input_conv = nn.Conv1d(in_channels, channels, kernel_size=1)
        layers: list[nn.Module] = []
        for dilation in dilations:
            if causal:
                layers.append(nn.ConstantPad1d(((kernel_size - 1) * dilation, 0), 0.0))
            layers.append(nn.Conv1d(channels, channels, kernel_size, dilation=dilation))
            layers.append(nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_conv(x)
        return self.layers(x)
