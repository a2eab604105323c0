"""Models built with constructs beyond plain layers: distributions as outputs, TorchScript, pruning.

Each builds with no arguments and runs a CPU forward on the input below; counts are by hand.

GaussianPolicy   1x8 -> Normal(loc 1x2, scale 1x2)    a continuous-action policy (PPO style): a
                 tanh MLP gives the mean, a learned log-std vector (broadcast to the mean) the scale.
                 Params 8*64 + 64 + 64*64 + 64 + 64*2 + 2 + 2 = 4,868.
ActorCritic      1x16 -> (Categorical(logits 1x4), value 1x1)   a discrete policy and a value head
                 on a shared trunk. Params 16*64 + 64 + 64*4 + 4 + 64 + 1 = 1,413.
scripted_mlp()   1x8 -> 1x4    the whole model compiled with torch.jit.script: one opaque node.
                 Params 8*16 + 16 + 16*4 + 4 = 212.
PartlyScripted   1x3x8x8 -> 1x4    a Python model whose fc1 and fc2 are torch.jit.script-ed layers.
                 Params conv 3*8*9 + 8 = 224, fc1 32*16 + 16 = 528, fc2 16*4 + 4 = 68: 820.
pruned_convnet() 1x3x16x16 -> 1x10    conv1 and conv2 pruned with torch.nn.utils.prune.l1_unstructured
                 (50 % and 30 % of their weights). torch counts the dense weight_orig tensors:
                 conv1 3*16*9 + 16 = 448, conv2 16*32*9 + 32 = 4,640, fc 32*10 + 10 = 330: 5,418
                 parameters, of which round(0.5 * 432) = 216 + round(0.3 * 4,608) = 1,382 = 1,598
                 weights are masked to zero.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical, Normal
from torch.nn.utils import prune


class GaussianPolicy(nn.Module):
    def __init__(self, obs_dim: int = 8, act_dim: int = 2, hidden: int = 64) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(obs_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.mu = nn.Linear(hidden, act_dim)
        self.log_std = nn.Parameter(torch.zeros(act_dim))

    def forward(self, obs: torch.Tensor) -> Normal:
        mu = self.mu(self.trunk(obs))
        return Normal(mu, self.log_std.exp().expand_as(mu))


class ActorCritic(nn.Module):
    def __init__(self, obs_dim: int = 16, actions: int = 4, hidden: int = 64) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU())
        self.policy = nn.Linear(hidden, actions)
        self.value = nn.Linear(hidden, 1)

    def forward(self, obs: torch.Tensor) -> tuple[Categorical, torch.Tensor]:
        h = self.trunk(obs)
        return Categorical(logits=self.policy(h)), self.value(h)


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


def scripted_mlp() -> torch.jit.ScriptModule:
    return torch.jit.script(MLP())


class PartlyScripted(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc1 = torch.jit.script(nn.Linear(32, 16))
        self.fc2 = torch.jit.script(nn.Linear(16, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv(x))).flatten(1)
        return self.fc2(F.relu(self.fc1(x)))


class SmallConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.relu(self.conv2(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def pruned_convnet() -> SmallConvNet:
    model = SmallConvNet()
    prune.l1_unstructured(model.conv1, "weight", amount=0.5)
    prune.l1_unstructured(model.conv2, "weight", amount=0.3)
    return model
