"""U-Net with padded convolutions.

Source: O. Ronneberger, P. Fischer, T. Brox, "U-Net: Convolutional Networks
for Biomedical Image Segmentation", MICCAI 2015 (arXiv:1505.04597), Figure 1.
Same channel plan (64-128-256-512-1024), two 3x3 conv + ReLU per level, 2x2
max pooling, 2x2 stride-2 up-convolutions, skip concatenation and a final 1x1
conv, with no BatchNorm, as in the paper. The one departure: the 3x3 convs use
padding=1, so the output has the input's spatial size and the skips need no
cropping. The input height and width must be multiples of 16 (four 2x2 pools).

Canonical input: 1x1x256x256 -> output 1x2x256x256.

Parameter count (in_channels=1, num_classes=2, base=64): 31,030,658
    DoubleConv(a, b) = 9*a*b + b + 9*b*b + b
    inc    DoubleConv(1, 64)                                =     37,568
    down1  DoubleConv(64, 128)                              =    221,440
    down2  DoubleConv(128, 256)                             =    885,248
    down3  DoubleConv(256, 512)                             =  3,539,968
    down4  DoubleConv(512, 1024)                            = 14,157,824
    up1    ConvT 1024->512 (4*1024*512 + 512) + DoubleConv(1024, 512)
                                    = 2,097,664 + 7,078,912 =  9,176,576
    up2    ConvT 512->256 + DoubleConv(512, 256)
                                    =   524,544 + 1,769,984 =  2,294,528
    up3    ConvT 256->128 + DoubleConv(256, 128)
                                    =   131,200 +   442,624 =    573,824
    up4    ConvT 128->64 + DoubleConv(128, 64)
                                    =    32,832 +   110,720 =    143,552
    outc   1x1 64->2                = 64*2 + 2              =        130
With in_channels=3 the first conv gains 9*2*64 = 1,152 weights, giving
the often-quoted 31,031,810. The paper does not state a count.
"""

import torch
from torch import nn


class DoubleConv(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
        )


class Down(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.MaxPool2d(kernel_size=2, stride=2),
            DoubleConv(in_channels, out_channels),
        )


class Up(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        self.conv = DoubleConv(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        x = torch.cat([skip, x], dim=1)
        return self.conv(x)


class UNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 2, base: int = 64) -> None:
        super().__init__()
        self.inc = DoubleConv(in_channels, base)
        self.down1 = Down(base, base * 2)
        self.down2 = Down(base * 2, base * 4)
        self.down3 = Down(base * 4, base * 8)
        self.down4 = Down(base * 8, base * 16)
        self.up1 = Up(base * 16, base * 8)
        self.up2 = Up(base * 8, base * 4)
        self.up3 = Up(base * 4, base * 2)
        self.up4 = Up(base * 2, base)
        self.outc = nn.Conv2d(base, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return self.outc(x)
