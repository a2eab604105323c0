"""DeepLabV3 and FCN with a dilated ResNet-50 backbone and an auxiliary head (torchvision layout).

Sources: L.-C. Chen, G. Papandreou, F. Schroff, H. Adam, "Rethinking Atrous Convolution for
Semantic Image Segmentation" (arXiv:1706.05587); J. Long, E. Shelhamer, T. Darrell, "Fully
Convolutional Networks for Semantic Segmentation", CVPR 2015. The module layout mirrors
torchvision.models.segmentation (``deeplabv3_resnet50``, ``fcn_resnet50`` with ``aux_loss=True``
and 21 VOC classes, as their published weights are built), so the parameter counts match the
torchvision model cards exactly.

Canonical input: 1x3x520x520 (torchvision's evaluation resize) -> a dict
``{"out": 1x21x520x520, "aux": 1x21x520x520}``; both heads are upsampled bilinearly to the
input size. Output stride 8: layer3 and layer4 trade their stride 2 for dilation 2 and 4
(``replace_stride_with_dilation=[False, True, True]``), so 520 -> conv1 260 -> maxpool 130 ->
layer2 65 -> layer3 65 (dilation 2) -> layer4 65 (dilation 4).

Parameter counts (torchvision model cards):
    DeepLabV3ResNet50  42,004,074   (_ops 178.722 GFLOPS at 520x520)
    FCNResNet50        35,322,218   (_ops 152.717 GFLOPS at 520x520)
torchvision's "GFLOPS" count one multiply-add as one operation (its resnet50 card gives 4.09 for
the 4,089,184,256 multiply-adds of a 224x224 pass): they are GMACs.

How the DeepLabV3 count splits:
    backbone (ResNet-50 without avgpool/fc)          23,508,032 = 25,557,032 - (2048*1000 + 1000)
    ASPP: 1x1 branch 2048*256 + BN 512               =   524,800
          three 3x3 dilated branches 3*(2048*256*9 + 512) = 14,157,312
          pooling branch 2048*256 + 512              =   524,800
          project 1280*256 + 512                     =   328,192
    head: 3x3 256*256*9 + BN 512                     =   590,336
          1x1 classifier 256*21 + 21                 =     5,397
    aux FCNHead: 3x3 1024*256*9 + 512 + 256*21 + 21  = 2,365,205
    total                                            = 42,004,074
FCN replaces the DeepLab head by FCNHead(2048): 2048*512*9 + 1024 + 512*21 + 21 = 9,448,981;
23,508,032 + 9,448,981 + 2,365,205 = 35,322,218.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=dilation,
                     dilation=dilation, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck, with the dilation of its 3x3 conv."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


def _make_layer(state: dict[str, int], planes: int, blocks: int, stride: int = 1,
                dilate: bool = False) -> nn.Sequential:
    """torchvision's ``ResNet._make_layer``; ``state`` holds its running ``inplanes`` and ``dilation``."""
    downsample = None
    previous_dilation = state["dilation"]
    if dilate:  # keep the resolution: the stride becomes dilation from here on
        state["dilation"] *= stride
        stride = 1
    if stride != 1 or state["inplanes"] != planes * Bottleneck.expansion:
        downsample = nn.Sequential(conv1x1(state["inplanes"], planes * Bottleneck.expansion, stride),
                                   nn.BatchNorm2d(planes * Bottleneck.expansion))
    layers = [Bottleneck(state["inplanes"], planes, stride, downsample, previous_dilation)]
    state["inplanes"] = planes * Bottleneck.expansion
    layers += [Bottleneck(state["inplanes"], planes, dilation=state["dilation"]) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class DilatedResNet50(nn.ModuleDict):
    """ResNet-50 up to layer4 (torchvision's ``IntermediateLayerGetter`` over ``resnet50``: the
    children in order, avgpool and fc dropped). Returns ``{"aux": layer3, "out": layer4}``."""

    def __init__(self, replace_stride_with_dilation: tuple[bool, bool, bool] = (False, True, True)) -> None:
        state = {"inplanes": 64, "dilation": 1}
        layers: dict[str, nn.Module] = OrderedDict([
            ("conv1", nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)),
            ("bn1", nn.BatchNorm2d(64)),
            ("relu", nn.ReLU(inplace=True)),
            ("maxpool", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
        ])
        layers["layer1"] = _make_layer(state, 64, 3)
        for name, planes, blocks, dilate in zip(("layer2", "layer3", "layer4"), (128, 256, 512), (4, 6, 3),
                                                replace_stride_with_dilation):
            layers[name] = _make_layer(state, planes, blocks, stride=2, dilate=dilate)
        super().__init__(layers)
        self.return_layers = {"layer3": "aux", "layer4": "out"}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = OrderedDict()
        for name, module in self.items():
            x = module(x)
            if name in self.return_layers:
                out[self.return_layers[name]] = x
        return out


class ASPPConv(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, dilation: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )


class ASPPPooling(nn.Sequential):
    """Image-level features: global average pool, 1x1 conv, upsampled back to the map size."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        for mod in self:
            x = mod(x)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: a 1x1 branch, three dilated 3x3 branches, image pooling."""

    def __init__(self, in_channels: int, atrous_rates: tuple[int, ...] = (12, 24, 36), out_channels: int = 256) -> None:
        super().__init__()
        modules: list[nn.Module] = [
            nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU())
        ]
        modules += [ASPPConv(in_channels, out_channels, rate) for rate in atrous_rates]
        modules.append(ASPPPooling(in_channels, out_channels))
        self.convs = nn.ModuleList(modules)
        self.project = nn.Sequential(
            nn.Conv2d(len(self.convs) * out_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Dropout(0.5),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([conv(x) for conv in self.convs], dim=1))


class DeepLabHead(nn.Sequential):
    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__(
            ASPP(in_channels, (12, 24, 36)),
            nn.Conv2d(256, 256, 3, padding=1, bias=False),
            nn.BatchNorm2d(256),
            nn.ReLU(),
            nn.Conv2d(256, num_classes, 1),
        )


class FCNHead(nn.Sequential):
    def __init__(self, in_channels: int, channels: int) -> None:
        inter_channels = in_channels // 4
        super().__init__(
            nn.Conv2d(in_channels, inter_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(inter_channels),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Conv2d(inter_channels, channels, 1),
        )


class SegmentationModel(nn.Module):
    """torchvision's ``_SimpleSegmentationModel``: backbone features, a head on ``out`` and an
    auxiliary head on ``aux``, each upsampled to the input size."""

    def __init__(self, backbone: nn.Module, classifier: nn.Module, aux_classifier: nn.Module | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.classifier = classifier
        self.aux_classifier = aux_classifier

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        input_shape = x.shape[-2:]
        features = self.backbone(x)
        result: dict[str, torch.Tensor] = OrderedDict()
        out = self.classifier(features["out"])
        result["out"] = F.interpolate(out, size=input_shape, mode="bilinear", align_corners=False)
        if self.aux_classifier is not None:
            aux = self.aux_classifier(features["aux"])
            result["aux"] = F.interpolate(aux, size=input_shape, mode="bilinear", align_corners=False)
        return result


class DeepLabV3ResNet50(SegmentationModel):
    def __init__(self, num_classes: int = 21, aux_loss: bool = True) -> None:
        super().__init__(DilatedResNet50(), DeepLabHead(2048, num_classes),
                         FCNHead(1024, num_classes) if aux_loss else None)


class FCNResNet50(SegmentationModel):
    def __init__(self, num_classes: int = 21, aux_loss: bool = True) -> None:
        super().__init__(DilatedResNet50(), FCNHead(2048, num_classes),
                         FCNHead(1024, num_classes) if aux_loss else None)
