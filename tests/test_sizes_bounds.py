"""Input sizes above the range the size analysis evaluates (1..MAX_UP_TO = 16,384): a clear answer,
never an internal error (issue 14, hardening: a side of 20,000 raised ``KeyError: 20000`` in
``cnnshape sizes`` and gave the summary a "cnnshape bug" note)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from cnnshape.analyse.sizes import MAX_UP_TO
from cnnshape.api import sizes

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """The real console path, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "cnnshape", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_the_bound_is_below_the_sizes_studied_here() -> None:
    assert MAX_UP_TO == 16_384 < 20_000


@pytest.mark.slow  # > 10 s in docs/test-durations.md
def test_summary_above_the_range_states_the_rule() -> None:
    # the command. Every stride-2 layer of ResNet18 gives floor((x − 1)/2) + 1 ≥ 1 and the
    # adaptive pool makes the head size-free: every size ≥ 1, and so 20,000 too (period 1, checked
    # on 1..16,384; at 20,000 the formulas reproduce the traced shapes)
    result = run("summary", "examples/resnet.py:ResNet18", "--input", "1,3,20000,20000", "-f", "json")
    assert result.returncode == 0, result.stderr
    assert "cnnshape bug" not in result.stdout + result.stderr and "KeyError" not in result.stderr
    notes = json.loads(result.stdout)["notes"]
    assert ("accepted input sizes: H: every size ≥ 1; W: every size ≥ 1 (layer arithmetic; `cnnshape sizes` "
            "validates)") in notes, notes


EXACT = """
import torch
from torch import nn


class Exact(nn.Module):
    \"\"\"A constant reshape: only 20,000 x 20,000 is accepted, a size above the evaluated range.\"\"\"

    def forward(self, x):
        return x.view(1, 3, 20000, 20000) * 2
"""


def test_summary_above_the_range_without_a_rule_below_it(tmp_path: Path) -> None:
    # the view fixes H = W = 20,000: no size up to 16,384 is accepted, so there is no rule to
    # state; the note says so per axis instead of reporting a bug
    (tmp_path / "exact.py").write_text(textwrap.dedent(EXACT))
    result = run("summary", f"{tmp_path / 'exact.py'}:Exact", "--input", "1,3,20000,20000", "-f", "json")
    assert result.returncode == 0, result.stderr
    assert "cnnshape bug" not in result.stdout + result.stderr
    notes = json.loads(result.stdout)["notes"]
    assert ("accepted input sizes: H: not characterised; W: not characterised (layer arithmetic; `cnnshape "
            "sizes` validates)") in notes, notes


def test_sizes_command_above_the_range_asks_for_a_smaller_example() -> None:
    # `cnnshape sizes` studies sizes up to 16,384 and says so before tracing: exit 2, no traceback
    result = run("sizes", "examples/resnet.py:ResNet18", "--input", "1,3,20000,20000")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr and "KeyError" not in result.stderr
    assert "dim 2 is 20,000, above 16,384" in result.stderr and "--input 1,3,224,224" in result.stderr


class Exact(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(1, 3, 20000, 20000) * 2


def test_api_above_the_range() -> None:
    # the Python API has no such guard: the rule found on 1..16,384 stands where it accepts the
    # traced size (a conv3 p1 keeps every size: every H ≥ 1, output H), else the axis says why not
    report = sizes(nn.Conv2d(3, 4, 3, padding=1), [(1, 3, 20000, 20000)])
    for a in report.axes:
        assert a.accepted is not None and a.accepted.words() == "every size ≥ 1", a.reason
        assert a.given == 20000 and [f.formula for f in a.outputs] == [a.symbol]
    for a in sizes(Exact(), [(1, 3, 20000, 20000)]).axes:
        assert a.accepted is None and a.minimum is None
        assert a.reason == ("cannot characterise the accepted sizes: sizes are evaluated up to 16,384 and the "
                            "given 20,000 is above; no size up to 16,384 is accepted")
