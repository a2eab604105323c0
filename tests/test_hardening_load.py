"""Regression tests for issue 14 ("Hardening"), items 9 and 12: loading a model and reading the
options around it. Each goes through the real console path (``python -m cnnshape ...`` in a
subprocess, as tests/test_hardening.py does): the exit code, stdout still parseable where a
machine format was asked for, files intact, and a message that names the cause."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .test_hardening import ROOT, conv_model, fails, run

#: a model with two constructor parameters: Conv2d(3, width, 3), so 28 * width parameters
WIDE = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, width=4, depth=1):
        super().__init__()
        self.c = nn.Conv2d(3, width, 3)

    def forward(self, x):
        return self.c(x)
"""


def _json(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# --- 9: a model file not ending in .py, a folder, a binary file ------------------------------------


@pytest.mark.parametrize("name, spec", [
    ("net.txt", "net.txt:Net"),  # no folder in the spec: found as a file, not taken for a module
    ("netscript", "./netscript:Net"),  # no suffix at all (was an empty AssertionError)
])
def test_model_file_without_py_suffix_loads(tmp_path: Path, name: str, spec: str) -> None:
    (tmp_path / name).write_text(WIDE)
    report = _json(run("summary", spec, "--input", "1,3,8,8", "-f", "json", cwd=tmp_path))
    assert report["totals"]["params"] == 112  # 4 * 3 * 3 * 3 + 4


def test_model_file_that_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    fails(run("summary", "./models:Net", "-f", "json", cwd=tmp_path), "'models' is a folder, not a Python file",
          "package.module:NAME")


def test_binary_model_file(tmp_path: Path) -> None:
    (tmp_path / "blob.py").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    fails(run("summary", "blob.py:Net", "-f", "json", cwd=tmp_path), "blob.py is not Python source", "null bytes")


# --- 9: huge values in --arg, budgets and --max-growth ---------------------------------------------


def test_arg_integer_beyond_pythons_digit_limit(tmp_path: Path) -> None:
    # was passed on silently as a 5,000-character string (ast.literal_eval refuses such an int)
    fails(run("summary", conv_model(tmp_path), "--input", "1,3,8,8", "--arg", "width=" + "9" * 5000),
          "--arg width=...", "integer of 5,000 digits is too long")


def test_constructor_error_drops_torchs_cpp_stack(tmp_path: Path) -> None:
    (tmp_path / "net.py").write_text(WIDE)
    err = fails(run("summary", "net.py:Net", "--input", "1,3,8,8", "--arg", "width=" + "9" * 300, cwd=tmp_path),
                "constructing net.py:Net raised", "net.py:9")  # the user's line: self.c = nn.Conv2d(...)
    assert "frame #" not in err and "Exception raised from" not in err


@pytest.mark.parametrize("option, value", [
    ("--max-params", "9" * 5000),  # was ValueError: Exceeds the limit (4300 digits)
    ("--max-activation-memory", "9" * 5000 + "KiB"),
])
def test_budget_with_thousands_of_digits(tmp_path: Path, option: str, value: str) -> None:
    err = fails(run("check", conv_model(tmp_path), "--input", "1,3,8,8", option, value, "--format", "json"),
                option, "more than 1,000 digits")
    assert "9" * 100 not in err  # the value is shortened in the message


def test_budget_with_thousands_of_digits_in_config(tmp_path: Path) -> None:
    conv_model(tmp_path)
    (tmp_path / "cnnshape.toml").write_text(f'[models.a]\nmodel = "net.py:Net"\nmax-params = "{"9" * 5000}"\n')
    fails(run("check", cwd=tmp_path), "cnnshape.toml [models.a]: key 'max-params'", "more than 1,000 digits")


def test_growth_limit_with_hundreds_of_digits_is_shown_short(tmp_path: Path) -> None:
    spec = conv_model(tmp_path)
    base = tmp_path / "b.json"
    assert run("check", spec, "--input", "1,3,8,8", "--write-baseline", str(base)).returncode == 0
    err = fails(run("check", spec, "--input", "1,3,8,8", "--baseline", str(base), "--max-growth", "9" * 500),
                "--max-growth", "E+500%", "checks nothing")
    assert "9" * 100 not in err
    fails(run("check", spec, "--input", "1,3,8,8", "--baseline", str(base), "--max-growth", "9" * 5000),
          "--max-growth", "more than 1,000 digits")


@pytest.mark.skipif(not sys.platform.startswith("linux") or not Path("/sys/kernel").is_dir(), reason="sysfs")
def test_output_where_even_root_cannot_write(tmp_path: Path) -> None:
    # sysfs refuses new files to everyone (tests/test_hardening.py's chmod test is skipped as root)
    fails(run("summary", conv_model(tmp_path), "--input", "1,3,8,8", "-f", "json", "-o", "/sys/kernel/cnnshape.json"),
          "cannot write --output /sys/kernel/cnnshape.json")


# --- 12: an unknown --arg names the constructor's parameters ---------------------------------------


def test_unknown_arg_names_the_parameters(tmp_path: Path) -> None:
    (tmp_path / "net.py").write_text(WIDE)
    fails(run("summary", "net.py:Net", "--input", "1,3,8,8", "--arg", "widht=8", "-f", "json", cwd=tmp_path),
          "--arg widht=...: net.py:Net has no parameter 'widht'", "Did you mean 'width'?",
          "Its parameters: width=4, depth=1")


def test_missing_required_arg_says_how_to_give_it(tmp_path: Path) -> None:
    (tmp_path / "net.py").write_text(WIDE.replace("width=4", "width"))
    fails(run("summary", "net.py:Net", "--input", "1,3,8,8", cwd=tmp_path),
          "net.py:Net needs 'width': give it with --arg width=VALUE", "Its parameters: width, depth=1")


def test_known_arg_still_reaches_the_constructor(tmp_path: Path) -> None:
    (tmp_path / "net.py").write_text(WIDE)
    report = _json(run("summary", "net.py:Net", "--input", "1,3,8,8", "--arg", "width=8", "-f", "json", cwd=tmp_path))
    assert report["totals"]["params"] == 224  # 8 * 3 * 3 * 3 + 8


# --- 12: relative imports and package.module specs, as with python -m ------------------------------

BLOCKS = """
from torch import nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.c(x)
"""

NET = """
from torch import nn

from .blocks import Block


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()

    def forward(self, x):
        return self.block(x)
"""


def _package(tmp_path: Path, init: bool = True) -> Path:
    """``tmp_path/project/pkg/{__init__,blocks,net}.py``: net.py imports ``from .blocks``."""
    pkg = tmp_path / "project" / "pkg"
    pkg.mkdir(parents=True)
    if init:
        (pkg / "__init__.py").write_text("")
    (pkg / "blocks.py").write_text(textwrap.dedent(BLOCKS))
    (pkg / "net.py").write_text(textwrap.dedent(NET))
    return pkg.parent


@pytest.mark.slow  # > 10 s in docs/test-durations.md
@pytest.mark.parametrize("init", [True, False], ids=["package", "namespace-package"])
def test_relative_import_in_a_model_file(tmp_path: Path, init: bool) -> None:
    project = _package(tmp_path, init)
    specs = ((project, "pkg/net.py:Net"), (tmp_path, "project/pkg/net.py:Net"), (ROOT, f"{project}/pkg/net.py:Net"))
    for cwd, spec in specs:
        report = _json(run("summary", spec, "--input", "1,3,8,8", "-f", "json", cwd=cwd))
        assert report["totals"]["params"] == 112, spec
        assert [layer["name"] for layer in report["layers"]] == ["x", "block.c", "output"]


@pytest.mark.slow  # > 10 s in docs/test-durations.md
def test_package_module_spec_from_the_folder_that_holds_the_package(tmp_path: Path) -> None:
    project = _package(tmp_path)
    # python -P: sys.path does not start with the working folder, as with the `cnnshape` console script
    for flags in ([], ["-P"]):
        result = subprocess.run([sys.executable, *flags, "-m", "cnnshape", "summary", "pkg.net:Net", "--input",
                                 "1,3,8,8", "-f", "json"], cwd=project, capture_output=True, text=True, timeout=180)
        assert _json(result)["totals"]["params"] == 112, flags


def test_relative_import_where_no_package_can_be_named(tmp_path: Path) -> None:
    project = _package(tmp_path, init=False)
    odd = project / "my-models"  # not a Python identifier: no package can be named after it
    (project / "pkg").rename(odd)
    fails(run("summary", "my-models/net.py:Net", "-f", "json", cwd=project),
          "attempted relative import", "net.py imports relatively", "package.module:NAME")
