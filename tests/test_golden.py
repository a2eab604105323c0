"""Golden files: the real ``cnnshape`` console script's output, byte for byte.

``summary`` in every format (table, markdown, CSV, JSON) on LeNet-5, ResNet-18 at 1x3x224x224,
InceptionNet (four branches joined by a cat) and TwoInputNet (two inputs, a tuple of two outputs);
``rf`` on ResNet-18 and ``sizes --layers`` on LeNet-5 (tests/golden_cases.py lists them).

The files are cnnshape's own output, so they catch changes, not wrong numbers: they are written
by ``python scripts/regen_golden.py`` (or ``pytest tests/test_golden.py --update-golden``) and
reviewed in the diff. The numbers in them are checked against closed forms and torch elsewhere;
a few are checked here too, so that a golden file regenerated with a wrong number fails.
"""
from __future__ import annotations

import difflib
import json
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from .golden_cases import CASES, Case, Result, run

#: every test here reads the console-script runs of one fixture: one pytest-xdist worker runs them all
pytestmark = pytest.mark.xdist_group("golden")

REGENERATE = "regenerate with `python scripts/regen_golden.py` (or `pytest tests/test_golden.py --update-golden`)"


#: the results of this process's runs: a module fixture is set up again when pytest-xdist gives
#: the worker other tests in between, and the cases must not run twice
_RUN: dict[str, Result] = {}


@pytest.fixture(scope="module")
def outputs(request: pytest.FixtureRequest) -> dict[str, Result]:
    """Runs the console script for every selected case at once (each run is mostly interpreter and
    torch start-up, which overlaps well), once per process."""
    selected = [item.callspec.params["case"] for item in request.session.items
                if item.module is request.module and hasattr(item, "callspec") and "case" in item.callspec.params]
    missing = [case for case in selected if case.name not in _RUN]
    with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 1))) as pool:
        _RUN.update({r.case.name: r for r in pool.map(run, missing)})
    return _RUN


def _diff(expected: bytes, actual: bytes, name: str) -> str:
    lines = list(difflib.unified_diff(expected.decode(errors="replace").splitlines(keepends=True),
                                      actual.decode(errors="replace").splitlines(keepends=True),
                                      fromfile=f"tests/golden/{name}", tofile="cnnshape output", n=2))
    shown = "".join(lines[:200])
    more = f"\n... {len(lines) - 200} more diff lines" if len(lines) > 200 else ""
    return f"{shown}{more}"


@pytest.mark.slow  # 18 runs of the console script: about a minute on two cores
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden(case: Case, outputs: dict[str, Result], request: pytest.FixtureRequest) -> None:
    result = outputs[case.name]
    assert result.returncode == 0, f"cnnshape {' '.join(case.args)} exited {result.returncode}:\n{result.stderr}"
    if request.config.getoption("--update-golden"):
        case.path.parent.mkdir(parents=True, exist_ok=True)
        case.path.write_bytes(result.stdout)
        return
    assert case.path.exists(), f"tests/golden/{case.name} is missing: {REGENERATE}"
    expected = case.path.read_bytes()
    if result.stdout != expected:
        pytest.fail(f"cnnshape {' '.join(case.args)} differs from tests/golden/{case.name}; if the change is "
                    f"intended, {REGENERATE} and review the diff.\n{_diff(expected, result.stdout, case.name)}",
                    pytrace=False)


# --- the goldens' numbers, against closed forms (so that a regenerated file cannot hide a wrong one)


def _golden(name: str) -> str:
    return (CASES[0].path.parent / name).read_text(encoding="utf-8")


def test_golden_lenet5_numbers() -> None:
    table = _golden("summary-lenet5.txt")
    # C1 5x5x1x6 + 6 = 156; C3 5x5x6x16 + 16 = 2,416; F5 400·120 + 120 = 48,120; F6 120·84 + 84 =
    # 10,164; output 84·10 + 10 = 850: 61,706 (examples/README.md)
    assert "Total params: 61,706 (61.71 K)" in table
    # MACs: C1 6·28·28·25 = 117,600; C3 16·10·10·150 = 240,000; F 48,000 + 10,080 + 840: 416,520
    assert "MACs: 416,520 (416.520 KMACs)" in table
    rows = {line.split(",")[0]: line.split(",") for line in _golden("summary-lenet5.csv").splitlines()}
    assert rows["features.0"][4:8] == ["1x6x28x28", "156", "", "117600"]
    assert rows["features.3"][4:8] == ["1x16x10x10", "2416", "", "240000"]
    data = json.loads(_golden("summary-lenet5.json"))
    assert data["totals"]["params"] == 61_706 and data["totals"]["macs"] == 416_520
    # accepted sizes: floor((H − 12)/4) = 5 for the 400-feature Linear, so 32 ≤ H ≤ 35
    assert "  accepted: every size from 32 to 35\n" in _golden("sizes-lenet5.txt")
    # conv5: H − 4; pool2: floor((H − 4)/2) = floor(H/2) − 2; conv5: −4; pool2: floor(H/4) − 3
    assert "    features.5  dim 2 = floor(H/4) − 3\n" in _golden("sizes-lenet5.txt")


def test_golden_resnet18_numbers() -> None:
    data = json.loads(_golden("summary-resnet18.json"))
    # torchvision resnet18 model card: 11,689,512 parameters, 1.81 GFLOPs (torchvision's figure is
    # multiply-adds, 1.814 G)
    assert data["totals"]["params"] == 11_689_512
    assert round(data["totals"]["macs"] / 1e9, 2) == 1.81
    assert data["outputs"][0]["shape"] == [1, 1000]
    # conv1 7x7 s2 p3 on 224: floor((224 + 6 − 7)/2) + 1 = 112, 64 channels; 3·64·49 weights, 112²
    # outputs of 147 MACs each per channel: 64·112·112·147 = 118,013,952
    conv1 = next(layer for layer in data["layers"] if layer["name"] == "conv1")
    assert conv1["output_shape"] == [1, 64, 112, 112] and conv1["params"] == 9_408 and conv1["macs"] == 118_013_952
    # receptive field at layer4's last conv: 435 (derived in tests/test_receptive_field.py)
    rf = _golden("rf-resnet18.txt")
    assert any(line.split()[:1] == ["layer4.1.conv2"] and " 435 " in line for line in rf.splitlines())


def test_golden_multi_io_and_branches() -> None:
    data = json.loads(_golden("summary-two_input.json"))
    # examples/multi_io.py: 448 + 4,640 + 176 + 490 = 5,754; outputs logits 1x10 and features 32 + 16 = 48
    assert data["totals"]["params"] == 5_754
    assert [(o["key"], o["shape"]) for o in data["outputs"]] == [("[0]", [1, 10]), ("[1]", [1, 48])]
    assert [i["shape"] for i in data["inputs"]] == [[1, 3, 32, 32], [1, 10]]
    # the inception cat joins 64 + 128 + 32 + 32 = 256 channels
    cat = next(line for line in _golden("summary-inception.md").splitlines() if line.startswith("| inception3a.cat "))
    assert "1x256x32x32" in cat


def test_csv_output_row_names_every_output() -> None:
    from typer.testing import CliRunner

    from cnnshape.cli import app

    # TwoInputNet returns (logits 1x10, features 1x48): the table's output row says "[0]: 1x10, [1]: 1x48"
    args = ["summary", "examples/multi_io.py:TwoInputNet", "-i", "1,3,32,32", "-i", "1,10", "--format"]
    table = CliRunner().invoke(app, [*args, "table"])
    assert "[0]: 1x10, [1]: 1x48" in table.output
    csv = CliRunner().invoke(app, [*args, "csv"])
    assert csv.exit_code == 0, csv.output
    output_row = next(line for line in csv.output.splitlines() if line.startswith("output,"))
    assert "1x48" in output_row, output_row
