"""A secondary analysis that fails does not take the summary down (issue 13, item 1).

A receptive-field rule that raises (here: deliberately broken) leaves the RF of the layers that
depend on it unknown; shapes, parameters and MACs are printed as always, a footer note names the
failure, and the exit code is 0.
"""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import cnnshape.analyse.analysis as analyse_module
from cnnshape.analyse.receptive_field import RF_RULES
from cnnshape.cli import app

runner = CliRunner()
SPEC = ["summary", "examples/textbook.py:Conv7Pool3", "--input", "1,3,224,224"]


def _broken(*args, **kwargs):
    raise TypeError("int() argument must be a string, a bytes-like object or a real number, not 'tuple'")


@pytest.fixture
def broken_max_pool(monkeypatch):
    """Every registered max-pool rule raises, as the split rule did on a list of sizes."""
    for op in [op for op in RF_RULES if "max_pool" in op]:
        monkeypatch.setitem(RF_RULES._table, op, _broken)


def _rows(output: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in output.splitlines() if line.startswith(("conv1", "maxpool"))}


def test_broken_rule_keeps_the_summary(broken_max_pool):
    result = runner.invoke(app, SPEC)
    assert result.exit_code == 0, result.output
    out = result.stdout
    # the primary figures, from the closed forms in examples/textbook.py: conv 7x7/2 p3 224 -> 112,
    # pool 3/2 p1 112 -> 56; 7*7*3*64 = 9,408 params; 64*112*112 * 3*49 = 118,013,952 MACs
    assert "1x64x112x112" in out and "1x64x56x56" in out
    assert "Total params: 9,408" in out
    assert "MACs: 118,013,952" in out
    rows = _rows(out)
    # the conv's RF (7) is unaffected; the pool's rule failed, so its row says unknown
    assert rows["conv1"][-1] == "7"
    assert rows["maxpool"][-1] == "unknown"
    note = next(line for line in out.splitlines() if "receptive field not determined" in line)
    assert note.startswith("Note: receptive field not determined at 'maxpool'")
    assert "cnnshape bug (TypeError: int() argument must be" in note and note.endswith("please report it")


def test_broken_rule_in_json_and_rf_table(broken_max_pool):
    result = runner.invoke(app, [*SPEC, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    layers = {d["name"]: d for d in data["layers"]}
    assert layers["conv1"]["receptive_field"]["size"] == [7, 7]
    assert layers["maxpool"]["receptive_field"]["size"] == "unknown"
    assert layers["maxpool"]["receptive_field"]["unknown_op"].startswith("cnnshape bug (TypeError")
    assert data["totals"]["params"] == 9408
    assert any(n.startswith("receptive field not determined at 'maxpool'") for n in data["notes"])
    result = runner.invoke(app, ["rf", *SPEC[1:]])
    assert result.exit_code == 0, result.output
    assert "unknown from maxpool on: cnnshape bug (TypeError" in result.stdout


def test_failing_receptive_field_analysis_as_a_whole(monkeypatch):
    def broken(nodes):
        raise RuntimeError("the traversal itself failed")

    monkeypatch.setattr(analyse_module, "analyse_receptive_fields", broken)
    result = runner.invoke(app, SPEC)
    assert result.exit_code == 0, result.output
    assert "Total params: 9,408" in result.stdout
    assert {row[-1] for row in _rows(result.stdout).values()} == {"unknown"}
    assert ("Note: receptive field not determined: cnnshape bug (RuntimeError: the traversal itself failed); "
            "please report it") in result.stdout
