"""R(2+1)D-18 and R3D-18 video ResNets (torchvision layout).

Source: D. Tran, H. Wang, L. Torresani, J. Ray, Y. LeCun, M. Paluri, "A Closer Look at
Spatiotemporal Convolutions for Action Recognition", CVPR 2018 (arXiv:1711.11248). The module
layout mirrors torchvision.models.video.resnet (``r2plus1d_18``, ``r3d_18``; 400 Kinetics classes),
so the parameter counts match the torchvision model cards exactly.

Canonical input: 1x3x16x112x112 (N x C x frames x H x W) -> output 1x400.
Feature maps (T x H x W): stem 16x56x56 -> layer1 16x56x56 -> layer2 8x28x28 -> layer3 4x14x14
-> layer4 2x7x7 -> avgpool 1x1x1. Each downsampling block strides time and space alike.

R(2+1)D factorises each 3x3x3 convolution into a (1,3,3) spatial convolution to M channels, batch
norm, ReLU, and a (3,1,1) temporal convolution. M is chosen so that the pair has about as many
parameters as the 3x3x3 convolution it replaces (the paper's Eq. 1):

    M = floor(t * d^2 * N_in * N_out / (d^2 * N_in + t * N_out)),  t = 3, d = 3

torchvision computes it once per block from (inplanes, planes) and uses it for both of the block's
convolutions: layer1 (64, 64) -> 144, layer2 first block (64, 128) -> 230, then (128, 128) -> 288,
layer3 (128, 256) -> 460, then 576; layer4 (256, 512) -> 921, then 1152. The stem factorises
C3D's 3x7x7 stem as a (1,7,7) conv to 45 channels and a (3,1,1) conv to 64.

Parameter counts (torchvision model cards) and their "GFLOPS" at 16x112x112:
    r2plus1d_18 / R2Plus1D18  31,505,325   (_ops 40.519)
    r3d_18 / R3D18            33,371,472   (_ops 40.697)
torchvision's "GFLOPS" count one multiply-add as one operation (its resnet50 card gives 4.09 for
the 4,089,184,256 multiply-adds of a 224x224 pass): they are GMACs.

R(2+1)D-18 parameters by stage: stem 3*45*49 + 90 + 45*64*3 + 128 = 15,473; layer1 444,032 (each
(2+1)D conv 64*144*9 + 288 + 144*64*3 = 110,880; a block is two of them and two BN(64), 222,016);
layer2 1,470,360; layer3 5,874,736; layer4 23,495,524; fc 512*400 + 400 = 205,200.

R3D-18 parameters by stage (a 3x3x3 conv has 27*Cin*Cout weights, a BN 2C, a downsampling block
adds a 1x1x1 conv Cin*C and a BN):
    stem    3*64*3*7*7 + 128                                              =     28,352
    layer1  2*(2*27*64*64 + 256)                                          =    442,880
    layer2  (27*64*128 + 27*128*128 + 512 + 64*128 + 256) + (2*27*128*128 + 512)   =  1,557,760
    layer3  (27*128*256 + 27*256*256 + 1024 + 128*256 + 512) + (2*27*256*256 + 1024) =  6,228,480
    layer4  (27*256*512 + 27*512*512 + 2048 + 256*512 + 1024) + (2*27*512*512 + 2048) = 24,908,800
    fc      512*400 + 400                                                 =    205,200
    total                                                                 = 33,371,472
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def mid_planes(in_planes: int, out_planes: int) -> int:
    """R(2+1)D's M: the (2+1)D pair has about the parameters of one 3x3x3 conv (t = d = 3)."""
    return (in_planes * out_planes * 3 * 3 * 3) // (in_planes * 3 * 3 + 3 * out_planes)


class Conv3DSimple(nn.Conv3d):
    """A full 3x3x3 convolution (R3D)."""

    def __init__(self, in_planes: int, out_planes: int, midplanes: int | None = None, stride: int = 1,
                 padding: int = 1) -> None:
        super().__init__(in_planes, out_planes, kernel_size=(3, 3, 3), stride=stride, padding=padding, bias=False)

    @staticmethod
    def get_downsample_stride(stride: int) -> tuple[int, int, int]:
        return stride, stride, stride


class Conv2Plus1D(nn.Sequential):
    """(1,3,3) spatial conv to ``midplanes``, BN, ReLU, then (3,1,1) temporal conv."""

    def __init__(self, in_planes: int, out_planes: int, midplanes: int, stride: int = 1, padding: int = 1) -> None:
        super().__init__(
            nn.Conv3d(in_planes, midplanes, kernel_size=(1, 3, 3), stride=(1, stride, stride),
                      padding=(0, padding, padding), bias=False),
            nn.BatchNorm3d(midplanes),
            nn.ReLU(inplace=True),
            nn.Conv3d(midplanes, out_planes, kernel_size=(3, 1, 1), stride=(stride, 1, 1),
                      padding=(padding, 0, 0), bias=False),
        )

    @staticmethod
    def get_downsample_stride(stride: int) -> tuple[int, int, int]:
        return stride, stride, stride


ConvBuilder = Callable[..., nn.Module]


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, conv_builder: ConvBuilder, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        midplanes = mid_planes(inplanes, planes)  # once per block, for both convs, as torchvision does
        super().__init__()
        self.conv1 = nn.Sequential(conv_builder(inplanes, planes, midplanes, stride), nn.BatchNorm3d(planes),
                                   nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(conv_builder(planes, planes, midplanes), nn.BatchNorm3d(planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        out = self.conv2(self.conv1(x))
        if self.downsample is not None:
            residual = self.downsample(x)
        out += residual
        return self.relu(out)


class BasicStem(nn.Sequential):
    """R3D's stem: one 3x7x7 conv."""

    def __init__(self) -> None:
        super().__init__(
            nn.Conv3d(3, 64, kernel_size=(3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
            nn.BatchNorm3d(64),
            nn.ReLU(inplace=True),
        )


class R2Plus1dStem(nn.Sequential):
    """R(2+1)D's stem: (1,7,7) to 45 channels, then (3,1,1) to 64."""

    def __init__(self) -> None:
        super().__init__(
            nn.Conv3d(3, 45, kernel_size=(1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
            nn.BatchNorm3d(45),
            nn.ReLU(inplace=True),
            nn.Conv3d(45, 64, kernel_size=(3, 1, 1), stride=(1, 1, 1), padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(64),
            nn.ReLU(inplace=True),
        )


class VideoResNet(nn.Module):
    def __init__(self, conv_builder: type[Conv3DSimple] | type[Conv2Plus1D], stem: type[nn.Module],
                 layers: tuple[int, int, int, int] = (2, 2, 2, 2), num_classes: int = 400) -> None:
        super().__init__()
        self.inplanes = 64
        self.stem = stem()
        self.layer1 = self._make_layer(conv_builder, 64, layers[0], stride=1)
        self.layer2 = self._make_layer(conv_builder, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(conv_builder, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(conv_builder, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.fc = nn.Linear(512 * BasicBlock.expansion, num_classes)

    def _make_layer(self, conv_builder: type[Conv3DSimple] | type[Conv2Plus1D], planes: int, blocks: int,
                    stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * BasicBlock.expansion:
            downsample = nn.Sequential(
                nn.Conv3d(self.inplanes, planes * BasicBlock.expansion, kernel_size=1,
                          stride=conv_builder.get_downsample_stride(stride), bias=False),
                nn.BatchNorm3d(planes * BasicBlock.expansion),
            )
        layers = [BasicBlock(self.inplanes, planes, conv_builder, stride, downsample)]
        self.inplanes = planes * BasicBlock.expansion
        layers += [BasicBlock(self.inplanes, planes, conv_builder) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        x = self.avgpool(x)
        x = x.flatten(1)
        return self.fc(x)


class R2Plus1D18(VideoResNet):
    def __init__(self, num_classes: int = 400) -> None:
        super().__init__(Conv2Plus1D, R2Plus1dStem, (2, 2, 2, 2), num_classes)


class R3D18(VideoResNet):
    def __init__(self, num_classes: int = 400) -> None:
        super().__init__(Conv3DSimple, BasicStem, (2, 2, 2, 2), num_classes)


def r2plus1d_18(num_classes: int = 400) -> VideoResNet:
    return R2Plus1D18(num_classes)


def r3d_18(num_classes: int = 400) -> VideoResNet:
    return R3D18(num_classes)
