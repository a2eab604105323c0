"""A small DenseNet-BC for 32x32 images.

Source: G. Huang, Z. Liu, L. van der Maaten, K. Q. Weinberger, "Densely
Connected Convolutional Networks", CVPR 2017 (arXiv:1608.06993). Layer and
attribute names mirror torchvision.models.densenet (norm1/relu1/conv1/...,
denseblockN, transitionN, norm5, classifier). Configuration: the paper's
CIFAR DenseNet-BC layout with growth rate k=12, three dense blocks of 6
bottleneck layers (BN-ReLU-Conv1x1-BN-ReLU-Conv3x3), compression 0.5
(depth L = 3*6*2 + 4 = 40). The paper gives no count for this depth; the
figure below is measured.

Canonical input: 1x3x32x32 -> output 1x10.
Channels: conv0 24 -> block1 24+6*12 = 96 -> transition1 48 (16x16)
-> block2 120 -> transition2 60 (8x8) -> block3 132 -> pool -> fc.

Parameter count: 176,122.
"""

import torch
from torch import nn


class DenseLayer(nn.Module):
    def __init__(self, num_input_features: int, growth_rate: int, bn_size: int) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        inter_features = bn_size * growth_rate
        self.conv1 = nn.Conv2d(num_input_features, inter_features, kernel_size=1, bias=False)
        self.norm2 = nn.BatchNorm2d(inter_features)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(inter_features, growth_rate, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu1(self.norm1(x)))
        return self.conv2(self.relu2(self.norm2(out)))


class DenseBlock(nn.Module):
    """Each layer sees the concatenation of the block input and all earlier
    layers' outputs; the block returns the concatenation of all of them."""

    def __init__(
        self, num_layers: int, num_input_features: int, growth_rate: int, bn_size: int
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DenseLayer(num_input_features + i * growth_rate, growth_rate, bn_size)
            for i in range(num_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    def __init__(self, num_input_features: int, num_output_features: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(num_input_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(num_input_features, num_output_features, kernel_size=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(nn.Module):
    def __init__(
        self,
        growth_rate: int = 12,
        block_config: tuple[int, ...] = (6, 6, 6),
        num_init_features: int = 24,
        bn_size: int = 4,
        compression: float = 0.5,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential()
        self.features.add_module(
            "conv0", nn.Conv2d(3, num_init_features, kernel_size=3, padding=1, bias=False)
        )
        num_features = num_init_features
        for i, num_layers in enumerate(block_config):
            self.features.add_module(
                f"denseblock{i + 1}", DenseBlock(num_layers, num_features, growth_rate, bn_size)
            )
            num_features += num_layers * growth_rate
            if i != len(block_config) - 1:
                num_output_features = int(num_features * compression)
                self.features.add_module(
                    f"transition{i + 1}", Transition(num_features, num_output_features)
                )
                num_features = num_output_features
        self.features.add_module("norm5", nn.BatchNorm2d(num_features))
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(num_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.features(x))
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)
