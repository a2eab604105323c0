"""A small C3D-style 3D-convolutional video classifier.

Source: D. Tran, L. Bourdev, R. Fergus, L. Torresani, M. Paluri, "Learning
Spatiotemporal Features with 3D Convolutional Networks", ICCV 2015
(arXiv:1412.0767). Follows the paper's design rules -- 3x3x3 convs with
padding 1, a first pool of 1x2x2 that keeps the temporal length, 2x2x2 pools
after -- with four conv stages of 32/64/128/256 channels instead of C3D's
eight convs, and global average pooling instead of the fc6/fc7 head.
num_classes defaults to 101 (UCF101). This is a reduced model, so no count is
published; the count below is computed by hand.

Canonical input: 1x3x16x112x112 (N x C x frames x H x W) -> output 1x101.
Feature map sizes (T x H x W): 16x112x112 -> pool1 16x56x56 -> pool2 8x28x28
-> pool3 4x14x14 -> pool4 2x7x7 -> avgpool 1x1x1.

Parameter count: 1,190,245
    conv1  3*32*27 + 32      =   2,624
    conv2  32*64*27 + 64     =  55,360
    conv3  64*128*27 + 128   = 221,312
    conv4  128*256*27 + 256  = 884,992
    fc     256*101 + 101     =  25,957
"""

import torch
from torch import nn


class C3DSmall(nn.Module):
    def __init__(self, num_classes: int = 101) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv3d(3, 32, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=(1, 2, 2), stride=(1, 2, 2)),
            nn.Conv3d(32, 64, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=2, stride=2),
            nn.Conv3d(64, 128, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=2, stride=2),
            nn.Conv3d(128, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=2, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)
