"""Models for tests/test_scan.py: good ones and ones that break a scan's worker in each way, and
small spaces over them."""
from __future__ import annotations

import functools
import itertools
import os
import signal
from collections.abc import Iterator

import torch
from torch import nn

from examples.nas201 import INPUT, NAS201Network, arch_string


class Raises(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise ValueError("this model is broken on purpose")


class HangsInPython(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        while True:
            x = x + 0


class HangsInC(nn.Module):
    """Never returns to the interpreter's signal handling: only killing the worker stops it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sum(itertools.repeat(0))
        return x


class ExitsItsWorker(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        os._exit(3)


class KillsItsWorker(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        os.kill(os.getpid(), signal.SIGKILL)
        return x


#: the cells of the networks the spaces yield: all one operation each
CELLS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def small() -> Iterator[tuple[str, functools.partial[NAS201Network], str]]:
    """Three small NAS-201 networks (4 channels, a cell per stage: quick), for the cluster test."""
    for op in CELLS[:3]:
        arch = arch_string((op,) * 6)
        yield arch, functools.partial(NAS201Network, arch, channels=4, cells_per_stage=1), INPUT


def mixed() -> Iterator[tuple[str, object, str]]:
    for op in ("none", "nor_conv_3x3"):
        arch = arch_string((op,) * 6)
        yield arch, functools.partial(NAS201Network, arch), INPUT
    yield "lenet", "examples/lenet.py:LeNet5", "1,1,32,32"
    yield "raises", Raises, INPUT
    yield "exits", ExitsItsWorker, INPUT
    yield "killed", KillsItsWorker, INPUT
    yield "lambda", lambda: Raises(), INPUT


def hangs() -> Iterator[tuple[str, object, str]]:
    yield "hangs-python", HangsInPython, INPUT
    yield "hangs-c", HangsInC, INPUT


def many() -> Iterator[tuple[str, functools.partial[NAS201Network], str]]:
    """Eight small NAS-201 networks (4 channels, a cell per stage: quick), for the interrupted scan."""
    ops = itertools.product(("none", "skip_connect", "nor_conv_1x1", "avg_pool_3x3"), repeat=2)
    for a, b in itertools.islice(ops, 8):
        arch = arch_string((a, b, "none", "avg_pool_3x3", "none", "skip_connect"))
        yield arch, functools.partial(NAS201Network, arch, channels=4, cells_per_stage=1), INPUT


def queued() -> Iterator[tuple[str, object, str]]:
    """For one worker: each breaking model arrives while the worker holds a quick network behind it
    (after a quick task the pool sends the next one early), which must go to the next worker."""
    quick = list(many())
    yield from quick[:2]
    yield "killed", KillsItsWorker, INPUT
    yield quick[2]
    yield "hangs-c", HangsInC, INPUT
    yield quick[3]
