"""Regression tests for issue 14 ("Hardening"), each through the real console path
(``python -m cnnshape ...`` in a subprocess): the exit code, stdout still parseable where a machine
format was asked for, files intact, and a message that names the cause."""
from __future__ import annotations

import csv
import io
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cnnshape", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=180)


def fails(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Exit 2, nothing on stdout, one ``error:`` paragraph naming every fragment, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == "", result.stdout
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr, result.stderr
    assert "error: " in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)
    return result.stderr


def model(tmp_path: Path, body: str, name: str = "net.py") -> Path:
    """A model file ``name`` in ``tmp_path``: the usual imports, then ``body``."""
    path = tmp_path / name
    path.write_text("import os\nimport sys\nimport torch\nfrom torch import nn\n\n" + textwrap.dedent(body))
    return path


CONV = """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3)
        {init}

    def forward(self, x):
        {forward}
        return self.c(x)
"""


def conv_model(tmp_path: Path, top: str = "", init: str = "pass", forward: str = "pass") -> str:
    """A Conv2d(3, 4, 3) model (112 parameters) with extra code at import, in __init__ and forward."""
    return f"{model(tmp_path, top + CONV.format(init=init, forward=forward))}:Net"


# --- 1: model code that exits or raises KeyboardInterrupt -------------------------------------


@pytest.mark.parametrize("where", ["top", "init", "forward"])
def test_model_sys_exit_is_exit_2_never_a_pass(tmp_path: Path, where: str) -> None:
    spec = conv_model(tmp_path, **{where: "sys.exit(0)\n" if where == "top" else "sys.exit(0)"})
    err = fails(run("check", spec, "--input", "1,3,8,8", "--max-params", "1"),
                "the model's code called sys.exit", "SystemExit(0)", "net.py:", "sys.exit(0)")
    assert "__main__" in err  # the fix


def test_model_keyboard_interrupt_is_exit_2(tmp_path: Path) -> None:
    spec = conv_model(tmp_path, forward="raise KeyboardInterrupt")
    fails(run("check", spec, "--input", "1,3,8,8", "--max-params", "1"),
          "raised KeyboardInterrupt", "no Ctrl-C was pressed", "net.py:")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery")
def test_real_ctrl_c_is_still_130(tmp_path: Path) -> None:
    marker = tmp_path / "running"
    spec = conv_model(tmp_path, forward=f"open({str(marker)!r}, 'w').close(); __import__('time').sleep(60)")
    proc = subprocess.Popen([sys.executable, "-m", "cnnshape", "summary", spec, "--input", "1,3,8,8"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "KeyboardInterrupt" not in err


ARGPARSE = """
import argparse
parser = argparse.ArgumentParser()
parser.add_argument("--width", type=int, default=4)
{extra}
args = parser.parse_args()
"""


def test_model_argparse_sees_none_of_cnnshapes_arguments(tmp_path: Path) -> None:
    spec = conv_model(tmp_path, top=ARGPARSE.format(extra="") + "print('argv:', sys.argv)\n")
    result = run("check", spec, "--input", "1,3,8,8", "--max-params", "1", "--format", "json")
    assert result.returncode == 1, result.stderr  # the budget of 1 fails: the model was analysed
    assert json.loads(result.stdout)["results"][0]["value"] == 112
    assert "argv: [" in result.stderr and "net.py']" in result.stderr and "--max-params" not in result.stderr
    assert "usage:" not in result.stderr


def test_model_argparse_error_is_explained(tmp_path: Path) -> None:
    spec = conv_model(tmp_path, top=ARGPARSE.format(extra='parser.add_argument("--data", required=True)'))
    err = fails(run("check", spec, "--input", "1,3,8,8", "--max-params", "1"),
                "parsed command-line arguments", "argparse", "net.py:", "parser.parse_args()",
                "cnnshape's own arguments are not passed on")
    assert "usage: net.py" in err  # argparse's own line names the model file, not cnnshape


# --- 2: what the model prints goes to stderr -------------------------------------------------

PRINTS = dict(top="print('import-time print')\n", init="print('init print')",
              forward="print('forward print'); sys.__stdout__.write('raw stdout\\n'); "
                      "sys.__stdout__.flush(); os.write(1, b'fd one\\n')")


@pytest.fixture
def printing(tmp_path: Path) -> str:
    return conv_model(tmp_path, **PRINTS)


def _printed_to_stderr(result: subprocess.CompletedProcess[str]) -> None:
    for text in ("import-time print", "init print", "forward print", "raw stdout", "fd one"):
        assert text in result.stderr and text not in result.stdout, text


def test_model_prints_keep_summary_json_parseable(printing: str) -> None:
    result = run("summary", printing, "--input", "1,3,8,8", "-f", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["totals"]["params"] == 112
    _printed_to_stderr(result)


def test_model_prints_keep_check_json_parseable(printing: str) -> None:
    result = run("check", printing, "--input", "1,3,8,8", "--max-params", "112", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["passed"] is True
    _printed_to_stderr(result)


def test_model_prints_keep_verify_csv_parseable(printing: str) -> None:
    result = run("summary", printing, "--input", "1,3,8,8", "--verify", "--repeat", "1", "-f", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["name"] for r in rows] == ["x", "c", "output"] and rows[1]["params"] == "112"
    _printed_to_stderr(result)


def test_output_to_dev_stdout_is_the_real_stdout_and_appends(printing: str, tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    log.write_text("earlier line\n")
    with open(log, "a") as out:  # `cnnshape ... -o /dev/stdout >> log.txt`
        result = subprocess.run([sys.executable, "-m", "cnnshape", "summary", printing, "--input", "1,3,8,8",
                                 "-f", "json", "-o", "/dev/stdout"], cwd=ROOT, stdout=out,
                                stderr=subprocess.PIPE, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    first, rest = log.read_text().split("\n", 1)
    assert first == "earlier line" and json.loads(rest)["totals"]["params"] == 112


# --- 3: misplaced and unknown config keys ------------------------------------------------------

GOOD = '[tool.cnnshape.models.net]\nmodel = "net.py:Net"\ninput = ["1,3,8,8"]\n'


@pytest.mark.parametrize("name, text, fragments", [
    ("pyproject.toml", '[tool.cnnshape]\nmax-params = "10"\n\n' + GOOD,
     ["[tool.cnnshape]: unknown key 'max-params'", "belongs in a model's table [tool.cnnshape.models.<name>]"]),
    ("pyproject.toml", GOOD.replace("[tool.cnnshape.models.net]", '[tool.cnnshape.models]\nmax-params = "10"\n\n'
                                                                  "[tool.cnnshape.models.net]"),
     ["[tool.cnnshape.models]: key 'max-params' belongs in a model's table"]),
    ("pyproject.toml", GOOD.replace("models.net", "model.net"), ["unknown key 'model'", "models, plural"]),
    ("pyproject.toml", GOOD + 'max-parms = "10"\n', ["unknown key 'max-parms'", "did you mean 'max-params'"]),
    ("pyproject.toml", "tool = 3\n", ["'tool' must be a table"]),
    ("pyproject.toml", '[tool]\ncnnshape = "x"\n', ["'tool.cnnshape' must be a table"]),
    ("pyproject.toml", GOOD.replace("tool.cnnshape.", ""),
     ["belong under [tool.cnnshape.models.<name>] in pyproject.toml"]),
    ("cnnshape.toml", GOOD, ["in cnnshape.toml the tables are [models.<name>]"]),
    ("cnnshape.toml", 'max-macs = "1G"\n' + GOOD.replace("tool.cnnshape.", ""),
     ["unknown key 'max-macs'", "belongs in a model's table [models.<name>]"]),
])
def test_misplaced_config_keys_are_errors(tmp_path: Path, name: str, text: str, fragments: list[str]) -> None:
    conv_model(tmp_path)
    (tmp_path / name).write_text(text)
    fails(run("check", cwd=tmp_path), name, *fragments)


def test_utf16_pyproject_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(GOOD, encoding="utf-16")
    fails(run("check", cwd=tmp_path), "pyproject.toml", "not UTF-8", "UTF-16")


# --- 4: baselines are validated ----------------------------------------------------------------


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    """A model and the baseline recorded for it: (spec, baseline JSON)."""
    folder = tmp_path_factory.mktemp("baseline")
    spec = conv_model(folder)
    result = run("check", spec, "--input", "1,3,8,8", "--write-baseline", str(folder / "b.json"))
    assert result.returncode == 0, result.stderr
    return spec, json.loads((folder / "b.json").read_text())


@pytest.mark.parametrize("figure, value, shown", [
    ("macs", None, "figure 'macs' is missing"),
    ("params", 3.7, "figure 'params' is 3.7, not a non-negative integer"),
    ("params", True, "figure 'params' is True, not a non-negative integer"),
    ("params", -5, "figure 'params' is -5, not a non-negative integer"),
    ("activation_memory", "81920", "figure 'activation_memory' is '81920'"),
])
def test_baseline_figures_must_be_non_negative_integers(
        tmp_path: Path, baseline: tuple[str, dict], figure: str, value: object, shown: str) -> None:
    spec, data = baseline
    data = json.loads(json.dumps(data))
    figures = data["models"][spec]["figures"]
    if value is None:
        del figures[figure]
    else:
        figures[figure] = value
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    fails(run("check", spec, "--input", "1,3,8,8", "--baseline", str(path), "--max-growth", "5%",
              "--format", "json"),
          str(path), f"model {spec!r}", shown, "--write-baseline")


def test_baseline_modules_and_outputs_are_validated(tmp_path: Path, baseline: tuple[str, dict]) -> None:
    spec, data = baseline
    data = json.loads(json.dumps(data))
    data["models"][spec]["modules"]["c"]["macs"] = 1.5
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    fails(run("check", spec, "--input", "1,3,8,8", "--baseline", str(path)), "module 'c' 'macs' is 1.5")


def test_report_figures_are_validated_in_diff(tmp_path: Path) -> None:
    report = {"schema": "cnnshape.report/1", "model": "m", "outputs": [{"shape": [1, 4]}], "layers": [],
              "totals": {"params": 10, "macs": 10, "activation_bytes": 10, "param_bytes": 10}}
    (tmp_path / "old.json").write_text(json.dumps(report))
    report["totals"]["macs"] = 12.5
    (tmp_path / "new.json").write_text(json.dumps(report))
    fails(run("diff", str(tmp_path / "old.json"), str(tmp_path / "new.json")), "totals.macs is 12.5")


# --- 8: -o writes to the resolved target, keeping links and mode ---------------------------------

WRITERS = {
    "summary -o": lambda spec, path: ("summary", spec, "--input", "1,3,8,8", "-f", "json", "-o", path),
    "--write-baseline": lambda spec, path: ("check", spec, "--input", "1,3,8,8", "--write-baseline", path),
    "--junit-file": lambda spec, path: ("check", spec, "--input", "1,3,8,8", "--max-params", "1M",
                                        "--junit-file", path),
}


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks and POSIX modes")
@pytest.mark.parametrize("writer", list(WRITERS))
def test_output_through_a_symlink_updates_its_target_and_keeps_the_mode(tmp_path: Path, writer: str) -> None:
    spec = conv_model(tmp_path)
    target, link = tmp_path / "real.out", tmp_path / "link.out"
    target.write_text("old\n")
    target.chmod(0o600)
    link.symlink_to(target.name)
    result = run(*WRITERS[writer](spec, str(link)))
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and os.readlink(link) == target.name  # still a link, to the same file
    content = target.read_text()
    assert content != "old\n" and ("112" in content or "testsuite" in content)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.skipif(sys.platform == "win32", reason="hard links and POSIX modes")
@pytest.mark.parametrize("writer", list(WRITERS))
def test_output_to_a_hard_link_keeps_the_link_and_the_mode(tmp_path: Path, writer: str) -> None:
    spec = conv_model(tmp_path)
    target, hard = tmp_path / "real.out", tmp_path / "hard.out"
    target.write_text("old content, longer than nothing\n" * 500)  # longer than the new: truncated
    target.chmod(0o600)
    os.link(target, hard)
    result = run(*WRITERS[writer](spec, str(hard)))
    assert result.returncode == 0, result.stderr
    assert os.path.samefile(target, hard) and target.stat().st_nlink == 2
    content = target.read_text()
    assert "old content" not in content and ("112" in content or "testsuite" in content)
    if writer != "--junit-file":
        json.loads(content)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


# --- 9: internal errors become messages ----------------------------------------------------------


def test_sizes_input_above_the_studied_range(tmp_path: Path) -> None:
    fails(run("sizes", conv_model(tmp_path), "--input", "1,3,20000,20000", "-f", "json"),
          "dim 2 is 20,000", "above 16,384", "--input 1,3,224,224")


@pytest.mark.parametrize("shape", ["1,3,99999999999999999999,4", "1,3,4000000000,4000000000:float64"])
def test_input_beyond_int64(tmp_path: Path, shape: str) -> None:
    fails(run("summary", conv_model(tmp_path), "--input", shape, "-f", "json"), "--input", "2^63 - 1 bytes")


@pytest.mark.parametrize("where, fragment", [
    ("folder", "it is a folder"),
    ("under-file", "is a file, not a folder"),
])
@pytest.mark.parametrize("writer", list(WRITERS))
def test_output_to_a_folder_or_under_a_file(tmp_path: Path, where: str, fragment: str, writer: str) -> None:
    spec = conv_model(tmp_path)
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("keep me\n")
    path = str(tmp_path / "folder") if where == "folder" else str(tmp_path / "file.txt" / "out.json")
    option = writer.split()[-1] if writer != "summary -o" else "--output"
    fails(run(*WRITERS[writer](spec, path)), f"cannot write {option}", fragment)
    assert (tmp_path / "file.txt").read_text() == "keep me\n"


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root may write anywhere")
def test_output_to_an_unwritable_folder(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        fails(run("summary", conv_model(tmp_path), "--input", "1,3,8,8", "-o", str(locked / "out.txt")),
              "cannot write --output", "Permission denied")
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("value, fragment", [
    ("x=" + "-" * 100_000 + "1", "too long or too deeply nested"),  # MemoryError (parser stack)
    ("x=" + "1+" * 30_000 + "1", "too long or too deeply nested"),  # RecursionError
    ("x={{}}", "not a valid Python literal"),  # TypeError: unhashable dict
])
def test_unreadable_arg_values(tmp_path: Path, value: str, fragment: str) -> None:
    fails(run("summary", conv_model(tmp_path), "--input", "1,3,8,8", "--arg", value), "--arg 'x=", fragment)


def test_arg_given_twice(tmp_path: Path) -> None:
    fails(run("summary", conv_model(tmp_path), "--arg", "a=1", "--arg", "a=2"), "--arg a=... is given twice")


def test_binary_baseline_and_report(tmp_path: Path) -> None:
    binary = tmp_path / "blob.json"
    binary.write_bytes(bytes(range(128, 256)))
    fails(run("check", conv_model(tmp_path), "--input", "1,3,8,8", "--baseline", str(binary)),
          f"baseline {binary} is not a JSON file", "not UTF-8")
    fails(run("diff", str(binary), str(binary)), f"report {binary} is not a JSON file")


def test_deeply_nested_json(tmp_path: Path) -> None:
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 100_000 + "]" * 100_000)
    fails(run("diff", str(nested), str(nested)), f"report {nested} cannot be read as JSON")


def test_huge_growth_limit_and_budget(tmp_path: Path, baseline: tuple[str, dict]) -> None:
    spec, data = baseline
    path = tmp_path / "b.json"
    path.write_text(json.dumps(data))
    fails(run("check", spec, "--input", "1,3,8,8", "--baseline", str(path), "--max-growth", "1e400"),
          "--max-growth", "checks nothing")
    result = run("check", spec, "--input", "1,3,8,8", "--max-params", "9" * 400, "--format", "json")
    assert result.returncode == 0, result.stderr
    limit = json.loads(result.stdout)["results"][0]["limit"]
    assert limit >= 10**399  # units.parse_count reads it with 28 significant digits


# --- found while hardening: more of the same -----------------------------------------------------


@pytest.mark.parametrize("command", [
    ("rf", "-f", "json"), ("sizes", "-f", "json"), ("graph",),
])
def test_model_prints_keep_every_machine_format_clean(printing: str, command: tuple[str, ...]) -> None:
    result = run(command[0], printing, "--input", "1,3,8,8", *command[1:])
    assert result.returncode == 0, result.stderr
    if command[0] == "graph":
        assert result.stdout.startswith("digraph")
    else:
        json.loads(result.stdout)
    _printed_to_stderr(result)


def test_check_that_checks_nothing_is_exit_2(tmp_path: Path) -> None:
    spec = conv_model(tmp_path)
    fails(run("check", spec, "--input", "1,3,8,8", "-f", "json"), "nothing to check", "--max-params",
          "does not pass")
    (tmp_path / "cnnshape.toml").write_text('[models.a]\nmodel = "net.py:Net"\ninput = ["1,3,8,8"]\n')
    fails(run("check", cwd=tmp_path), "nothing to check for a", "has none of max-params")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema": "cnnshape.baseline/1", "models": {}}))
    fails(run("check", spec, "--input", "1,3,8,8", "--baseline", str(other), "--max-growth", "5%"),
          "nothing to check", f"not in {other}")


def test_baseline_matches_another_spelling_of_the_spec(tmp_path: Path) -> None:
    conv_model(tmp_path)
    recorded = run("check", "net.py:Net", "--input", "1,3,8,8", "--write-baseline", "b.json", cwd=tmp_path)
    assert recorded.returncode == 0, recorded.stderr
    result = run("check", "./net.py:Net", "--input", "1,3,8,8", "--baseline", "b.json", "--max-growth", "0%",
                 "--format", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["comparisons"]) == 1 and "not compared" not in result.stderr


def test_outputs_never_overwrite_inputs(tmp_path: Path) -> None:
    spec = conv_model(tmp_path)
    source = (tmp_path / "net.py").read_text()
    fails(run("summary", spec, "-o", str(tmp_path / "net.py")), "--output", "the model's source file")
    base = tmp_path / "b.json"
    base.write_text('{"schema": "cnnshape.baseline/1", "models": {}}')
    fails(run("check", spec, "--max-params", "1M", "--baseline", str(base), "--junit-file", str(base)),
          "--junit-file", "is the --baseline file")
    fails(run("check", spec, "--max-params", "1M", "--write-baseline", str(tmp_path / "x.json"),
              "--junit-file", str(tmp_path / "x.json")), "name the same file")
    assert (tmp_path / "net.py").read_text() == source and "models" in base.read_text()
    fails(run("summary", spec, "-o", ""), "--output is an empty path")


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_output_file_is_not_replaced(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    out.write_text("keep\n")
    out.chmod(0o444)
    fails(run("summary", conv_model(tmp_path), "-o", str(out)), "read-only")
    assert out.read_text() == "keep\n"


def test_float_budget_in_config(tmp_path: Path) -> None:
    conv_model(tmp_path)
    (tmp_path / "cnnshape.toml").write_text('[models.a]\nmodel = "net.py:Net"\nmax-params = 1.5e6\n')
    fails(run("check", cwd=tmp_path), "key 'max-params': 1500000.0 is a TOML float", '"25M"')


@pytest.mark.skipif(sys.platform == "win32", reason="SIGPIPE semantics")
def test_closed_stdout_is_quiet(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "cnnshape", "summary", "examples/resnet.py:ResNet18",
                             "-f", "json"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # `| head` that has already gone
    err = proc.stderr.read()
    assert proc.wait(timeout=180) == 141 and err == ""


def test_model_chdir_does_not_move_outputs(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    conv_model(tmp_path, top=f"os.chdir({str(elsewhere)!r})\n")
    result = run("summary", "net.py:Net", "--input", "1,3,8,8", "-f", "json", "-o", "out.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "out.json").read_text())["totals"]["params"] == 112
    assert list(elsewhere.iterdir()) == []


def test_format_junit_with_junit_file_prints_junit(tmp_path: Path) -> None:
    junit = tmp_path / "j.xml"
    result = run("check", conv_model(tmp_path), "--input", "1,3,8,8", "--max-params", "1M", "--format", "junit",
                 "--junit-file", str(junit))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("<?xml") and junit.read_text().strip() == result.stdout.strip()


def test_diff_given_a_baseline_says_so(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"schema": "cnnshape.baseline/1", "models": {}}))
    fails(run("diff", str(path), str(path)), "not a cnnshape JSON report", "It is a baseline", "--baseline FILE")
