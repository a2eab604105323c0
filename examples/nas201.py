"""The NAS-Bench-201 search space: 15,625 CIFAR networks, one per cell.

Source: X. Dong, Y. Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural
Architecture Search", ICLR 2020 (the topology search space, CIFAR-10 setting).

A cell is a DAG of 4 nodes; each of its 6 edges (j -> i, j < i) carries one of 5 operations:
``none`` (zero), ``skip_connect``, ``nor_conv_1x1``, ``nor_conv_3x3`` (ReLU -> Conv -> BN, no
conv bias) and ``avg_pool_3x3`` (stride 1, padding 1, padding not counted). Node i is the sum of
its incoming edges; the cell's output is node 3. 5 ** 6 = 15,625 cells.

The network: stem (conv 3x3, 3 -> 16, + BN); three stages of 5 cells at 16, 32 and 64
channels, with a ResNet basic block of stride 2 between them (two ReLU-Conv3x3-BN, the shortcut
an average pool 2x2 then a 1x1 conv); then BN, ReLU, global average pooling and a linear
classifier. Input 1x3x32x32, output 1x10.

Parameter counts, worked out (BN: 2 per channel; running statistics are buffers):
    stem             3*16*9 + 2*16                                     =       464
    reduction 16->32 (16*32*9 + 64) + (32*32*9 + 64) + 16*32           =    14,464
    reduction 32->64 (32*64*9 + 128) + (64*64*9 + 128) + 32*64         =    57,600
    head             2*64 + (64*10 + 10)                               =       778
    one 3x3-conv edge at C channels: C*C*9 + 2C; 1x1: C*C + 2C; the rest: 0
    all-``none`` cells: 464 + 14,464 + 57,600 + 778                    =    73,306
    all-``nor_conv_3x3``: + 5*6*((16*16*9+32) + (32*32*9+64) + (64*64*9+128)) = 1,531,546
(the published range of the space on CIFAR-10: 0.07 M to 1.53 M parameters.)

The reference code also returns the pooled features beside the logits; this one returns the
logits, and flattens with ``torch.flatten`` instead of ``view(out.size(0), -1)`` (the same
tensor, without reading a size into Python).

``candidates()`` yields ``(arch_string, factory, "1,3,32,32")`` for every cell, the factory a
``functools.partial`` (cheap to send to a worker; the network is built there):
``cnnshape scan --space examples/nas201.py:candidates -o nas201.jsonl``.
"""
from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator

import torch
from torch import nn

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: the 6 edges of a cell as (to, from), in the order of the arch string
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
INPUT = "1,3,32,32"


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out),
        )


class Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(name: str, channels: int) -> nn.Module:
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, 0)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, 1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown NAS-Bench-201 operation {name!r}; known: {', '.join(OPS)}")


def parse_arch(arch: str) -> tuple[str, ...]:
    """``"|nor_conv_3x3~0|+|none~0|skip_connect~1|+|..."`` -> the 6 edge operations in EDGES order."""
    ops = []
    for i, node in enumerate(arch.split("+"), 1):
        edges = [e for e in node.strip().strip("|").split("|") if e]
        if len(edges) != i:
            raise ValueError(f"{arch!r}: node {i} needs {i} input edges, got {len(edges)}")
        for j, edge in enumerate(edges):
            op, _, source = edge.partition("~")
            if op not in OPS or source != str(j):
                raise ValueError(f"{arch!r}: edge {edge!r} is not OP~{j} with OP one of {', '.join(OPS)}")
            ops.append(op)
    if len(ops) != len(EDGES):
        raise ValueError(f"{arch!r}: a cell has 3 nodes after its input, separated by '+'")
    return tuple(ops)


def arch_string(ops: tuple[str, ...]) -> str:
    """The inverse of :func:`parse_arch`."""
    nodes: dict[int, list[str]] = {}
    for (to, source), op in zip(EDGES, ops):
        nodes.setdefault(to, []).append(f"{op}~{source}")
    return "+".join("|" + "|".join(nodes[i]) + "|" for i in (1, 2, 3))


class Cell(nn.Module):
    def __init__(self, ops: tuple[str, ...], channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(make_op(op, channels) for op in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for i in (1, 2, 3):
            nodes.append(sum(self.edges[k](nodes[j]) for k, (to, j) in enumerate(EDGES) if to == i))
        return nodes[3]


class ResNetBasicBlock(nn.Module):
    """The reduction between stages: stride 2, channels doubled, shortcut avg-pool + 1x1 conv."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class NAS201Network(nn.Module):
    def __init__(self, arch: str, channels: int = 16, cells_per_stage: int = 5, num_classes: int = 10) -> None:
        super().__init__()
        ops = parse_arch(arch)
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        layers: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage:
                layers.append(ResNetBasicBlock(c, 2 * c))
                c *= 2
            layers += [Cell(ops, c) for _ in range(cells_per_stage)]
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.global_pooling(self.lastact(self.cells(self.stem(x))))
        return self.classifier(torch.flatten(out, 1))


def all_archs() -> Iterator[str]:
    """The 15,625 arch strings, the first edge varying slowest."""
    for ops in itertools.product(OPS, repeat=len(EDGES)):
        yield arch_string(ops)


def candidates() -> Iterator[tuple[str, functools.partial[NAS201Network], str]]:
    """The space for ``cnnshape scan --space examples/nas201.py:candidates``."""
    for arch in all_archs():
        yield arch, functools.partial(NAS201Network, arch), INPUT
