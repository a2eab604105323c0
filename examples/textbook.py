"""Small modules for textbook shape, parameter and receptive-field cases.

Source: standard CNN course material (e.g. Stanford CS231n "Convolutional
Neural Networks" notes; the depthwise-separable factorisation of A. Howard et
al., "MobileNets", arXiv:1704.04861; the asymmetric 3x1/1x3 factorisation of
C. Szegedy et al., "Rethinking the Inception Architecture", arXiv:1512.00567;
the conv7/s2 + maxpool3/s2 stem of ResNet, arXiv:1512.03385). Each class
docstring gives its canonical input, output and the expected figures.

Receptive field r and jump j (input pixels between adjacent outputs) compose
layer by layer as  r_out = r_in + (k - 1) * j_in,  j_out = j_in * s.
"""

import torch
from torch import nn


class Conv5x5x3(nn.Module):
    """Ten 5x5 filters over 3 channels.

    Input 1x3x32x32 -> output 1x10x28x28 (32 - 5 + 1 = 28).
    Parameters: 5*5*3*10 + 10 = 760.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 10, kernel_size=5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class NormalConv(nn.Module):
    """Ordinary 3x3 conv, 8 -> 8 channels, no bias.

    Input 1x8x32x32 -> output 1x8x32x32.
    Parameters: 3*3*8*8 = 576.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class DepthwiseSeparable(nn.Module):
    """Depthwise 3x3 conv followed by a pointwise 1x1 conv, 8 -> 8 channels.

    Input 1x8x32x32 -> output 1x8x32x32.
    Parameters: depthwise 3*3*8 = 72 + pointwise 8*8 = 64 -> 136
    (versus 576 for NormalConv).
    """

    def __init__(self) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(8, 8, kernel_size=3, padding=1, groups=8, bias=False)
        self.pointwise = nn.Conv2d(8, 8, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class Factorised3x1(nn.Module):
    """A 3x3 conv factorised into a 3x1 conv then a 1x3 conv, one channel.

    Input 1x1x8x8 -> 1x1x6x8 -> output 1x1x6x6.
    Parameters: 3 + 3 = 6 (versus 9 for a 3x3); receptive field 3x3.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 1, kernel_size=(3, 1), bias=False)
        self.conv2 = nn.Conv2d(1, 1, kernel_size=(1, 3), bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class ThreeConvs3x3(nn.Module):
    """Three stacked 3x3 stride-1 convs (padding 1, no bias), as in VGG.

    Input 1x8x32x32 -> output 1x8x32x32.
    Receptive field: 3 -> 5 -> 7, jump 1 -- the same as one 7x7 conv.
    Parameters: 3 * 3*3*8*8 = 1,728 (a single 7x7 conv would have
    7*7*8*8 = 3,136).
    """

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.conv3 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.conv1(x))
        x = self.relu(self.conv2(x))
        return self.conv3(x)


class Conv7Pool3(nn.Module):
    """ResNet stem without normalisation: conv 7x7/2 pad 3, then max pool 3x3/2 pad 1.

    Input 1x3x224x224 -> 1x64x112x112 -> output 1x64x56x56.
    Receptive field / jump: conv r=7, j=2; pool r = 7 + (3-1)*2 = 11, j = 4.
    Parameters: 7*7*3*64 = 9,408.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.conv1(x))
