"""A module registered under two containers and called through both (issue 14, item 5): each call is
a row under the container that made it, so ``--depth 1`` rows, baselines and ``diff`` see each
container's own cost. Expected figures are closed forms."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

import cnnshape


class SharedTwice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        shared = nn.Conv2d(4, 4, 3, padding=1)
        self.a = nn.Sequential(shared, nn.ReLU())
        self.b = nn.Sequential(shared, nn.ReLU(), nn.Conv2d(4, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x))


@pytest.mark.parametrize("tracer", ["fx", "eager"])
def test_each_call_is_attributed_to_the_container_that_made_it(tracer: str) -> None:
    report = cnnshape.analyze(SharedTwice(), [(1, 4, 8, 8)], tracer=tracer)
    rows = {row.name: row for row in report.layers}
    # the shared 3x3 conv: 4 x 8 x 8 outputs x 4 x 3 x 3 = 9,216 MACs per call, 4x4x3x3 + 4 = 148 params
    assert rows["a.0"].macs == rows["b.0"].macs == 9_216
    assert rows["b.0"].shared_with == "a.0" and rows["b.0"].new_params == 0
    top = {row.name: row for row in report.collapse(1).layers}
    assert top["a"].macs == 9_216 and top["a"].params == 148
    # b: its call of the shared conv plus the 1x1 conv, 2 x 8 x 8 x 4 = 512 MACs, 4x2 + 2 = 10 params
    assert top["b"].macs == 9_216 + 512 and top["b"].params == 10
    assert report.totals.params == sum(p.numel() for p in SharedTwice().parameters()) == 158
    assert report.totals.macs == 2 * 9_216 + 512


def test_cli_depth_1_rows() -> None:
    spec = f"{__file__}:SharedTwice"
    result = subprocess.run([sys.executable, "-m", "cnnshape", "summary", spec, "--input", "1,4,8,8", "--depth", "1",
                             "-f", "csv"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = {line.split(",")[0]: line.split(",") for line in result.stdout.splitlines()[1:]}
    assert rows["a"][7] == "9216" and rows["b"][7] == "9728"  # the macs column
