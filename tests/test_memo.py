"""The fx tracer's table of repeated layer calls and joins (trace/memo.py) gives what the recorder gives.

The suite runs with ``CNNSHAPE_CROSS_CHECK=1``, which turns the table off (every layer call is then
checked against torch's own forward), so these tests compare the two paths explicitly: whole traces
made with the table against traces made the checked way, and single layer calls and joins,
answered first by running and then from the table, against the recorder's record of the same call.
"""
from __future__ import annotations

import importlib.util
import operator
import random
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from cnnshape.inputs import normalise_inputs
from cnnshape.load import load_model
from cnnshape.pipeline import on_meta
from cnnshape.trace import layers
from cnnshape.trace.fx import trace_fx
from cnnshape.trace.memo import JOINS, LeafMemo, SharedTable, plan_key, shared_across_traces
from cnnshape.trace.meta import OpRecorder, make_inputs

from .cases import EXAMPLES, Example

ROOT = Path(__file__).resolve().parent.parent


def _module(path: str, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _traces(model: nn.Module, inputs: object, blocks: bool | None = None) -> tuple[tuple, tuple]:
    """(nodes with the table, nodes the checked way: the recorder, and torch's forward beside it),
    the model prepared as the pipeline prepares it (meta copies, eval mode). ``blocks``: whether the
    fast trace also copies repeated blocks (trace/blocks.py; by default it does, as users get it)."""
    tensors = make_inputs(normalise_inputs(inputs))
    with on_meta(model):
        return trace_fx(model, tensors, (), False, blocks).nodes, trace_fx(model, tensors, (), True).nodes


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the calls the table answers (so a test cannot pass with the table never used)."""
    hits = [0]
    original = LeafMemo.run

    def run(self: LeafMemo, args: tuple[Any, ...], plan: Any) -> Any:
        before = len(self._table)
        keyed = plan_key(plan, self._recorder.state)
        result = original(self, args, plan)
        if keyed is not None and len(self._table) == before and keyed[0] in self._table:
            hits[0] += 1
        return result

    monkeypatch.setattr(LeafMemo, "run", run)
    return hits


@pytest.mark.parametrize("spec, inputs, least_hits", [
    # 4 blocks of (conv, bn, relu, conv, bn, +, relu): all but the first conv, bn and relu from the table
    ("benchmarks/depth_models.py:residual", "1,3,16,16", 4 * 6 - 3),
    ("benchmarks/depth_models.py:chain", "2,3,8,8", 4 * 3 - 3),  # 4 x (conv, bn, relu)
    ("examples/resnet.py:ResNet18", "1,3,64,64", 10),
    ("examples/mobilenet.py:MobileNetV2", "1,3,64,64", 10),
    ("examples/densenet.py:DenseNet", "1,3,32,32", 10),
    ("examples/inception.py:InceptionNet", "1,3,32,32", 1),
    ("examples/dilated.py:DilatedConv1dStack", "1,1,1600", 1),
])
def test_traces_with_the_table_equal_checked_traces(spec: str, inputs: str, least_hits: int,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    args = {"blocks": 4} if spec.startswith("benchmarks/") else {}
    model = load_model(spec, args).module
    hits = _counting(monkeypatch)
    fast, checked = _traces(model, inputs, blocks=False)  # (copied blocks make no layer calls to count)
    assert hits[0] >= least_hits
    assert fast == checked


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.spec.rpartition(":")[2])
def test_every_example_with_the_table_equals_its_checked_trace(example: Example) -> None:
    """The suite runs cross-checked (tests/conftest.py), which turns the table off: every example's
    trace as a user gets it (the table on) must be the checked one."""
    model = load_model(example.spec).module
    fast, checked = _traces(model, example.inputs)
    assert fast == checked


def test_nas201_networks_with_the_table_equal_checked_traces(monkeypatch: pytest.MonkeyPatch) -> None:
    nas = _module("examples/nas201.py", "_nas201_for_memo")
    hits = _counting(monkeypatch)
    rng = random.Random(0)
    archs = list(nas.all_archs())
    for arch in rng.sample(archs, 2):
        with torch.device("meta"):
            model = nas.NAS201Network(arch)
        fast, checked = _traces(model, "1,3,32,32", blocks=False)
        assert fast == checked, arch
    assert hits[0] > 0


def test_traces_sharing_one_table_equal_checked_traces(monkeypatch: pytest.MonkeyPatch) -> None:
    """A scan worker's table, shared by the traces of different models one after the other (and
    again in float64 as torch's default dtype): each trace is its checked trace. The second NAS-201
    network's convolutions, norms and ReLUs come from the first's entries: every one of its layer
    calls is answered (cells copied, blocks=False: each layer call counts)."""
    nas = _module("examples/nas201.py", "_nas201_for_shared")
    table = SharedTable()
    hits = _counting(monkeypatch)
    models = []
    for arch in ("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
                 "|nor_conv_1x1~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|avg_pool_3x3~0|skip_connect~1|none~2|"):
        with torch.device("meta"):
            models.append((nas.NAS201Network(arch), "1,3,32,32"))
    models += [(load_model(spec).module, inputs) for spec, inputs in
               (("examples/resnet.py:ResNet18", "1,3,64,64"), ("examples/mobilenet.py:MobileNetV2", "1,3,64,64"))]
    calls = _layer_calls(monkeypatch)
    answered = []
    with shared_across_traces(table):
        for model, inputs in models:
            before = hits[0], calls[0]
            fast, checked = _traces(model, inputs, blocks=False)
            assert fast == checked
            answered.append((hits[0] - before[0], calls[0] - before[1]))
        assert answered[1][0] == answered[1][1] > 0  # the second network: every layer call from the table
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)  # the same layers' keys, another default: no stale answer
        try:
            model, inputs = models[2]
            fast, checked = _traces(model, inputs, blocks=False)
        finally:
            torch.set_default_dtype(previous)
        assert fast == checked
    assert 0 < len(table) <= table.limit


def _layer_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the layer calls that reach the table (answered or not)."""
    calls = [0]
    counted = LeafMemo.run

    def run(self: LeafMemo, args: tuple[Any, ...], plan: Any) -> Any:
        calls[0] += plan_key(plan) is not None
        return counted(self, args, plan)

    monkeypatch.setattr(LeafMemo, "run", run)
    return calls


def test_the_shared_table_keeps_the_most_recently_used() -> None:
    table = SharedTable(limit=3)
    for key in "abc":
        table[key] = ((), "input")
    assert table.get("a") is not None  # now the most recent: "b" is the least
    table["d"] = ((), "input")
    assert len(table) == 3 and "b" not in table and all(k in table for k in "acd")


class AddsABufferThenAnActivation(nn.Module):
    """``x + self.offset`` then ``x + y``: two joins whose tensors look alike (same layouts, distinct
    storages); only the first adds the model's own tensor, which its recorded call marks."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("offset", torch.zeros(1, 4, 6, 6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * 2.0
        return (x + self.offset) + (x + y)


def test_the_table_tells_the_models_tensors_from_activations() -> None:
    """The checked trace marks the buffer in the first join's call and nothing in the second's; the
    table must not answer the second join from the first (their keys differ by that alone)."""
    fast, checked = _traces(AddsABufferThenAnActivation(), "1,4,6,6", blocks=False)
    assert fast == checked
    adds = [n for n in checked if n.type == "add"]
    assert [call.state for n in adds for call in n.ops] == [(1,), (), ()]  # x + offset, x + y, the sum


# -- single layer calls --------------------------------------------------------------------------

def _layer(rng: random.Random) -> tuple[nn.Module, tuple[int, ...]]:
    """A random torch.nn layer that layers.plan handles, and an input shape for it."""
    c = rng.choice([1, 3, 8])
    size = rng.randrange(5, 12)
    kind = rng.choice(["conv", "convt", "bn", "relu", "relu6", "maxpool", "avgpool", "adaptive", "flatten",
                       "linear", "identity"])
    if kind == "conv":
        groups = rng.choice([1, c])
        layer: nn.Module = nn.Conv2d(c, c * rng.choice([1, 2]), rng.choice([1, 3]), stride=rng.choice([1, 2]),
                                     padding=rng.choice([0, 1]), dilation=rng.choice([1, 2]), groups=groups,
                                     bias=rng.random() < 0.5)
    elif kind == "convt":
        layer = nn.ConvTranspose2d(c, 4, 3, stride=2, padding=1, output_padding=rng.choice([0, 1]))
    elif kind == "bn":
        layer = nn.BatchNorm2d(c, momentum=rng.choice([0.1, None]))
    elif kind in ("relu", "relu6"):
        layer = (nn.ReLU if kind == "relu" else nn.ReLU6)(inplace=rng.random() < 0.5)
    elif kind == "maxpool":
        layer = nn.MaxPool2d(rng.choice([2, 3]), stride=rng.choice([None, 1, 2]), padding=1,
                             ceil_mode=rng.random() < 0.5)
    elif kind == "avgpool":
        layer = nn.AvgPool2d(2, count_include_pad=rng.random() < 0.5)
    elif kind == "adaptive":
        layer = nn.AdaptiveAvgPool2d(rng.choice([1, 2, (3, None)]))
    elif kind == "flatten":
        layer = nn.Flatten()
    elif kind == "linear":
        return nn.Linear(size, 5), (2, size)
    else:
        layer = nn.Identity()
    return layer, (rng.choice([1, 2]), c, size, size)


def _recorded(plan: Any, x: torch.Tensor, use: LeafMemo | None, recorder: OpRecorder) -> tuple[tuple, Any]:
    result = use.run((x,), plan) if use is not None else layers.run((x,), plan)
    return recorder.take(), result


def _layout(t: torch.Tensor) -> tuple[Any, ...]:
    return (type(t), t.shape, t.stride(), t.dtype, t.device, t.storage_offset(), t.untyped_storage().nbytes(),
            t.requires_grad)


@pytest.mark.parametrize("seed", range(60))
def test_a_layer_call_from_the_table_is_the_recorded_call(seed: int) -> None:
    """Recorded calls and output (layout, and identity with the input or a storage of its own) are
    the same run by the recorder, run through the table the first time, and answered from it."""
    rng = random.Random(seed)
    with torch.device("meta"):
        layer, shape = _layer(rng)
    layer.eval()
    x = torch.empty(shape, device="meta")
    if rng.random() < 0.3 and x.dim() == 4 and not isinstance(layer, nn.Flatten):  # Flatten: contiguous only
        x = x.contiguous(memory_format=torch.channels_last)
    plan = layers.plan(layer, (x,), {})
    assert plan is not None
    recorder = OpRecorder()
    memo = LeafMemo(recorder)
    with torch.no_grad(), recorder:
        expected, out = _recorded(plan, x, None, recorder)
        first, out1 = _recorded(plan, x, memo, recorder)
        again, out2 = _recorded(plan, x, memo, recorder)
        theirs = layer(x)  # torch's own forward, for the output's layout
        recorder.take()
    assert expected == first == again
    assert _layout(out) == _layout(out1) == _layout(out2) == _layout(theirs)
    storage = {id(t): t.untyped_storage()._cdata for t in (x, out, out1, out2)}
    for result in (out1, out2):  # the input itself, a view of it, or a new tensor, as the recorder's
        assert (result is x) == (out is x)
        assert (storage[id(result)] == storage[id(x)]) == (storage[id(out)] == storage[id(x)])
    if storage[id(out)] != storage[id(x)]:  # a new tensor each time
        assert len({storage[id(out)], storage[id(out1)], storage[id(out2)]}) == 3


def test_the_key_tells_apart_what_the_calls_depend_on() -> None:
    x = torch.empty(1, 3, 4, 4, device="meta")
    w = torch.empty(3, 3, 1, 1, device="meta")

    def key(*args: Any) -> Any:
        keyed = plan_key(([(torch.ops.aten.convolution.default, args, {})], None))
        return keyed[0] if keyed is not None else None

    base = (x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)
    assert key(*base) == key(torch.empty(1, 3, 4, 4, device="meta"), *base[1:])  # another tensor, alike
    assert key(*base[:6], 0, *base[7:]) != key(*base)  # False and 0 are equal in Python, not here
    assert key(*base[:8], 1.0) != key(*base) and key(*base[:8], True) != key(*base)
    assert key(x.contiguous(memory_format=torch.channels_last), *base[1:]) != key(*base)  # strides
    assert key(x.double(), *base[1:]) != key(*base)  # dtype
    assert key(x, x, *base[2:]) != key(*base)  # two arguments on one storage
    assert key(torch.empty(1, 3, 4, 4), *base[1:]) is None  # real values: never from a table
    assert key(x.to(torch.int64), *base[1:]) is None


def test_no_table_with_grad_on_or_while_cross_checking() -> None:
    with torch.device("meta"):
        layer = nn.Conv2d(3, 3, 3)
    x = torch.empty(1, 3, 8, 8, device="meta")
    plan = layers.plan(layer, (x,), {})
    for recorder, grad in ((OpRecorder(cross_check=True), False), (OpRecorder(), True)):
        memo = LeafMemo(recorder)
        with torch.set_grad_enabled(grad), recorder:
            memo.run((x,), plan)
            memo.run((x,), plan)
        assert not memo._table


def _join(rng: random.Random) -> tuple[Any, tuple[Any, ...]]:
    """A random join (memo.JOINS) and its arguments: broadcasts, scalars, dtypes, layouts, in place."""
    shape = (rng.choice([1, 2]), rng.choice([1, 3]), rng.choice([1, 4]), 4)
    dtype = rng.choice([torch.float32, torch.float32, torch.float16, torch.float64])
    a = torch.empty(shape, device="meta", dtype=dtype)
    if rng.random() < 0.3:
        a = a.contiguous(memory_format=torch.channels_last)
    other = rng.choice([
        torch.empty(shape, device="meta", dtype=dtype),
        torch.empty(shape[-2:], device="meta", dtype=dtype),                  # broadcast
        torch.empty(shape, device="meta", dtype=rng.choice([torch.float32, torch.float16])),  # promotion
        rng.choice([2, 0.5, True]),                                             # a Python scalar
    ])
    target = rng.choice(sorted(JOINS, key=str))
    if target is torch.cat:
        return target, ([a, torch.empty(shape, device="meta", dtype=dtype)], rng.choice([0, 1, -1]))
    if target is operator.iadd:  # in place: the first argument's shape and dtype must hold the result
        return target, (a, torch.empty(shape[-1:], device="meta", dtype=dtype))
    return target, (a, other)


@pytest.mark.parametrize("seed", range(40))
def test_a_join_from_the_table_is_the_recorded_join(seed: int) -> None:
    rng = random.Random(seed)
    target, args = _join(rng)
    plan = ([(target, args, {})], None)
    recorder = OpRecorder()
    memo = LeafMemo(recorder)
    with torch.no_grad(), recorder:
        out = target(*args)
        expected = recorder.take()
        first, out1 = _recorded(plan, args[0], memo, recorder)
        again, out2 = _recorded(plan, args[0], memo, recorder)
    assert expected and expected == first == again
    assert _layout(out) == _layout(out1) == _layout(out2)
    assert (out1 is args[0]) == (out2 is args[0]) == (target is operator.iadd)
    assert len(memo._table) == 1
