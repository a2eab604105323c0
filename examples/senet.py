"""Squeeze-and-excitation block inside a small SE-ResNet for 32x32 images.

Source: J. Hu, L. Shen, G. Sun, "Squeeze-and-Excitation Networks", CVPR 2018
(arXiv:1709.01507), Figure 3 (SE-ResNet module): the residual branch output
is squeezed by global average pooling, passed through FC(C -> C/r) - ReLU -
FC(C/r -> C) - sigmoid, and the resulting per-channel weights rescale the
branch before the identity addition. Reduction ratio r = 16 as in the paper.
SENet here is a reduced CIFAR-style network (3x3 stem, one SE-BasicBlock per
stage at 32/64/128 channels); no count is published for it, the figure below
is measured.

SEBlock canonical input: 1x64x16x16 -> output 1x64x16x16
(parameters: 64*4 + 4 + 4*64 + 64 = 580).
SENet canonical input: 1x3x32x32 -> output 1x10; 311,576 parameters.
"""


import torch
from torch import nn


class SEBlock(nn.Module):
    def __init__(self, channels: int = 64, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction),
            nn.ReLU(inplace=True),
            nn.Linear(channels // reduction, channels),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, _, _ = x.size()
        y = self.avg_pool(x).view(b, c)
        y = self.fc(y).view(b, c, 1, 1)
        return x * y.expand_as(x)


class SEBasicBlock(nn.Module):
    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        reduction: int = 16,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            inplanes, planes, kernel_size=3, stride=stride, padding=1, bias=False
        )
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = SEBlock(planes, reduction)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x

        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)

        out = self.conv2(out)
        out = self.bn2(out)
        out = self.se(out)

        if self.downsample is not None:
            identity = self.downsample(x)

        out += identity
        out = self.relu(out)
        return out


class SENet(nn.Module):
    def __init__(self, num_classes: int = 10, reduction: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = SEBasicBlock(32, 32, reduction=reduction)
        self.layer2 = SEBasicBlock(32, 64, 2, self._downsample(32, 64), reduction)
        self.layer3 = SEBasicBlock(64, 128, 2, self._downsample(64, 128), reduction)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(128, num_classes)

    @staticmethod
    def _downsample(inplanes: int, planes: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(inplanes, planes, kernel_size=1, stride=2, bias=False),
            nn.BatchNorm2d(planes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)

        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)

        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)
