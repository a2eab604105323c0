"""A 0-d tensor input (a temperature, a diffusion timestep): ``--input scalar`` / ``()`` in the API
(issue 13, item 7). Expectations from torch's real forward and FlopCounterMode."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cnnshape
from cnnshape.inputs import parse_input


class Scaled(nn.Module):
    """Logits divided by a temperature given as a 0-d tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
        return self.fc(x) / temperature


@pytest.mark.parametrize("tracer", ["fx", "eager"])
def test_a_scalar_input_is_analysed(tracer: str) -> None:
    model = Scaled()
    with FlopCounterMode(display=False) as counter:
        real = model(torch.randn(2, 8), torch.tensor(0.5))
    report = cnnshape.analyze(model, [(2, 8), ()], tracer=tracer)
    assert report.inputs[1].shape == () and report.outputs[0].shape == tuple(real.shape) == (2, 3)
    assert report.totals.macs == counter.get_total_flops() // 2 == 2 * 8 * 3


def test_scalar_spelling() -> None:
    assert parse_input("scalar").shape == () and parse_input("scalar:int64").dtype == "int64"
    assert str(parse_input("scalar")) == "scalar"


def test_cli_scalar_input() -> None:
    result = subprocess.run([sys.executable, "-m", "cnnshape", "summary", f"{__file__}:Scaled", "--input", "2,8",
                             "--input", "scalar", "-f", "json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert '"shape": []' in result.stdout
