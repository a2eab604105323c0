"""Models with several inputs, structured outputs and shared parameters.

Not taken from a paper: these are small, purpose-built cases for analysing
forward signatures other than tensor-in/tensor-out, and parameter counts that
must not double-count shared weights. Counts below are computed by hand.

TwoInputNet: forward(image, extra), image 1x3x32x32 and extra 1x10
    -> (logits 1x10, features 1x48). 5,754 parameters:
    conv1 3*16*9 + 16 = 448; conv2 16*32*9 + 32 = 4,640;
    extra_fc 10*16 + 16 = 176; fc 48*10 + 10 = 490.

DictOutputNet: input 1x3x32x32 -> {"logits": 1x10, "embedding": 1x128}.
    10,602 parameters: conv1 448; conv2 4,640; embed 32*128 + 128 = 4,224;
    head 128*10 + 10 = 1,290.

TiedWeights: input 1x64 -> output 1x64. `dec.weight` is the same Parameter
    object as `enc.weight`, and `mid` is applied twice in forward.
    8,384 unique parameters: enc 64*64 + 64 = 4,160; dec bias 64;
    mid 64*64 + 64 = 4,160. Summing each module's parameters without
    deduplicating the tied weight gives 12,480.
"""

import torch
from torch import nn


class TwoInputNet(nn.Module):
    def __init__(self, num_classes: int = 10, extra_features: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.extra_fc = nn.Linear(extra_features, 16)
        self.fc = nn.Linear(32 + 16, num_classes)

    def forward(
        self, image: torch.Tensor, extra: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool(self.relu(self.conv1(image)))
        x = self.relu(self.conv2(x))
        x = torch.flatten(self.avgpool(x), 1)
        e = self.relu(self.extra_fc(extra))
        features = torch.cat([x, e], dim=1)
        return self.fc(features), features


class DictOutputNet(nn.Module):
    def __init__(self, num_classes: int = 10, embedding_dim: int = 128) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.embed = nn.Linear(32, embedding_dim)
        self.head = nn.Linear(embedding_dim, num_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.pool(self.relu(self.conv1(x)))
        x = self.pool(self.relu(self.conv2(x)))
        x = torch.flatten(self.avgpool(x), 1)
        embedding = self.embed(x)
        return {"logits": self.head(embedding), "embedding": embedding}


class TiedWeights(nn.Module):
    def __init__(self, features: int = 64) -> None:
        super().__init__()
        self.enc = nn.Linear(features, features)
        self.mid = nn.Linear(features, features)
        self.dec = nn.Linear(features, features)
        self.dec.weight = self.enc.weight
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.enc(x))
        h = self.relu(self.mid(h))
        h = self.relu(self.mid(h))
        return self.dec(h)
