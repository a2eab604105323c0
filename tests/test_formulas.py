"""The per-op breakdown (``report.by_op``) and cost formulas given for one analysis (``formulas=``).

Expectations come from torch's FlopCounterMode and from closed forms with the arithmetic written
out."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cnnshape
from cnnshape import ConfigError, Cost


# a custom op torch knows nothing about the cost of: y = x * w (elementwise), w of x's shape
@torch.library.custom_op("cnnshape_test::scaled", mutates_args=())
def scaled(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return x * w


@scaled.register_fake
def _(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


class WithCustomOp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.w = nn.Parameter(torch.ones(1, 8, 16, 16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return scaled(self.conv(x), self.w)


class Block(nn.Module):
    """A module with its own (say, fused-kernel) cost: 1,000 MACs per call, by declaration."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


class TwoBlocks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.head = Block(), Block(), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.b(self.a(x)))


def test_by_op_sums_to_the_totals_and_matches_flop_counter() -> None:
    report = cnnshape.analyze("examples/resnet.py:ResNet18", [(2, 3, 64, 64)])
    assert sum(o.macs for o in report.by_op) == report.totals.macs
    assert sum(o.flops for o in report.by_op) == report.totals.flops
    from examples.resnet import ResNet18

    with FlopCounterMode(display=False) as counter:
        ResNet18().eval()(torch.randn(2, 3, 64, 64))
    torch_by_op = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    conv = next(o for o in report.by_op if o.op == "aten.convolution")
    assert conv.calls == 20  # stem + 8 blocks x 2 + 3 downsampling 1x1 convs
    assert conv.macs == torch_by_op["aten.convolution"] // 2
    addmm = next(o for o in report.by_op if o.op == "aten.addmm")
    assert addmm.macs == torch_by_op["aten.addmm"] // 2 == 2 * 512 * 1000
    assert sorted((o.flops for o in report.by_op), reverse=True) == [o.flops for o in report.by_op]


def test_a_custom_op_is_unsupported_until_a_formula_is_given_for_the_analysis() -> None:
    model = WithCustomOp()
    plain = cnnshape.analyze(model, [(1, 3, 16, 16)])
    assert [u.op for u in plain.unsupported] == ["cnnshape_test.scaled"] and not plain.totals.complete
    # conv: 8 x 16 x 16 outputs x 3 x 3 x 3 = 55,296 MACs; scaled: one multiply per element (2,048)
    counted = cnnshape.analyze(model, [(1, 3, 16, 16)],
                               formulas={"cnnshape_test.scaled": lambda call: Cost(0, call.outputs[0].numel)})
    assert counted.totals.complete and not counted.unsupported
    assert counted.totals.macs == 55_296
    assert counted.totals.flops == 2 * 55_296 + 8 * 16 * 16
    # a second analysis with another formula for the same op is no conflict (nothing global)
    again = cnnshape.analyze(model, [(1, 3, 16, 16)], formulas={"cnnshape_test.scaled": lambda call: 7})
    assert again.totals.macs == 55_296 + 7 and again.totals.flops == 2 * (55_296 + 7)
    assert {o.op: o.calls for o in again.by_op}["cnnshape_test.scaled"] == 1


def test_a_module_formula_replaces_the_cost_of_its_ops() -> None:
    report = cnnshape.analyze(TwoBlocks(), [(3, 4)], leaves=[Block], formulas={Block: lambda node: 1000})
    # two Block calls at 1,000 MACs each; head: 3 rows x 4 x 2 = 24 MACs (+ 3 x 2 bias adds)
    assert report.totals.macs == 2 * 1000 + 24
    assert report.totals.flops == 2 * 2000 + 2 * 24 + 6
    assert {o.op: o.calls for o in report.by_op}["Block (module formula)"] == 2


@pytest.mark.parametrize("formulas, message", [
    ({"aten.convolution": lambda call: -1}, r"formulas\[aten.convolution\] returned -1"),
    ({"aten.convolution": lambda call: 1 / 0}, r"formulas\[aten.convolution\] raised ZeroDivisionError at 'conv'"),
    ({3: lambda call: 1}, r"formulas: 3 -> .*give an op name"),
])
def test_bad_formulas_are_named(formulas: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        cnnshape.analyze(WithCustomOp(), [(1, 3, 16, 16)], formulas=formulas)


@pytest.mark.slow  # > 10 s in docs/test-durations.md
def test_cli_by_op_table_and_json() -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cnnshape", "summary", "examples/lenet.py:LeNet5",
                               "--input", "1,1,32,32", *args], capture_output=True, text=True, timeout=120)

    data = json.loads(run("-f", "json").stdout)
    assert sum(o["macs"] for o in data["by_op"]) == data["totals"]["macs"]
    table = run("--by-op")
    assert table.returncode == 0 and "Per-op breakdown" in table.stdout
    # LeNet-5's convolutions: 6x28x28x(1x5x5) + 16x10x10x(6x5x5) = 117,600 + 240,000 MACs
    assert any(line.startswith("aten.convolution") and "357,600" in line for line in table.stdout.splitlines())
    csv = run("--by-op", "-f", "csv")
    assert csv.returncode == 2 and "--by-op" in csv.stderr and csv.stdout == ""
