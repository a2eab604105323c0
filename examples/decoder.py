"""A DCGAN-generator-style transposed-convolution decoder.

Source: A. Radford, L. Metz, S. Chintala, "Unsupervised Representation
Learning with Deep Convolutional Generative Adversarial Networks", ICLR 2016
(arXiv:1511.06434), and the generator of the PyTorch DCGAN example
(nz=100, ngf=64, bias-free ConvTranspose2d + BatchNorm2d + ReLU, Tanh output).
Two of the four 2x upsampling layers are swapped for equivalent-size
variants that use output_padding and dilation, so both appear:
layer 3 is k3 s2 p1 with output_padding=1, and layer 4 is k3 s2 p2 with
dilation=2 and output_padding=1.

Canonical input: 1x100x1x1 -> output 1x3x64x64.

Output size of ConvTranspose2d, per spatial dim:
    H_out = (H_in - 1)*S - 2*P + D*(F - 1) + output_padding + 1
    layer 1  F4 S1 P0 D1 op0:   (1 - 1)*1 - 0 + 1*3 + 0 + 1 =  4
    layer 2  F4 S2 P1 D1 op0:   (4 - 1)*2 - 2 + 1*3 + 0 + 1 =  8
    layer 3  F3 S2 P1 D1 op1:   (8 - 1)*2 - 2 + 1*2 + 1 + 1 = 16
    layer 4  F3 S2 P2 D2 op1:  (16 - 1)*2 - 4 + 2*2 + 1 + 1 = 32
    layer 5  F4 S2 P1 D1 op0:  (32 - 1)*2 - 2 + 1*3 + 0 + 1 = 64

Parameter count: 3,289,984 (ConvTranspose2d weights are in*out*F*F;
BatchNorm2d has 2*C)
    100*512*16 + 2*512 =   820,224
    512*256*16 + 2*256 = 2,097,664
    256*128*9  + 2*128 =   295,168
    128*64*9   + 2*64  =    73,856
    64*3*16            =     3,072
"""

import torch
from torch import nn


class TransposedDecoder(nn.Module):
    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 3) -> None:
        super().__init__()
        self.main = nn.Sequential(
            # nz x 1 x 1 -> (ngf*8) x 4 x 4
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 8),
            nn.ReLU(True),
            # -> (ngf*4) x 8 x 8
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            # -> (ngf*2) x 16 x 16
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 3, 2, 1, output_padding=1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            # -> ngf x 32 x 32
            nn.ConvTranspose2d(ngf * 2, ngf, 3, 2, 2, output_padding=1, dilation=2, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            # -> nc x 64 x 64
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)
