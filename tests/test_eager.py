"""The eager tracer: untraceable models, equality with the fx tracer, diagnostics, warnings, CLI."""
from __future__ import annotations

import dataclasses
import json
import re
from typing import NamedTuple

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from typer.testing import CliRunner

from cnnshape.api import analyze
from cnnshape.cli import app
from cnnshape.errors import ConfigError, InputError, ShapeError, TraceError
from cnnshape.inputs import InputSpec
from cnnshape.trace.tracers import trace
from examples import lenet, multi_io, resnet, untraceable
from tests import broken_models as broken

UNTRACEABLE = sorted(untraceable.CASES)


@pytest.mark.parametrize("name", UNTRACEABLE)
def test_fx_cannot_trace_the_untraceable_examples(name: str) -> None:
    shape = untraceable.CASES[name][0]
    with pytest.raises(TraceError, match=rf"torch.fx cannot trace {name} \(at .*untraceable.py:\d+"):
        trace(getattr(untraceable, name)(), (InputSpec(shape),), "fx")


@pytest.mark.parametrize("name", UNTRACEABLE)
def test_auto_falls_back_to_eager(name: str) -> None:
    shape, outputs, params = untraceable.CASES[name]
    model = getattr(untraceable, name)()
    report = analyze(model, [shape])
    assert report.tracer == "eager"
    assert any(n.startswith("traced with the eager tracer: torch.fx cannot trace") for n in report.notes)
    assert report.totals.params == params  # docstring arithmetic
    assert {o.key: o.shape for o in report.outputs} == outputs
    # torch itself: a real CPU forward gives the same output shapes
    real = model(torch.randn(shape))
    real = real if isinstance(real, dict) else {"": real}
    assert {f"['{k}']" if k else k: tuple(v.shape) for k, v in real.items()} == outputs


def _macs_by_flop_counter(model: nn.Module, shapes: list[tuple[int, ...]]) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(*[torch.randn(s) for s in shapes])
    return counter.get_total_flops() // 2  # FlopCounterMode counts a multiply-add as 2 FLOPs


@pytest.mark.parametrize("name", UNTRACEABLE)
def test_eager_macs_equal_flop_counter(name: str) -> None:
    shape = untraceable.CASES[name][0]
    model = getattr(untraceable, name)()
    assert analyze(model, [shape], tracer="eager").totals.macs == _macs_by_flop_counter(model, [shape])


FX_TRACEABLE = [
    ("examples/lenet.py:LeNet5", ["1,1,32,32"]),
    ("examples/alexnet.py:AlexNet", ["1,3,96,96"]),
    ("examples/vgg.py:VGG16", ["1,3,32,32"]),
    ("examples/resnet.py:ResNet50", ["1,3,64,64"]),
    ("examples/mobilenet.py:MobileNetV2", ["1,3,64,64"]),
    ("examples/unet.py:UNet", ["1,1,32,32"]),
    ("examples/inception.py:InceptionNet", ["1,3,32,32"]),
    ("examples/conv3d.py:C3DSmall", ["1,3,16,32,32"]),
    ("examples/decoder.py:TransposedDecoder", ["1,100,1,1"]),
    ("examples/dilated.py:DilatedStack", ["1,3,32,32"]),
    ("examples/dilated.py:DilatedConv1dStack", ["1,1,2048"]),
    ("examples/densenet.py:DenseNet", ["1,3,32,32"]),
    ("examples/senet.py:SENet", ["1,3,32,32"]),
    ("examples/textbook.py:DepthwiseSeparable", ["1,8,32,32"]),
    ("examples/textbook.py:Conv7Pool3", ["1,3,64,64"]),
    ("examples/multi_io.py:TwoInputNet", ["1,3,32,32", "1,10"]),
    ("examples/multi_io.py:DictOutputNet", ["1,3,32,32"]),
    ("examples/multi_io.py:TiedWeights", ["1,64"]),
]


@pytest.mark.parametrize("spec,inputs", FX_TRACEABLE, ids=[s for s, _ in FX_TRACEABLE])
def test_eager_equals_fx(spec: str, inputs: list[str]) -> None:
    fx_report = analyze(spec, inputs, tracer="fx")
    eager_report = analyze(spec, inputs, tracer="eager")
    assert (fx_report.tracer, eager_report.tracer) == ("fx", "eager")
    assert len(fx_report.layers) == len(eager_report.layers)
    for a, b in zip(fx_report.layers, eager_report.layers):
        if a.activation_bytes != b.activation_bytes:
            # fx records `out += identity` as out-of-place `operator.add`; eager sees the real
            # in-place add_, which allocates nothing
            assert "+=" in (b.source or "") and b.activation_bytes == 0, (a, b)
            b = dataclasses.replace(b, activation_bytes=a.activation_bytes)
        assert a == b
    assert fx_report.edges == eager_report.edges
    assert fx_report.outputs == eager_report.outputs
    assert fx_report.totals.macs == eager_report.totals.macs
    assert fx_report.totals.params == eager_report.totals.params


@pytest.mark.parametrize("model,shapes", [
    (lenet.LeNet5(), [(1, 1, 32, 32)]),
    (resnet.ResNet18(), [(1, 3, 32, 32)]),
    (multi_io.TwoInputNet(), [(1, 3, 32, 32), (1, 10)]),
    (multi_io.TiedWeights(), [(1, 64)]),
])
def test_eager_macs_equal_flop_counter_on_examples(model: nn.Module, shapes: list[tuple[int, ...]]) -> None:
    assert analyze(model, shapes, tracer="eager").totals.macs == _macs_by_flop_counter(model, shapes)


@dataclasses.dataclass
class Heads:
    logits: torch.Tensor
    features: torch.Tensor


class Pair(NamedTuple):
    first: torch.Tensor
    rest: list


class Structured(nn.Module):
    """forward(x, y=None, *, scale): shared fc, optional second input, dataclass output."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, *, scale: float = 2.0) -> Heads:
        f = self.fc(x) * scale
        if y is not None:
            f = f + self.fc(y)
        return Heads(f, x)


class NamedOut(Structured):
    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, *, scale: float = 2.0) -> Pair:  # type: ignore[override]
        return Pair(self.fc(x), [self.fc(y), x])


@pytest.mark.parametrize("tracer", ["fx", "eager"])
def test_optional_inputs_shared_module_and_dataclass_output(tracer: str) -> None:
    one = analyze(Structured(), [(2, 4)], tracer=tracer)
    assert [n.name for n in one.layers if n.kind == "module"] == ["fc"]
    two = analyze(Structured(), [(2, 4), (2, 4)], tracer=tracer)
    assert [n.name for n in two.layers if n.kind == "module"] == ["fc", "fc#2"]
    assert {o.key: o.shape for o in two.outputs} == {".logits": (2, 3), ".features": (2, 4)}
    assert two.totals.params == 4 * 3 + 3  # counted once although called twice
    assert two.totals.macs == 2 * 2 * 4 * 3  # two calls, batch 2, 4 -> 3
    named = analyze(NamedOut(), [(2, 4), (5, 4)], tracer=tracer)
    assert {o.key: o.shape for o in named.outputs} == {".first": (2, 3), ".rest[0]": (5, 3), ".rest[1]": (2, 4)}


def test_eager_checks_the_number_of_inputs() -> None:
    with pytest.raises(InputError, match=r"Structured.forward\(x, y\) takes 1 to 2 tensor input\(s\) but 3"):
        analyze(Structured(), [(2, 4)] * 3, tracer="eager")


@pytest.mark.parametrize("tracer", ["fx", "eager"])
@pytest.mark.parametrize("leaf", ["BasicBlock", "examples.resnet.BasicBlock"])
def test_leaf_by_bare_or_dotted_name(tracer: str, leaf: str) -> None:
    report = analyze("examples/resnet.py:ResNet18", ["1,3,32,32"], tracer=tracer, leaves=[leaf])
    blocks = [r.name for r in report.layers if r.type == "BasicBlock"]
    assert blocks == [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)]  # ResNet-18: 4 stages x 2
    assert not any(r.name.startswith("layer1.0.") for r in report.layers)


def test_unknown_bare_leaf_name() -> None:
    with pytest.raises(ConfigError, match=r"leaves 'Nope': the model has no submodule of that class.*Bottleneck"):
        analyze("examples/resnet.py:ResNet50", ["1,3,32,32"], leaves=["Nope"])


BROKEN = [
    # name, input, expected message parts: layer, both sizes, the user's source line
    ("WrongInFeatures", (1, 1, 32, 32),
     [r"Linear 'fc' expects in_features=1568", r"1x800", r"set in_features=800",
      r"broken_models.py:21: return self.fc\(x\)"]),
    ("WrongInChannels", (1, 3, 8, 8),
     [r"Conv2d 'conv2' expects 8 input channels but receives 16 \(from 'conv1'",
      r"broken_models.py:33: return self.conv2\(self.conv1\(x\)\)"]),
    ("TooSmall", (1, 3, 4, 4),
     [r"MaxPool2d 'features.2' receives 1x8x1x1", r"size 1", r"= 0", r"needs at least 2",
      r"broken_models.py:44: return self.features\(x\)"]),
]


@pytest.mark.parametrize("tracer", ["fx", "eager"])
@pytest.mark.parametrize("name,shape,parts", BROKEN, ids=[b[0] for b in BROKEN])
def test_diagnostics(tracer: str, name: str, shape: tuple[int, ...], parts: list[str]) -> None:
    with pytest.raises(ShapeError) as info:
        analyze(getattr(broken, name)(), [shape], tracer=tracer)
    for part in parts:
        assert re.search(part, str(info.value)), (part, str(info.value))


class FailingAssert(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1] == 3, "needs RGB"
        return x


def test_eager_reports_the_users_failing_line() -> None:
    with pytest.raises(ShapeError, match=r"FailingAssert.forward failed: AssertionError: needs RGB\n"
                                         r"    at .*test_eager.py:\d+: assert x.shape\[1\] == 3"):
        analyze(FailingAssert(), [(1, 1, 4, 4)], tracer="eager")


@pytest.mark.parametrize("tracer", ["fx", "eager"])
def test_batch_changing_view_warning(tracer: str) -> None:
    # conv 3->16, k5 s3 on 32: (32 - 5) // 3 + 1 = 10, so 16*10*10 = 1600 values per sample;
    # view(-1, 400) turns the batch of 1 into 1600 / 400 = 4
    report = analyze(broken.BatchChangingView(), [(1, 3, 32, 32)], tracer=tracer)
    view, out = report.warnings
    assert "broken_models.py:57: x = x.view(-1, 400)" in view
    assert "batch size from 1 to 4" in view and "view(-1, 1600)" in view
    assert "the output has batch size 4" in out and "batch size 1" in out


def test_no_batch_warning_for_a_correct_model() -> None:
    assert analyze("examples/lenet.py:LeNet5", ["2,1,32,32"], tracer="eager").warnings == ()


def test_cli_tracer_eager_and_json() -> None:
    result = CliRunner().invoke(app, ["summary", "examples/untraceable.py:OddPad", "-i", "1,3,31,31",
                                      "--tracer", "eager", "-f", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["tracer"] == "eager"
    assert [o["shape"] for o in data["outputs"]] == [[1, 8, 16, 16]]  # (32 + 2 - 3) // 2 + 1 = 16


def test_cli_auto_note() -> None:
    result = CliRunner().invoke(app, ["summary", "examples/untraceable.py:ShapeAssert", "-i", "1,3,16,16"])
    assert result.exit_code == 0, result.output
    assert "Note: traced with the eager tracer: torch.fx cannot trace ShapeAssert" in result.output


def test_cli_shape_error_and_traceback() -> None:
    args = ["summary", "tests/broken_models.py:WrongInFeatures", "-i", "1,1,32,32", "--tracer", "eager"]
    plain = CliRunner().invoke(app, args)
    assert plain.exit_code == 2
    assert "error: Linear 'fc' expects in_features=1568" in plain.stderr
    assert "Traceback" not in plain.output
    verbose = CliRunner().invoke(app, args + ["--traceback"])
    assert verbose.exit_code == 2
    assert "Traceback (most recent call last)" in verbose.stderr


class _KeywordOnly(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor, *, scale: torch.Tensor | None = None) -> torch.Tensor:
        y = self.conv(x)
        return y if scale is None else y * scale


@pytest.mark.parametrize("tracer", ["fx", "eager"])
def test_keyword_only_argument_keeps_its_default(tracer: str) -> None:
    # --input values are positional: `scale` stays None, so the output is the conv's,
    # 8 − 3 + 1 = 6 per side; a second --input has no positional parameter to go to.
    report = analyze(_KeywordOnly(), [(1, 3, 8, 8)], tracer=tracer)
    assert report.outputs[0].shape == (1, 4, 6, 6)
    with pytest.raises(InputError, match=r"takes 1 tensor input\(s\) but 2"):
        analyze(_KeywordOnly(), [(1, 3, 8, 8), (1, 4, 6, 6)], tracer=tracer)
