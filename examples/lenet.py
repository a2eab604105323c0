"""LeNet-5 for 32x32 grayscale digits.

Source: Y. LeCun, L. Bottou, Y. Bengio, P. Haffner, "Gradient-Based Learning
Applied to Document Recognition", Proc. IEEE 86(11), 1998.

This is the common modern rendering of the paper's network: tanh activations,
parameter-free 2x2 average pooling for the subsampling layers S2/S4, a fully
connected C3 (the paper uses a sparse connection table) and a plain linear
output layer instead of the RBF units.

Canonical input: 1x1x32x32 -> output 1x10.

Parameter count: 61,706
    conv1  1*6*5*5 + 6      =    156
    conv2  6*16*5*5 + 16    =  2,416
    fc1    400*120 + 120    = 48,120
    fc2    120*84 + 84      = 10,164
    fc3    84*10 + 10       =    850
(The 1998 paper, with sparse C3 and trainable subsampling, reports ~60,000.)
"""

import torch
from torch import nn


class LeNet5(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=5),  # C1: 32x32 -> 28x28
            nn.Tanh(),
            nn.AvgPool2d(kernel_size=2, stride=2),  # S2: -> 14x14
            nn.Conv2d(6, 16, kernel_size=5),  # C3: -> 10x10
            nn.Tanh(),
            nn.AvgPool2d(kernel_size=2, stride=2),  # S4: -> 5x5
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120),  # C5
            nn.Tanh(),
            nn.Linear(120, 84),  # F6
            nn.Tanh(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)
