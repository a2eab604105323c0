"""Models that cannot run (or run wrongly) on their intended input, for the diagnostics tests."""
import torch
from torch import nn


class WrongInFeatures(nn.Module):
    """On 1x1x32x32: conv5 -> 28, pool -> 14, conv5 -> 10, pool -> 5, so fc receives 32*5*5 = 800
    features, not the 32*7*7 = 1568 it was built for (that fits a 1x1x40x40 input: 40-4=36, 18, 14, 7)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5)
        self.conv2 = nn.Conv2d(16, 32, 5)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(32 * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        return self.fc(x)


class WrongInChannels(nn.Module):
    """conv1 produces 16 channels; conv2 expects 8."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3)
        self.conv2 = nn.Conv2d(8, 32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class TooSmall(nn.Module):
    """On 1x3x4x4: conv3 -> 2x2, pool -> 1x1, second pool -> (1 - 2) // 2 + 1 = 0: empty."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3), nn.MaxPool2d(2), nn.MaxPool2d(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class BatchChangingView(nn.Module):
    """On 1x3x32x32: conv -> 1x16x10x10 (1600 values per sample); view(-1, 400) makes a batch of 4."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 5, stride=3)
        self.fc = nn.Linear(400, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        x = x.view(-1, 400)
        return self.fc(x)
