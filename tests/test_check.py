"""`cnnshape check` / `cnnshape diff`: budgets, units, config, baselines, CI output.

Expectations come from LeNet-5 (examples/lenet.py), counted by hand:

params 61,706 (published figure of this rendering; per layer in the example's docstring):
    conv1 1*6*5*5+6 = 156, conv2 6*16*5*5+16 = 2,416, fc1 400*120+120 = 48,120,
    fc2 120*84+84 = 10,164, fc3 84*10+10 = 850
MACs 416,520 (one MAC per weight use, biases excluded):
    conv1 6*28*28 outputs * 25 = 117,600; conv2 16*10*10 outputs * 150 = 240,000;
    fc 400*120 + 120*84 + 84*10 = 58,920;  117,600 + 240,000 + 58,920 = 416,520
param memory: 61,706 float32 params * 4 B = 246,824 B
activation memory (new layer outputs, float32; flatten is a view and allocates nothing):
    conv1 4,704 + tanh 4,704 + pool 1,176 + conv2 1,600 + tanh 1,600 + pool 400
    + fc1 120 + tanh 120 + fc2 84 + tanh 84 + fc3 10 = 14,602 elements * 4 B = 58,408 B
top-level modules: features 156+2,416 = 2,572 params, 117,600+240,000 = 357,600 MACs;
    classifier 48,120+10,164+850 = 59,134 params, 58,920 MACs
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cnnshape.check import Budget, Figure, Snapshot, check_budgets, compare
from cnnshape.cli import app
from cnnshape.config import load_config
from cnnshape.errors import ConfigError
from cnnshape.testing import assert_within_budget
from cnnshape.units import parse_bytes, parse_count, parse_percent

ROOT = Path(__file__).resolve().parents[1]
LENET = str(ROOT / "examples" / "lenet.py") + ":LeNet5"
LENET_IN = "1,1,32,32"
PARAMS, MACS, PARAM_BYTES, ACT_BYTES = 61_706, 416_520, 246_824, 58_408

runner = CliRunner()


def cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


# --- units -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text, value", [
    ("61706", 61_706), ("25M", 25_000_000), ("4.5G", 4_500_000_000), ("2k", 2_000),
    ("1T", 10**12), ("0.5K", 500), (" 25 M ", 25_000_000), (61706, 61_706),
])
def test_parse_count(text: str | int, value: int) -> None:
    assert parse_count(text) == value


@pytest.mark.parametrize("text, value", [
    ("512", 512), ("512B", 512), ("100MB", 100 * 1000**2), ("300MiB", 300 * 1024**2),
    ("1.5GiB", 3 * 2**29), ("2KB", 2000), ("2KiB", 2048), ("1TB", 10**12), ("1TiB", 2**40),
])
def test_parse_bytes(text: str, value: int) -> None:
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", ["25Q", "-3M", "", "M", "1.5", "1e3", "25MiB", "3 M M", "nan"])
def test_parse_count_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match=r"--max-params: .*K, M, G or T.*e\.g\. 61706, 25M, 4\.5G"):
        parse_count(text, "--max-params")


@pytest.mark.parametrize("text", ["25Q", "-3MB", "", "10MiBs", "0.5B", "12Mb/s"])
def test_parse_bytes_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match=r"KiB, MiB, GiB, TiB \(1024-based\)"):
        parse_bytes(text, "--max-activation-memory")


def test_parse_percent() -> None:
    assert parse_percent("5%") == Decimal(5) and parse_percent("0.5") == Decimal("0.5")
    with pytest.raises(ConfigError, match="non-negative percentage"):
        parse_percent("-5%", "--max-growth")


# --- budgets at the exact boundary ------------------------------------------------------------


@pytest.mark.parametrize("flag, exact", [
    ("--max-params", str(PARAMS)),
    ("--max-macs", str(MACS)),
    ("--max-activation-memory", str(ACT_BYTES)),
    ("--max-param-memory", f"{PARAM_BYTES}B"),
])
def test_each_budget_passes_at_and_fails_below_its_boundary(flag: str, exact: str) -> None:
    code, out, _ = cli("check", LENET, "-i", LENET_IN, flag, exact)
    assert code == 0, out
    assert "FAIL" not in out and "the check passed" in out
    one_less = str(int(exact.rstrip("B")) - 1)
    code, out, _ = cli("check", LENET, "-i", LENET_IN, flag, one_less)
    assert code == 1, out
    assert "FAIL" in out and "-1" in out  # headroom of exactly one unit below zero


def test_budgets_in_units_and_expected_output() -> None:
    # 61.706K == 61,706 and 416.52K == 416,520: exact in SI units
    code, out, _ = cli("check", LENET, "-i", LENET_IN, "--max-params", "61.706K",
                       "--max-macs", "416.52K", "--max-param-memory", "241.04KiB",
                       "--expect-output", "1,10")
    # 241.04 KiB = 246,824.96 B is not a whole number of bytes -> rejected, exit 2
    assert code == 2 and "not a whole number" in _
    code, out, _ = cli("check", LENET, "-i", LENET_IN, "--max-params", "61.706K",
                       "--max-macs", "416.52K", "--expect-output", "1,10")
    assert code == 0, out
    code, out, _ = cli("check", LENET, "-i", LENET_IN, "--expect-output", "1,1000")
    assert code == 1 and "output shape" in out and "1x1000" in out and "FAIL" in out


def test_check_budgets_pure() -> None:
    snap = Snapshot("m", (Figure("params", 100), Figure("macs", 50), Figure("activation_memory", 8),
                          Figure("param_memory", 400)), ((1, 10),))
    results = check_budgets(snap, [Budget("params", 100), Budget("macs", 49)], [(1, 10)])
    assert [(r.figure, r.passed, r.headroom) for r in results] == [
        ("params", True, 0), ("macs", False, -1), ("output_shape", True, None)]
    with pytest.raises(ConfigError, match="unknown figure 'flops'"):
        Budget("flops", 1)


# --- exit code 2 is never a budget failure ----------------------------------------------------


def test_unloadable_model_exits_2_even_with_budgets(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("import torch\nclass Net(torch.nn.Module):\n    def __init__(self):\n"
                      "        raise RuntimeError('boom')\n")
    for spec in (f"{broken}:Net", f"{tmp_path / 'missing.py'}:Net"):
        code, out, err = cli("check", spec, "--max-params", "1", "--max-macs", "1")
        assert code == 2, (out, err)
        assert err.startswith("error:") and "Traceback" not in err + out and "FAIL" not in out


def test_bad_unit_on_command_line_exits_2() -> None:
    code, _, err = cli("check", LENET, "-i", LENET_IN, "--max-params", "25Q")
    assert code == 2 and "--max-params: cannot read '25Q'" in err


# --- config files -------------------------------------------------------------------------------


def _pyproject(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "demo"\n\n' + body)
    return path


def test_config_reads_models(tmp_path: Path) -> None:
    path = _pyproject(tmp_path, f'''
[tool.cnnshape.models.lenet]
model = "{LENET}"
input = ["{LENET_IN}"]
args = {{ num_classes = 10 }}
max-params = "62K"
max-activation-memory = "1MiB"
expect-output = "1,10"
''')
    (m,) = load_config(path)
    assert m.name == "lenet" and m.inputs == (LENET_IN,) and m.args == {"num_classes": 10}
    assert m.budgets == (Budget("params", 62_000), Budget("activation_memory", 2**20))
    assert m.expect_output == ((1, 10),)


@pytest.mark.parametrize("entry, match", [
    ('max-parms = "1M"', r"unknown key 'max-parms'"),
    ('max-params = "25Q"', r"key 'max-params': cannot read '25Q'"),
    ('max-activation-memory = "3 parsecs"', r"key 'max-activation-memory'"),
    ('input = "1,x,3"', r"key 'input'"),
    ('tracer = "jit"', r"key 'tracer' must be one of auto, fx, eager"),
    ('args = 3', r"key 'args' must be a table"),
    ('expect-output = ["1,ten"]', r"key 'expect-output'"),
])
def test_config_errors_name_key_and_file(tmp_path: Path, entry: str, match: str) -> None:
    _pyproject(tmp_path, f'[tool.cnnshape.models.net]\nmodel = "{LENET}"\n{entry}\n')
    with pytest.raises(ConfigError, match=r"pyproject\.toml \[tool\.cnnshape\.models\.net\]: " + match):
        load_config(tmp_path / "pyproject.toml")
    code, _, err = cli("check", "--config", str(tmp_path / "pyproject.toml"))
    assert code == 2 and "pyproject.toml" in err and "Traceback" not in err


def test_standalone_config_and_missing_model_key(tmp_path: Path) -> None:
    path = tmp_path / "cnnshape.toml"
    path.write_text('[models.a]\ninput = ["1,1,32,32"]\n')
    with pytest.raises(ConfigError, match=r"cnnshape\.toml \[models\.a\]: key 'model' is required"):
        load_config(path)
    path.write_text("[models.a\n")
    with pytest.raises(ConfigError, match=r"cnnshape\.toml: invalid TOML"):
        load_config(path)


# --- baselines and diff ----------------------------------------------------------------------


def test_compare_pure_boundary() -> None:
    def snap(params: int) -> Snapshot:
        return Snapshot("m", (Figure("params", params),), ())

    # 5% of 1,000 is 50: 1,050 passes, 1,051 fails
    assert compare(snap(1000), snap(1050), Decimal(5)).results[0].passed
    assert not compare(snap(1000), snap(1051), Decimal(5)).results[0].passed
    assert not compare(snap(0), snap(1), Decimal(5)).results[0].passed


BIGGER_LENET = '''
from torch import nn
import torch

class LeNet5(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2),
                                      nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2))
        self.classifier = nn.Sequential(nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 200),
                                        nn.Tanh(), nn.Linear(200, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))
'''
# The bigger classifier: fc2 120*200+200 = 24,200 and fc3 200*10+10 = 2,010 instead of 10,164
# and 850: +15,196 params (61,706 -> 76,902, +24.63%); MACs fc2 24,000 + fc3 2,000 instead of
# 10,080 + 840: +15,080 (416,520 -> 431,600). features unchanged.


def test_baseline_growth_table(tmp_path: Path) -> None:
    base = tmp_path / "baseline.json"
    code, _, err = cli("check", LENET, "-i", LENET_IN, "--write-baseline", str(base))
    assert code == 0, err
    data = json.loads(base.read_text())
    entry = data["models"][LENET]
    assert data["schema"] == "cnnshape.baseline/1"
    assert entry["figures"] == {"params": PARAMS, "macs": MACS, "activation_memory": ACT_BYTES,
                                "param_memory": PARAM_BYTES}
    assert entry["modules"]["features"] == {"params": 2_572, "macs": 357_600}
    assert entry["modules"]["classifier"] == {"params": 59_134, "macs": 58_920}
    # same model: no growth, passes even with 0%
    code, out, _ = cli("check", LENET, "-i", LENET_IN, "--baseline", str(base), "--max-growth", "0%")
    assert code == 0, out
    # a bigger model under the same name: rewrite the baseline's key to the bigger spec
    bigger = tmp_path / "bigger.py"
    bigger.write_text(BIGGER_LENET)
    spec = f"{bigger}:LeNet5"
    base.write_text(json.dumps({**data, "models": {spec: entry}}))
    code, out, _ = cli("check", spec, "-i", LENET_IN, "--baseline", str(base), "--max-growth", "5%")
    assert code == 1, out
    rows = {tuple(line.split()[:2]): line for line in out.splitlines() if line.split()[:1]}
    assert "61,706" in rows[("(total)", "params")] and "76,902" in rows[("(total)", "params")]
    assert "+15,196" in rows[("(total)", "params")] and "+24.63%" in rows[("(total)", "params")]
    assert "+15,080" in rows[("(total)", "MACs")]
    assert "+15,196" in rows[("classifier", "params")]
    assert rows[("features", "params")].split()[2:5] == ["2,572", "2,572", "0"]
    # 24.63% growth is within 25%
    code, out, _ = cli("check", spec, "-i", LENET_IN, "--baseline", str(base), "--max-growth", "25%")
    assert code == 0, out


def test_diff_two_json_reports(tmp_path: Path) -> None:
    bigger = tmp_path / "bigger.py"
    bigger.write_text(BIGGER_LENET)
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    assert cli("summary", LENET, "-i", LENET_IN, "-f", "json", "-o", str(old), "-d", "1")[0] == 0
    assert cli("summary", f"{bigger}:LeNet5", "-i", LENET_IN, "-f", "json", "-o", str(new))[0] == 0
    code, out, _ = cli("diff", str(old), str(new))
    assert code == 0 and "+15,196" in out and "+24.63%" in out
    assert any(line.split()[:2] == ["classifier", "params"] and "+15,196" in line for line in out.splitlines())
    code, out, _ = cli("diff", str(old), str(new), "--max-growth", "5%")
    assert code == 1 and "FAIL" in out
    code, _, err = cli("diff", str(old), str(tmp_path / "nope.json"))
    assert code == 2 and "cannot read report" in err


# --- CI output --------------------------------------------------------------------------------


def test_github_annotations() -> None:
    code, out, _ = cli("check", LENET, "-i", LENET_IN, "--max-params", str(PARAMS - 1),
                       "--max-macs", str(MACS), "-f", "github")
    assert code == 1
    lines = [line for line in out.splitlines() if line.startswith("::")]
    kinds = [line[2:].split(" ", 1)[0] for line in lines]
    assert kinds == ["error", "notice"]
    title, _, text = lines[0][len("::error "):].partition("::")
    assert title.startswith("title=") and "params FAIL" in title and ":" not in title[len("title="):].replace("%3A", "")
    assert "61,706 exceeds the budget of 61,705" in text


def test_junit_xml(tmp_path: Path) -> None:
    junit = tmp_path / "out" / "cnnshape.xml"
    code, out, _ = cli("check", LENET, "-i", LENET_IN, "--max-params", str(PARAMS - 1),
                       "--max-macs", str(MACS), "--expect-output", "1,10", "--junit-file", str(junit))
    assert code == 1 and "FAIL" in out  # the text table still goes to stdout
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "3" and root.get("failures") == "1"
    cases = root.findall("./testsuite/testcase")
    assert [c.get("name") for c in cases] == ["params", "MACs", "output shape"]
    assert [c.find("failure") is not None for c in cases] == [True, False, False]
    code, out, _ = cli("check", LENET, "-i", LENET_IN, "--max-params", str(PARAMS), "-f", "junit")
    assert code == 0 and ET.fromstring(out).get("failures") == "0"


def test_json_output() -> None:
    code, out, _ = cli("check", LENET, "-i", LENET_IN, "--max-macs", str(MACS - 1), "-f", "json")
    data = json.loads(out)
    assert code == 1 and data["passed"] is False
    assert data["results"][0] == {"model": LENET, "figure": "macs", "source": "budget",
                                       "value": MACS, "limit": MACS - 1, "headroom": -1, "passed": False}


# --- pytest helper ------------------------------------------------------------------------------


def test_assert_within_budget() -> None:
    results = assert_within_budget(LENET, [(1, 1, 32, 32)], max_params=PARAMS, max_macs="416.52K",
                                   expect_output=[(1, 10)])
    assert all(r.passed for r in results)
    with pytest.raises(AssertionError, match=r"(?s)params\s+61,706\s+≤ 61,705\s+-1 .*FAIL"):
        assert_within_budget(LENET, [(1, 1, 32, 32)], max_params=PARAMS - 1)


# --- end to end: a project with pyproject.toml, the real console script -----------------------


@pytest.mark.slow  # > 10 s in docs/test-durations.md
def test_end_to_end_project_fails_when_model_grows(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "net.py").write_text((ROOT / "examples" / "lenet.py").read_text())
    _pyproject(tmp_path, '''
[tool.cnnshape.models.lenet]
model = "src/net.py:LeNet5"
input = ["1,1,32,32"]
max-params = "62K"
max-macs = "420K"
expect-output = "1,10"

[tool.cnnshape.models.lenet100]
model = "src/net.py:LeNet5"
input = ["1,1,32,32"]
args = { num_classes = 100 }
max-param-memory = "300KB"
''')
    # lenet100: fc3 84*100+100 = 8,500 instead of 850 -> 69,356 params * 4 B = 277,424 B <= 300 KB;
    # grown: 2,572 + 48,120 + 24,200 + (200*100+100) = 94,992 params * 4 B = 379,968 B > 300 KB
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cnnshape", "check", *args], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=120)

    ok = run()
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "[1/2] lenet" in ok.stderr and "[2/2] lenet100" in ok.stderr
    assert "all 4 checks passed" in ok.stdout
    (tmp_path / "src" / "net.py").write_text(BIGGER_LENET)
    grown = run()
    assert grown.returncode == 1, grown.stdout + grown.stderr
    assert "Traceback" not in grown.stderr
    params_row = next(line for line in grown.stdout.splitlines() if line.split()[:2] == ["lenet", "params"])
    assert "76,902" in params_row and "FAIL" in params_row
    memory_row = next(line for line in grown.stdout.splitlines() if line.split()[:3] == ["lenet100", "param", "memory"])
    assert "379,968 B" in memory_row and "FAIL" in memory_row
