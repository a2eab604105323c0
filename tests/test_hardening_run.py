"""Regression tests for issue 14 ("Hardening"), items 11, 12 and 13: models that should just work
(CPU tensor constants, inputs passed by keyword), failures that must say what is unsupported and
what to do (dtypes, sparse and quantized ops), and ``--timeout`` for model code that never ends.
Each goes through the real console path (``python -m cnnshape ...``), as tests/test_hardening.py
does; the numbers are compared with torch's real forward."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from .test_hardening import fails, model, run


def _json(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _import(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"hardening_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _torch_figures(net: torch.nn.Module, *args: torch.Tensor, **kwargs: torch.Tensor) -> tuple[int, int, list]:
    """(parameters, MACs as FlopCounterMode's FLOPs / 2, output shape) of a real CPU forward."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = net.eval()(*args, **kwargs)
    return sum(p.numel() for p in net.parameters()), counter.get_total_flops() // 2, list(out.shape)


# --- 11: module-level CPU tensor constants ------------------------------------------------------

CONSTANTS = """
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
IDX = torch.tensor([2, 1, 0])
W = torch.randn(4, 3, 3, 3)
PROJ = torch.randn(6, 5)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(5, 10)
        self.scale = torch.ones(1, 8, 1, 1)  # a plain attribute: neither parameter nor buffer

    def forward(self, x):
        x = (x - MEAN) / STD  # the issue's case
        x = x[:, IDX]  # a CPU index tensor
        x = torch.cat([self.c(x) * self.scale, x], 1)[:, :3]  # 1x11x16x16 -> 1x3x16x16
        y = torch.nn.functional.conv2d(x, W)  # CPU weights: 1x4x14x14
        y = y.flatten(2)[:, :, :6] @ PROJ  # 1x4x6 @ 6x5
        return self.fc(y)
"""


@pytest.mark.parametrize("tracer", ["fx", "eager", "auto"])
def test_cpu_tensor_constants_just_work(tmp_path: Path, tracer: str) -> None:
    path = model(tmp_path, CONSTANTS)
    report = _json(run("summary", f"{path}:Net", "--input", "1,3,16,16", "-f", "json", "--tracer", tracer,
                       "--cross-check"))
    params, macs, shape = _torch_figures(_import(path).Net(), torch.randn(1, 3, 16, 16))
    # params: conv 8*3*9 + 8 = 224, fc 5*10 + 10 = 60; MACs: conv 8*27*256 = 55,296, conv2d(W) 4*27*196 = 21,168,
    # matmul 4*6*5 = 120, fc 4*5*10 = 200
    assert (params, macs, shape) == (284, 76_784, [1, 4, 10])
    assert report["totals"]["params"] == params and report["totals"]["macs"] == macs
    assert [o["shape"] for o in report["outputs"]] == [shape]
    assert report["tracer"] == ("eager" if tracer == "eager" else "fx")


def test_cpu_tensor_constants_verify_on_the_real_tensors(tmp_path: Path) -> None:
    path = model(tmp_path, CONSTANTS)
    result = run("summary", f"{path}:Net", "--input", "1,3,16,16", "--verify", "--repeat", "1")
    assert result.returncode == 0, result.stderr
    assert "layers match on cpu" in result.stdout and "mismatch" not in result.stdout


# --- 12: inputs passed by keyword ---------------------------------------------------------------

KEYWORDS = """
class Kw(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3)

    def forward(self, **inputs):
        return self.c(inputs["x"]) * inputs["mask"]


class KwOnly(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3)

    def forward(self, x, *, mask, scale=None):
        y = self.c(x) * mask
        if scale is not None:
            y = y * scale
        return y
"""


@pytest.mark.parametrize("name, inputs, tracer", [
    ("Kw", ["x=1,3,8,8", "mask=1,1,6,6"], "auto"),  # was: "Kw.forward() takes 0 tensor input(s)"
    ("Kw", ["x=1,3,8,8", "mask=1,1,6,6"], "eager"),
    ("KwOnly", ["1,3,8,8", "mask=1,1,6,6"], "fx"),
    ("KwOnly", ["1,3,8,8", "mask=1,1,6,6", "scale=1,4,1,1"], "fx"),
    ("KwOnly", ["x=1,3,8,8", "mask=1,1,6,6"], "eager"),
])
def test_named_inputs(tmp_path: Path, name: str, inputs: list[str], tracer: str) -> None:
    path = model(tmp_path, KEYWORDS)
    flags = [arg for text in inputs for arg in ("--input", text)]
    report = _json(run("summary", f"{path}:{name}", *flags, "-f", "json", "--tracer", tracer))
    net = getattr(_import(path), name)()
    shapes = {text.partition("=")[0] if "=" in text else "x": [int(d) for d in text.rpartition("=")[2].split(",")]
              for text in inputs}
    tensors = {key: torch.randn(*shape) for key, shape in shapes.items()}
    if name == "KwOnly" and "=" not in inputs[0]:
        x = tensors.pop("x")
        params, macs, shape = _torch_figures(net, x, **tensors)
    else:
        params, macs, shape = _torch_figures(net, **tensors)
    assert (params, macs) == (112, 3888)  # 4*3*9 + 4; 4*27*36
    assert report["totals"]["params"] == params and report["totals"]["macs"] == macs
    assert [o["shape"] for o in report["outputs"]] == [shape]
    assert [i["key"] for i in report["inputs"]] == list(shapes)


def test_named_inputs_verify(tmp_path: Path) -> None:
    path = model(tmp_path, KEYWORDS)
    result = run("summary", f"{path}:Kw", "--input", "x=1,3,8,8", "--input", "mask=1,1,6,6", "--verify",
                 "--repeat", "1", "-f", "json")
    assert _json(result)["verification"]["ok"] is True


def test_named_inputs_in_a_config(tmp_path: Path) -> None:
    model(tmp_path, KEYWORDS)
    (tmp_path / "cnnshape.toml").write_text(
        '[models.kw]\nmodel = "net.py:KwOnly"\ninput = ["1,3,8,8", "mask=1,1,6,6"]\nmax-macs = "3888"\n')
    result = run("check", "--format", "json", cwd=tmp_path)
    assert _json(result)["passed"] is True


@pytest.mark.parametrize("name, inputs, fragments", [
    ("Kw", ["1,3,8,8"], ["Kw.forward() takes 0 tensor input(s) but 1", "by keyword (**inputs): --input NAME=SIZES"]),
    ("KwOnly", ["1,3,8,8", "1,1,6,6"], ["takes 1 tensor input(s) but 2", "by keyword (mask, scale): --input NAME"]),
    ("KwOnly", ["1,3,8,8", "1,1,6,6", "mask=1,1,6,6"], ["takes at most 1 input(s) by position but 2"]),
    ("KwOnly", ["1,3,8,8"], ["KwOnly.forward(x, *, mask, scale=...) needs 'mask'", "--input mask=SIZES"]),
    ("KwOnly", ["1,3,8,8", "maks=1,1,6,6"], ["has no parameter 'maks'", "the names it takes: x, mask, scale"]),
    ("KwOnly", ["1,3,8,8", "x=1,3,8,8", "mask=1,1,6,6"], ["the input 'x' is given by position and again"]),
    ("KwOnly", ["mask=1,1,6,6", "1,3,8,8"], ["an input passed by position after one passed by keyword"]),
    ("KwOnly", ["1x=1,3,8,8"], ["'1x' before '=' is not a forward parameter name"]),
])
def test_named_input_mistakes(tmp_path: Path, name: str, inputs: list[str], fragments: list[str]) -> None:
    path = model(tmp_path, KEYWORDS)
    flags = [arg for text in inputs for arg in ("--input", text)]
    fails(run("summary", f"{path}:{name}", *flags, "-f", "json"), *fragments)


def test_named_inputs_in_the_api(tmp_path: Path) -> None:
    import cnnshape
    from cnnshape import InputSpec

    module = _import(model(tmp_path, KEYWORDS))
    report = cnnshape.analyze(module.Kw(), {"x": (1, 3, 8, 8), "mask": "1,1,6,6"})
    assert report.totals.macs == 3888 and [i.key for i in report.inputs] == ["x", "mask"]
    report = cnnshape.analyze(module.KwOnly(), [(1, 3, 8, 8), InputSpec((1, 1, 6, 6), name="mask")], tracer="fx")
    assert report.totals.macs == 3888 and report.outputs[0].shape == (1, 4, 6, 6)
    with pytest.raises(cnnshape.CnnshapeError, match="needs 'mask': give inputs mask=SIZES"):
        cnnshape.analyze(module.KwOnly(), [(1, 3, 8, 8)])


# --- 12: dtypes the weights refuse; sparse and quantized ops ----------------------------------------

LAYERS = """
class Conv(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.c(x)


class Lin(nn.Module):
    def __init__(self):
        super().__init__()
        self.l = nn.Linear(8, 4)

    def forward(self, x):
        return self.l(x)


class Sparse(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 8))

    def forward(self, x):
        return torch.sparse.mm(x.to_sparse(), self.w.t())


class Quant(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.c(torch.quantize_per_tensor(x, 0.1, 0, torch.quint8).dequantize())
"""


@pytest.mark.parametrize("name, given, expected", [
    ("Conv", "1,3,32,32:float16", "1,3,32,32"),
    ("Conv", "1,3,32,32:int64", "1,3,32,32"),
    ("Lin", "x=2,8:float64", "x=2,8"),
])
@pytest.mark.parametrize("tracer", ["fx", "eager"])
def test_input_dtype_the_weights_refuse(tmp_path: Path, name: str, given: str, expected: str, tracer: str) -> None:
    # the fx path used to pass silently (torch's meta kernel for aten.convolution/addmm checks no dtypes),
    # while the real model raises: "Input type (c10::Half) and bias type (float) should be the same"
    path = model(tmp_path, LAYERS)
    dtype = given.rpartition(":")[2]
    net = getattr(_import(path), name)()
    with pytest.raises(RuntimeError):
        net(torch.ones(*[int(d) for d in given.rpartition("=")[2].partition(":")[0].split(",")],
                       dtype=getattr(torch, dtype)))
    fails(run("summary", f"{path}:{name}", "--input", given, "-f", "json", "--tracer", tracer),
          f"is {dtype} but the model's weights are float32", "the real model refuses this too",
          f"--input {expected}.")


@pytest.mark.parametrize("name, fragments", [
    ("Sparse", ["Sparse tensors cannot be analysed", "no meta kernel for aten::_to_sparse", "torch.mm"]),
    ("Quant", ["Quantized ops cannot be analysed", "no meta kernel for aten::dequantize",
               "Analyse the float model, before quantization"]),
])
def test_sparse_and_quantized_ops_say_what_to_do(tmp_path: Path, name: str, fragments: list[str]) -> None:
    path = model(tmp_path, LAYERS)
    err = fails(run("summary", f"{path}:{name}", "--input", "2,8" if name == "Sparse" else "1,3,8,8", "-f", "json"),
                *fragments, "net.py:")
    assert "PT2 compilation" not in err  # torch's advice on torch.compile is cut


def test_dynamically_quantized_model(tmp_path: Path) -> None:
    path = model(tmp_path, """
def quantized():
    return torch.ao.quantization.quantize_dynamic(nn.Sequential(nn.Linear(8, 4)), {nn.Linear}, dtype=torch.qint8)
""")
    err = fails(run("summary", f"{path}:quantized", "--input", "2,8", "-f", "json"),
                "Quantized ops cannot be analysed", "quantized::linear_dynamic")
    assert "typer" not in err  # no user line: none of cnnshape's own frames is named as the model's


# --- 13: --timeout -------------------------------------------------------------------------------

HANGS = """
import itertools


class Loop(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        while True:
            pass


class Swallow(nn.Module):
    def forward(self, x):
        while True:
            try:
                __import__("time").sleep(10)
            except BaseException:
                pass


class CLoop(nn.Module):
    def forward(self, x):
        sum(itertools.repeat(0))  # C code that never returns to Python, holding the interpreter lock


class SlowInit(nn.Module):
    def __init__(self):
        super().__init__()
        __import__("time").sleep(600)
"""


def _timed(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    result = run(*args, cwd=cwd)
    return result, time.monotonic() - start


@pytest.mark.parametrize("command", [
    ("summary", "-f", "json"), ("summary", "--tracer", "eager", "-f", "json"), ("rf", "-f", "json"),
    ("sizes", "-f", "json"), ("graph",), ("check", "--max-params", "1M", "--format", "json"),
])
def test_hanging_forward_stops_at_the_timeout(tmp_path: Path, command: tuple[str, ...]) -> None:
    model(tmp_path, HANGS)
    result, took = _timed(command[0], "net.py:Loop", "--input", "1,3,8,8", *command[1:], "--timeout", "2", cwd=tmp_path)
    fails(result, "the model's code did not finish within --timeout 2 s", "net.py:16 in forward: while True:")
    assert took < 60


@pytest.mark.parametrize("name, fragments", [
    ("Swallow", ["in forward", "net.py:2", "caught the timeout's exception", "watchdog thread"]),
    ("SlowInit", ["net.py:37 in __init__", "sleep(600)"]),
])
def test_timeout_cannot_be_defeated(tmp_path: Path, name: str, fragments: list[str]) -> None:
    model(tmp_path, HANGS)
    result, took = _timed("summary", f"net.py:{name}", "--input", "1,3,8,8", "-f", "json", "--timeout", "2",
                          cwd=tmp_path)
    fails(result, "did not finish within --timeout 2 s", *fragments)
    assert took < 60


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the POSIX timer of the last resort")
def test_timeout_ends_c_code_that_holds_the_interpreter_lock(tmp_path: Path) -> None:
    model(tmp_path, HANGS)
    result, took = _timed("summary", "net.py:CLoop", "--input", "1,3,8,8", "-f", "json", "--timeout", "1",
                          cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == "", (result.returncode, result.stderr)
    assert "Timeout" in result.stderr and 'net.py", line 31 in forward' in result.stderr  # faulthandler's stack
    assert took < 60


def test_timeout_per_model_in_a_config(tmp_path: Path) -> None:
    model(tmp_path, HANGS + CONSTANTS)
    (tmp_path / "cnnshape.toml").write_text(
        '[models.fine]\nmodel = "net.py:Net"\ninput = ["1,3,16,16"]\nmax-params = "1M"\n\n'
        '[models.stuck]\nmodel = "net.py:Loop"\ninput = ["1,3,8,8"]\nmax-params = "1M"\n')
    fails(run("check", "--timeout", "20", cwd=tmp_path), "the code of stuck did not finish within --timeout 20 s")


def test_timeout_that_is_not_reached_changes_nothing(tmp_path: Path) -> None:
    path = model(tmp_path, CONSTANTS)
    assert _json(run("summary", f"{path}:Net", "--input", "1,3,16,16", "-f", "json", "--timeout", "120"))[
        "totals"]["params"] == 284


@pytest.mark.parametrize("value", ["0", "-1", "nan", "1e30"])
def test_timeout_values(tmp_path: Path, value: str) -> None:
    path = model(tmp_path, CONSTANTS)
    fails(run("summary", f"{path}:Net", "--input", "1,3,16,16", "--timeout", value), "--timeout",
          "give a number of seconds above 0")


def test_a_timeout_shorter_than_the_set_up_still_ends_cleanly(tmp_path: Path) -> None:
    # 0.1 ms fires before the timer's own set-up is done: the run must still end through the error
    # path (exit 2, one message), not be killed by the alarm signal itself (exit 128 + SIGALRM = 142)
    path = model(tmp_path, CONSTANTS)
    fails(run("summary", f"{path}:Net", "--input", "1,3,16,16", "--timeout", "0.0001"),
          "did not finish within --timeout 0.0001 s")
