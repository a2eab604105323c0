"""The real console path: ``python3 -m cnnshape summary ...`` in a subprocess, cwd = the repo root."""
from __future__ import annotations

import csv
import functools
import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cnnshape", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


@functools.cache
def summary_json(*args: str) -> dict:
    """The parsed JSON report (cached: several tests read the same one; none modifies it)."""
    result = run("summary", *args, "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def fails(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.startswith("error: ")
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    return result.stderr


def test_table() -> None:
    result = run("summary", "examples/textbook.py:Conv7Pool3", "--input", "1,3,224,224")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # conv 7x7/2 p3: 224 → 112; pool 3/2 p1: 112 → 56; 7·7·3·64 = 9,408 params
    assert "1x64x112x112" in out and "1x64x56x56" in out
    assert "Total params: 9,408" in out
    # 64·112·112·3·49 = 118,013,952 MACs
    assert "MACs: 118,013,952 (118.014 MMACs)" in out
    assert "k7 s2 p3" in out


def test_json_schema() -> None:
    data = summary_json("examples/resnet.py:ResNet18", "--input", "1,3,64,64")
    assert data["schema"] == "cnnshape.report/1"
    assert {"model", "inputs", "outputs", "totals", "layers"} <= set(data)
    assert data["inputs"] == [{"key": "x", "shape": [1, 3, 64, 64], "dtype": "float32"}]
    assert data["outputs"][0]["shape"] == [1, 1000]
    totals = data["totals"]
    for key in ("params", "trainable_params", "non_trainable_params", "buffers", "param_bytes", "macs",
                "flops", "activation_bytes"):
        assert type(totals[key]) is int, key
    assert totals["params"] == 11_689_512
    for layer in data["layers"]:
        for key in ("name", "type", "input_shapes", "output_shape", "params", "macs", "flops", "activation_bytes"):
            assert key in layer, (key, layer["name"])
        assert all(type(layer[k]) is int for k in ("params", "macs", "flops", "activation_bytes"))
    conv1 = next(layer for layer in data["layers"] if layer["name"] == "conv1")
    assert conv1["type"] == "Conv2d"
    assert (conv1["kernel_size"], conv1["stride"], conv1["padding"], conv1["dilation"], conv1["groups"]) == \
        ([7, 7], [2, 2], [3, 3], [1, 1], 1)
    # 64 → 32 after the stride-2 conv
    assert conv1["input_shapes"] == [[1, 3, 64, 64]] and conv1["output_shape"] == [1, 64, 32, 32]


def test_markdown() -> None:
    result = run("summary", "examples/textbook.py:DepthwiseSeparable", "--input", "1,8,32,32", "--format", "markdown")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("### examples/textbook.py:DepthwiseSeparable")
    assert "| depthwise" in result.stdout and "- Total params: 136" in result.stdout


def _csv_rows(*args: str) -> list[dict[str, str]]:
    result = run("summary", *args, "--format", "csv")
    assert result.returncode == 0, result.stderr
    return list(csv.DictReader(io.StringIO(result.stdout)))


@pytest.mark.slow  # > 10 s in docs/test-durations.md
def test_csv_columns_sum_to_totals() -> None:
    args = ("examples/resnet.py:ResNet18", "--input", "1,3,64,64")
    rows = _csv_rows(*args)
    totals = summary_json(*args)["totals"]
    assert sum(int(r["macs"]) for r in rows) == totals["macs"]
    assert sum(int(r["flops"]) for r in rows) == totals["flops"]
    assert sum(int(r["activation_bytes"]) for r in rows) == totals["activation_bytes"]
    assert sum(int(r["params"]) for r in rows) == totals["params"] == 11_689_512


@pytest.mark.parametrize("depth", [1, 2])
def test_depth_collapses_and_keeps_sums(depth: int) -> None:
    args = ("examples/resnet.py:ResNet18", "--input", "1,3,64,64")
    full = summary_json(*args)
    collapsed = summary_json(*args, "--depth", str(depth))
    assert len(collapsed["layers"]) < len(full["layers"])
    assert all(layer["name"].count(".") < depth for layer in collapsed["layers"])
    for key in ("params", "macs", "flops", "activation_bytes"):
        assert sum(layer[key] for layer in collapsed["layers"]) == collapsed["totals"][key] == full["totals"][key]
    if depth == 1:
        layer1 = next(layer for layer in collapsed["layers"] if layer["name"] == "layer1")
        # layer1: two BasicBlocks of two 64→64 3x3 convs (no bias) and two BatchNorms (64+64 each)
        assert layer1["params"] == 4 * (64 * 64 * 9 + 128) == 147_968


@pytest.mark.slow  # > 10 s in docs/test-durations.md
def test_arg_num_classes() -> None:
    default = summary_json("examples/resnet.py:ResNet18", "--input", "1,3,64,64")["totals"]["params"]
    ten = summary_json("examples/resnet.py:ResNet18", "--input", "1,3,64,64", "--arg", "num_classes=10")
    # only fc changes: 512·1000 + 1000 → 512·10 + 10
    assert default - ten["totals"]["params"] == (512 * 1000 + 1000) - (512 * 10 + 10)
    assert ten["outputs"][0]["shape"] == [1, 10]


@pytest.mark.slow  # > 10 s in docs/test-durations.md
def test_multi_input_and_tuple_output() -> None:
    data = summary_json("examples/multi_io.py:TwoInputNet", "--input", "1,3,32,32", "--input", "1,10")
    assert [i["shape"] for i in data["inputs"]] == [[1, 3, 32, 32], [1, 10]]
    assert [(o["key"], o["shape"]) for o in data["outputs"]] == [("[0]", [1, 10]), ("[1]", [1, 48])]


def test_dict_output_keys() -> None:
    data = summary_json("examples/multi_io.py:DictOutputNet", "--input", "1,3,32,32")
    assert {o["key"]: o["shape"] for o in data["outputs"]} == {"['logits']": [1, 10], "['embedding']": [1, 128]}


MODEL_FILE = textwrap.dedent("""\
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)
            self.fc = nn.Linear(800, 10)

        def forward(self, x):
            return self.fc(torch.flatten(self.conv(x), 1))


    class Raises(nn.Module):
        def __init__(self):
            super().__init__()
            raise ValueError("depth must be positive")


    class Item(nn.Module):
        def __init__(self):
            super().__init__()
            n = int(torch.tensor(4).item())
            self.conv = nn.Conv2d(3, n, 3)

        def forward(self, x):
            return self.conv(x)

    class BufferItem(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("n", torch.tensor(4))
            self.conv = nn.Conv2d(3, int(self.n.item()), 3)

        def forward(self, x):
            return self.conv(x)


    def make():
        return Net()


    net = Net()
    NOT_A_MODULE = 3
    """)


@pytest.fixture
def model_file(tmp_path: Path) -> str:
    path = tmp_path / "user_model.py"
    path.write_text(MODEL_FILE)
    return str(path)


def test_the_command_leaves_its_garbage_to_the_os(tmp_path: Path) -> None:
    """cli.main freezes the collector's objects as the command ends (the collection at exit would
    walk the model and its graph); the exit is otherwise the usual one: atexit handlers run, the
    output file is whole, the exit code is the command's (0, then 2 for a bad spec). The collector,
    paused while the command imports torch and the analysis, runs again afterwards."""
    out = tmp_path / "lenet.json"
    code = textwrap.dedent(f"""
        import atexit, gc, sys
        atexit.register(lambda: print("at exit, frozen:", gc.get_freeze_count() > 0, "enabled:", gc.isenabled()))
        from cnnshape.cli import main
        sys.argv = ["cnnshape", "summary", "examples/lenet.py:LeNet5", "--input", "1,1,32,32", "--format",
                    "json", "-o", {str(out)!r}] + sys.argv[1:]
        main()
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "at exit, frozen: True enabled: True" in done.stdout
    assert json.loads(out.read_text())["totals"]["params"] == 61_706  # LeNet-5's published count
    bad = subprocess.run([sys.executable, "-c", code.replace("examples/lenet.py", "missing.py")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "at exit, frozen: True" in bad.stdout and "not found" in bad.stderr


def test_file_not_found(tmp_path: Path) -> None:
    fails(run("summary", f"{tmp_path}/missing.py:Net"), "not found", "missing.py")


def test_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("import torch\n\ndef f(:\n    pass\n")
    fails(run("summary", f"{path}:Net"), "syntax error", f"{path}:3")


def test_attribute_not_found_lists_classes(model_file: str) -> None:
    fails(run("summary", f"{model_file}:Nope"), "no attribute 'Nope'", "Net", "Raises", "Item", "make()")


def test_not_a_module(model_file: str) -> None:
    fails(run("summary", f"{model_file}:NOT_A_MODULE"), "NOT_A_MODULE", "not an nn.Module")


def test_constructor_raised(model_file: str) -> None:
    line = MODEL_FILE.splitlines().index('        raise ValueError("depth must be positive")') + 1
    fails(run("summary", f"{model_file}:Raises"), "ValueError: depth must be positive", f"{model_file}:{line}")


@pytest.mark.parametrize(("value", "fragment"), [
    ("1,a", "'a' is not an integer"),
    ("0,3", "at least 1, got 0"),
    ("1,3:float99", "unknown dtype 'float99'"),
])
def test_bad_input_values(model_file: str, value: str, fragment: str) -> None:
    stderr = fails(run("summary", f"{model_file}:Net", "--input", value), fragment)
    assert "e.g. 1,3,224,224" in stderr  # shows the accepted form


def test_wrong_channel_count(model_file: str) -> None:
    fails(run("summary", f"{model_file}:Net", "--input", "1,4,12,12"),
          "Conv2d 'conv'", "expects 3 input channels", "receives 4")


def test_linear_in_features_mismatch(model_file: str) -> None:
    # conv 3→8 k3 on 8x8 → 8x6x6 = 288 features, fc expects 800
    fails(run("summary", f"{model_file}:Net", "--input", "1,3,8,8"),
          "Linear 'fc'", "in_features=800", "receives 1x288", "flatten")


def test_meta_construction_with_tensor_arithmetic(model_file: str) -> None:
    # .item() on a tensor made in __init__ runs for real; only the parameters land on meta
    data = summary_json(f"{model_file}:Item", "--input", "1,3,8,8")
    assert not any("constructed on the CPU" in note for note in data["notes"])
    assert data["outputs"][0]["shape"] == [1, 4, 6, 6]  # 8 − 3 + 1 = 6


def test_meta_construction_fallback(model_file: str) -> None:
    # .item() on the model's own buffer (on meta by then): only the CPU can build it
    data = summary_json(f"{model_file}:BufferItem", "--input", "1,3,8,8")
    assert any("constructed on the CPU" in note and ".item()" in note for note in data["notes"])
    assert data["outputs"][0]["shape"] == [1, 4, 6, 6]


@pytest.mark.parametrize("name", ["net", "make"])
def test_instance_and_factory(model_file: str, name: str) -> None:
    data = summary_json(f"{model_file}:{name}", "--input", "1,3,12,12")
    # conv 3·8·9 + 8 = 224; fc 800·10 + 10 = 8,010
    assert data["totals"]["params"] == 224 + 8_010
    assert data["outputs"][0]["shape"] == [1, 10]


def test_help_does_not_import_torch() -> None:
    code = ("import sys, cnnshape.cli\n"
            "try:\n    cnnshape.cli.app(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "summary" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "False"
