"""GoogLeNet inception module (3a) and a small network around it.

Source: C. Szegedy et al., "Going Deeper with Convolutions", CVPR 2015
(arXiv:1409.4842), Figure 2(b) and Table 1, row "inception (3a)". Branch
names follow torchvision.models.googlenet (branch1..branch4), but the convs
are the paper's plain conv + bias + ReLU (torchvision adds BatchNorm and
replaces the 5x5 by a 3x3).

InceptionBlock canonical input: 1x192x28x28 -> output 1x256x28x28
(64 + 128 + 32 + 32 = 256 channels).

InceptionBlock(192) parameter count, computed by hand (weights + biases):
    branch1  1x1 192->64       192*64 + 64        =  12,352
    branch2  1x1 192->96       192*96 + 96        =  18,528
             3x3 96->128       96*128*9 + 128     = 110,720
    branch3  1x1 192->16       192*16 + 16        =   3,088
             5x5 16->32        16*32*25 + 32      =  12,832
    branch4  pool, 1x1 192->32 192*32 + 32        =   6,176
    total                                         = 163,696
(163,328 weights + 368 biases; Table 1 of the paper lists 159K.)

InceptionNet canonical input: 1x3x32x32 -> output 1x10; 171,642 parameters
(stem 3*192*9 + 192 = 5,376; block 163,696; fc 256*10 + 10 = 2,570).
"""

import torch
from torch import nn


def conv_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
        nn.ReLU(inplace=True),
    )


class InceptionBlock(nn.Module):
    def __init__(
        self,
        in_channels: int = 192,
        ch1x1: int = 64,
        ch3x3red: int = 96,
        ch3x3: int = 128,
        ch5x5red: int = 16,
        ch5x5: int = 32,
        pool_proj: int = 32,
    ) -> None:
        super().__init__()
        self.branch1 = conv_relu(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(
            conv_relu(in_channels, ch3x3red, 1),
            conv_relu(ch3x3red, ch3x3, 3),
        )
        self.branch3 = nn.Sequential(
            conv_relu(in_channels, ch5x5red, 1),
            conv_relu(ch5x5red, ch5x5, 5),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1),
            conv_relu(in_channels, pool_proj, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return torch.cat(outputs, 1)


class InceptionNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = conv_relu(3, 192, 3)
        self.inception3a = InceptionBlock(192)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.inception3a(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)
