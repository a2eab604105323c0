"""The codebase passes its linters: ruff (pyproject's rule set) and mypy on the package."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "ruff", "check", "cnnshape", "tests", "examples", "benchmarks"],
        [sys.executable, "-m", "mypy", "cnnshape"],
    ],
    ids=["ruff", "mypy"],
)
def test_linter_passes(command: list[str]) -> None:
    tool = command[2]
    if shutil.which(tool) is None and subprocess.run(command[:3] + ["--version"], capture_output=True).returncode:
        pytest.skip(f"{tool} is not installed (pip install '.[test]' installs it)")
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
