"""``--verify``: the static prediction of every node against one real forward pass."""
from __future__ import annotations

import json
import sys
from dataclasses import replace

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import cnnshape.api
from cnnshape import ConfigError, analyze
from cnnshape.api import verify
from cnnshape.cli import app
from cnnshape.request import Request
from cnnshape.verify import resolve_device
from examples.lenet import LeNet5
from examples.multi_io import DictOutputNet, TiedWeights, TwoInputNet

NO_CUDA = "no CUDA device: torch.cuda.is_available() is False"

# (spec, inputs, constructor kwargs)
EXAMPLES = [
    ("examples/lenet.py:LeNet5", [(1, 1, 32, 32)], {}),
    ("examples/resnet.py:ResNet18", [(1, 3, 32, 32)], {}),
    ("examples/inception.py:InceptionBlock", [(1, 192, 8, 8)], {}),
    ("examples/unet.py:UNet", [(1, 1, 32, 32)], {"base": 4}),
    ("examples/multi_io.py:TwoInputNet", [(1, 3, 32, 32), (1, 10)], {}),
    ("examples/multi_io.py:DictOutputNet", [(1, 3, 32, 32)], {}),
    ("examples/multi_io.py:TiedWeights", [(1, 64)], {}),
]


def _leaf_shapes(value: object) -> list[tuple[int, ...]]:
    """Shapes of the tensors in a (nested) model output, in pytree order."""
    leaves, _ = torch.utils._pytree.tree_flatten(value)
    return [tuple(t.shape) for t in leaves if isinstance(t, torch.Tensor)]


@pytest.mark.parametrize("spec,inputs,kwargs", EXAMPLES, ids=[e[0].split(":")[1] for e in EXAMPLES])
def test_examples_verify_without_mismatch(spec: str, inputs: list, kwargs: dict) -> None:
    report = analyze(spec, inputs, args=kwargs)
    v = verify(Request.of(spec, inputs, args=kwargs), report, repeat=1)
    assert v.ok, v.mismatches
    assert v.matched == len(report.layers) == len(v.layers)
    assert v.device == "cpu" and v.repeats == 1 and v.latency_ms > 0


@pytest.mark.parametrize("cls,inputs", [
    (LeNet5, [(1, 1, 32, 32)]),
    (TwoInputNet, [(1, 3, 32, 32), (1, 10)]),
    (DictOutputNet, [(1, 3, 32, 32)]),
    (TiedWeights, [(1, 64)]),
])
def test_real_output_shapes_are_torchs(cls: type, inputs: list) -> None:
    # the shapes the verification records for the output node are those of a plain torch forward
    model = cls().eval()
    with torch.no_grad():
        expected = _leaf_shapes(model(*[torch.randn(s) for s in inputs]))
    report = analyze(model, inputs)
    v = verify(Request.of(model, inputs), report, repeat=1)
    output = next(c for c in v.layers if c.name == "output")
    assert output.real_shapes is not None
    assert [shape for _, shape in output.real_shapes] == expected


def _lenet_report() -> tuple:
    inputs = [(1, 1, 32, 32)]
    return inputs, analyze("examples/lenet.py:LeNet5", inputs)


def test_wrong_shape_prediction_is_a_mismatch() -> None:
    inputs, report = _lenet_report()
    # features.3 is Conv2d(6, 16, 5) on 1x6x14x14: 14 - 5 + 1 = 10, so the real output is 1x16x10x10
    layers = tuple(replace(layer, output_shapes=(("", (1, 16, 11, 11)),)) if layer.name == "features.3" else layer
                   for layer in report.layers)
    v = verify(Request.of("examples/lenet.py:LeNet5", inputs), replace(report, layers=layers), repeat=1)
    assert not v.ok
    assert [c.name for c in v.mismatches] == ["features.3"]
    (bad,) = v.mismatches
    assert bad.predicted_shapes == (("", (1, 16, 11, 11)),)
    assert bad.real_shapes == (("", (1, 16, 10, 10)),)
    assert v.matched == len(report.layers) - 1


def test_wrong_dtype_and_missing_row_are_mismatches() -> None:
    inputs, report = _lenet_report()
    layers = tuple(replace(layer, dtype="float64") if layer.name == "flatten" else layer
                   for layer in report.layers if layer.name != "classifier.1")
    v = verify(Request.of("examples/lenet.py:LeNet5", inputs), replace(report, layers=layers), repeat=1)
    by_name = {c.name: c for c in v.mismatches}
    assert set(by_name) == {"flatten", "classifier.1"}
    assert by_name["flatten"].predicted_dtype == "float64" and by_name["flatten"].real_dtype == "float32"
    # classifier.1 ran for real (Tanh on 1x120) but the report has no such row
    assert by_name["classifier.1"].predicted_shapes is None
    assert by_name["classifier.1"].real_shapes == (("", (1, 120)),)


def test_bfloat16_pass_leaves_the_analysed_module_alone() -> None:
    model = LeNet5().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = analyze(model, [(1, 1, 32, 32)])
    v = verify(Request.of(model, [(1, 1, 32, 32)]), report, dtype="bfloat16", repeat=1)
    assert v.ok, v.mismatches
    assert v.dtype == "bfloat16"
    assert {c.real_dtype for c in v.layers} == {"bfloat16"}
    after = model.state_dict()
    assert all(after[k].dtype == torch.float32 and torch.equal(after[k], before[k]) for k in before)


def test_integer_inputs_stay_in_embedding_range() -> None:
    # Embedding(2, 4) accepts only the indices 0 and 1
    model = nn.Sequential(nn.Embedding(2, 4), nn.Flatten(), nn.Linear(4 * 5, 3))
    report = analyze(model, ["3,5:int64"])
    v = verify(Request.of(model, ["3,5:int64"]), report, repeat=1)
    assert v.ok, v.mismatches
    assert v.layers[0].real_dtype == "int64"


def test_module_on_meta_is_refused() -> None:
    with torch.device("meta"):
        model = LeNet5()
    report = analyze(model, [(1, 1, 32, 32)])
    with pytest.raises(ConfigError, match="meta device.*model spec"):
        verify(Request.of(model, [(1, 1, 32, 32)]), report)


def test_collapsed_report_is_refused() -> None:
    inputs, report = _lenet_report()
    with pytest.raises(ConfigError, match="uncollapsed report"):
        verify(Request.of("examples/lenet.py:LeNet5", inputs), report.collapse(1))


def test_device_names() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="not a device name"):
        resolve_device("gpu0")
    with pytest.raises(ConfigError, match="runs on cpu, cuda"):
        resolve_device("meta")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak RSS reset needs Linux /proc")
def test_cpu_peak_memory_covers_a_large_activation() -> None:
    # The output alone is 64 channels x 512 x 512 x 4 bytes = 64 MiB; the conv allocates nothing
    # else that outlives it, so the peak of live tensor storage is exactly that.
    model = nn.Conv2d(3, 64, 3, padding=1)
    report = analyze(model, [(1, 3, 512, 512)])
    v = verify(Request.of(model, [(1, 3, 512, 512)]), report, repeat=1)
    assert v.ok
    assert v.peak_bytes == 64 * 512 * 512 * 4
    assert "tensor storages" in v.memory_method


# --- the console path


def _run(args: list[str]) -> object:
    return CliRunner().invoke(app, args)


def test_cli_verify_passes() -> None:
    result = _run(["summary", "examples/lenet.py:LeNet5", "--input", "1,1,32,32", "--verify", "--repeat", "2"])
    assert result.exit_code == 0, result.output
    # LeNet5 rows: input, 6 feature layers, flatten, 5 classifier layers, output = 14
    assert "verified: 14/14 layers match on cpu" in result.output
    assert "latency:" in result.output and "median of 2 runs" in result.output


def test_cli_json_has_verification_only_with_verify() -> None:
    base = ["summary", "examples/lenet.py:LeNet5", "--input", "1,1,32,32", "-f", "json"]
    plain = _run(base)
    assert plain.exit_code == 0 and "verification" not in json.loads(plain.output)
    verified = _run(base + ["--verify", "--repeat", "1"])
    assert verified.exit_code == 0, verified.output
    section = json.loads(verified.output)["verification"]
    assert section["ok"] is True and section["device"] == "cpu"
    assert section["layers_checked"] == section["layers_matched"] == 14
    assert {c["name"]: c["real_shape"] for c in section["layers"]}["features.3"] == [1, 16, 10, 10]


def test_cli_mismatch_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    real_analyze = cnnshape.api.analyze

    def wrong(*args: object, **kwargs: object) -> object:
        report = real_analyze(*args, **kwargs)
        layers = tuple(replace(layer, output_shapes=(("", (1, 16, 11, 11)),)) if layer.name == "features.3"
                       else layer for layer in report.layers)
        return replace(report, layers=layers)

    monkeypatch.setattr(cnnshape.api, "analyze", wrong)
    result = _run(["summary", "examples/lenet.py:LeNet5", "--input", "1,1,32,32", "--verify", "--repeat", "1"])
    assert result.exit_code == 1, result.output
    assert "verified: 13/14 layers match on cpu; 1 mismatch(es):" in result.output
    assert "mismatch features.3: predicted 1x16x11x11 float32, real 1x16x10x10 float32" in result.output
    assert "Traceback" not in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available, so --device cuda is not an error here")
def test_cli_cuda_without_gpu_is_exit_2() -> None:
    result = _run(["summary", "examples/lenet.py:LeNet5", "--input", "1,1,32,32", "--verify", "--device", "cuda"])
    assert result.exit_code == 2
    assert "error: --device cuda: CUDA is not available" in result.output
    assert "Traceback" not in result.output


def test_cli_bad_repeat_is_exit_2() -> None:
    result = _run(["summary", "examples/lenet.py:LeNet5", "--verify", "--repeat", "0"])
    assert result.exit_code == 2
    assert "--repeat" in result.output and "Traceback" not in result.output


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
@pytest.mark.parametrize("dtype", [None, "float16"])
def test_gpu_verification(dtype: str | None) -> None:
    inputs = [(1, 3, 64, 64)]
    report = analyze("examples/resnet.py:ResNet18", inputs)
    v = verify(Request.of("examples/resnet.py:ResNet18", inputs), report, device="cuda", dtype=dtype, repeat=3)
    assert v.ok, v.mismatches
    assert v.device.startswith("cuda:")
    # conv1 (64 channels, stride 2) writes 64 x 32 x 32 elements during the pass
    itemsize = 2 if dtype else 4
    assert v.peak_bytes is not None and v.peak_bytes >= 64 * 32 * 32 * itemsize


def test_cli_real_pass_failure_is_exit_2(tmp_path: object) -> None:
    # meta tensors do not check embedding indices; the real pass feeds index 1 to a 1-row table
    path = tmp_path / "embnet.py"  # type: ignore[operator]
    path.write_text(
        "from torch import nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.emb = nn.Embedding(1, 4)\n"
        "    def forward(self, x):\n"
        "        return self.emb(x)\n"
    )
    result = _run(["summary", f"{path}:Net", "--input", "64,3:int64", "--verify", "--repeat", "1"])
    assert result.exit_code == 2
    assert "error: the verification pass on cpu failed: Embedding 'emb'" in result.output
    assert "index out of range" in result.output and "Traceback" not in result.output
