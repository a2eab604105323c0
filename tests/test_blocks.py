"""A repeated block traced once and copied (trace/blocks.py, trace/block_records.py) gives the trace
the usual path gives.

The suite runs cross-checked, which turns copies off, so each test here compares explicitly: the
trace as users get it (copies on) against the checked trace (every layer call checked against
torch's own forward, every block traced through). The models are built to reach each guard: a block
met again at another resolution, blocks returning tuples or views or their input, a block that
caches a tensor on itself, shared modules, hooks, parameters read directly, nested blocks, a module
called twice, blocks told apart only by a flag or a constant argument. Each test also counts what the
copies did, so that it cannot pass with copies never made.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest
import torch
from torch import nn

from cnnshape.inputs import normalise_inputs
from cnnshape.load import load_model
from cnnshape.pipeline import on_meta
from cnnshape.trace import block_records
from cnnshape.trace.blocks import Keys, NotKeyable, module_key
from cnnshape.trace.fx import trace_fx
from cnnshape.trace.meta import make_inputs

from .cases import EXAMPLES, Example


class Block(nn.Module):
    def __init__(self, c: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.act = nn.ReLU(inplace=True)  # called twice: fx numbers the second call's stack entry
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn1(self.conv1(x)))
        return self.act(self.bn2(self.conv2(y)) + x)


class TwoResolutions(nn.Module):
    """The same block at 16x16 and, after a pool, at 8x8: one key for fx, two for the records."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.high = nn.Sequential(Block(8), Block(8), Block(8))
        self.pool = nn.MaxPool2d(2)
        self.low = nn.Sequential(Block(8), Block(8))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.low(self.pool(self.high(self.stem(x)))))


class Pair(nn.Module):
    """Returns a tuple: copied as nodes, not as one node."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.conv(x)
        return y, x * 2


class Pairs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Pair(4) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = x
        for block in self.blocks:
            x, side = block(x)
            total = total + side
        return x + total


class Caching(nn.Module):
    """Keeps a tensor on itself: its state after a call is not its state before, so never copied."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.last = self.conv(x)
        return self.last.relu()


class CachingNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(Caching(4) for _ in range(3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.blocks(x)
        return y + self.blocks[1].last  # read after its block ran


class Shared(nn.Module):
    """Three blocks, two of which share one convolution (registered at two paths)."""

    def __init__(self) -> None:
        super().__init__()
        blocks = [Block(4) for _ in range(3)]
        blocks[2].conv2 = blocks[1].conv2
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class LayerScale(nn.Module):
    """Reads its own parameter: a ``get_attr`` node, so copied as nodes."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.gamma = nn.Parameter(torch.ones(c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gamma * self.conv(x)


class InPlace(nn.Module):
    """Returns its input, changed in place."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.relu_()


class Flagged(nn.Module):
    def __init__(self, c: int, skip: bool, scale: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 1)
        self.skip = skip
        self.scale = scale

    def forward(self, x: torch.Tensor, times: int = 1) -> torch.Tensor:
        y = self.conv(x) * self.scale
        for _ in range(times):
            y = y + 1
        return y + x if self.skip else y


class Viewing(nn.Module):
    """Returns a view of a tensor it made (and a size it read)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y.view(y.size(0), y.size(1), -1).view(x.shape)


class Stage(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(Block(c), Block(c))
        self.extra = LayerScale(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.extra(self.blocks(x))


class Mixed(nn.Module):
    """Every kind of block above, some nested, called with flags and constants."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.stages = nn.Sequential(Stage(4), Stage(4), Stage(4))
        self.scaled = nn.ModuleList(LayerScale(4) for _ in range(3))
        self.inplace = nn.ModuleList(InPlace() for _ in range(3))
        self.flagged = nn.ModuleList([Flagged(4, True, 1.0), Flagged(4, True, 1.0), Flagged(4, False, 1.0),
                                      Flagged(4, True, 2.0), Flagged(4, True, 1)])
        self.viewing = nn.Sequential(Viewing(4), Viewing(4), Viewing(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        for block in self.scaled:
            x = block(x)
        for block in self.inplace:
            x = block(x)
        for i, block in enumerate(self.flagged):
            x = block(x, 2 if i == 1 else 1)
        return self.viewing(x)


def _counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many copies were answered from records, and how many run node by node."""
    counts = {"answered": 0, "run": 0}
    emit, expand = block_records.RecordBlocks._emit, block_records.RecordBlocks._expand

    def counting_emit(self: Any, copy: Any, kept: Any) -> Any:
        counts["answered"] += 1
        return emit(self, copy, kept)

    def counting_expand(self: Any, copy: Any, watch: bool) -> Any:
        counts["run"] += 1
        return expand(self, copy, watch)

    monkeypatch.setattr(block_records.RecordBlocks, "_emit", counting_emit)
    monkeypatch.setattr(block_records.RecordBlocks, "_expand", counting_expand)
    return counts


def _both(model: nn.Module, inputs: str) -> tuple[Any, Any]:
    """(the trace with copies, the checked trace), the model prepared as the pipeline does."""
    tensors = make_inputs(normalise_inputs(inputs))
    with on_meta(model):
        return trace_fx(model, tensors, (), False), trace_fx(model, tensors, (), True)


@pytest.mark.parametrize("model, inputs, answered, run", [
    # high.1 and high.2 from high.0; low.0 is at 8x8: run node by node, and kept for low.1
    (TwoResolutions, "1,3,16,16", 3, 1),
    (Pairs, "1,4,6,6", 0, 0),  # copied as nodes (a tuple): the meta run runs them
    (CachingNet, "1,4,6,6", 0, 0),  # never copied
    (Shared, "1,4,6,6", 0, 0),  # blocks.1 and blocks.2 share a conv; blocks.0 has no twin left
    # stages.1 and .2 copy stages.0 (as nodes: LayerScale reads gamma), their Blocks are copies of
    # stages.0.blocks.0 as one node each (4 answered; stages.0.blocks.1 too: 5); viewing: returns a view
    (Mixed, "2,3,8,8", 5, 2),
])
def test_copies_give_the_checked_trace(model: type[nn.Module], inputs: str, answered: int, run: int,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    counts = _counted(monkeypatch)
    with torch.device("meta"):
        built = model()
    fast, checked = _both(built, inputs)
    assert fast == checked
    assert counts == {"answered": answered, "run": run}


def test_copied_as_nodes_when_the_block_returns_several_values() -> None:
    from cnnshape.trace.fx import _Tracer, symbolic_graph

    with torch.device("meta"):
        model = Pairs()
    tracer = _Tracer((), blocks=True)
    graph = symbolic_graph(model, (), 1, (), tracer)
    assert tracer.blocks is not None
    copies = [i for i in tracer.blocks.instances if i.node is None and i.path != "blocks.0"]
    assert copies == []  # tuples: no copy is one node
    plain = symbolic_graph(model, (), 1, (), _Tracer(()))
    assert [(n.op, str(n.target), n.name) for n in graph.nodes] == [(n.op, str(n.target), n.name) for n in plain.nodes]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.spec.rpartition(":")[2])
def test_every_example_with_copies_equals_its_checked_trace(example: Example) -> None:
    model = load_model(example.spec).module
    fast, checked = _both(model, example.inputs)
    assert fast == checked


def test_the_deep_benchmark_networks_are_answered_from_records(monkeypatch: pytest.MonkeyPatch) -> None:
    counts = _counted(monkeypatch)
    for name in ("residual", "chain"):
        model = load_model(f"benchmarks/depth_models.py:{name}", {"blocks": 6}).module
        fast, checked = _both(model, "1,3,8,8")
        assert fast == checked
    assert counts == {"answered": 5 + 5, "run": 0}  # every block after the first of each network


def test_on_real_tensors_copies_run_node_by_node(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--verify`` traces real tensors: copies are put back into nodes and run; the records are
    those of a trace without copies."""
    counts = _counted(monkeypatch)
    torch.manual_seed(0)
    model = TwoResolutions().eval()
    x = [torch.randn(1, 3, 16, 16)]
    with torch.no_grad():
        fast = trace_fx(model, x, (), False)
        plain = trace_fx(model, x, (), False, blocks=False)
    assert fast == plain
    assert counts == {"answered": 0, "run": 4}  # high.1, high.2, low.0 and low.1


def test_no_copies_under_a_global_forward_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    counts = _counted(monkeypatch)
    handle = torch.nn.modules.module.register_module_forward_hook(lambda module, args, out: None)
    try:
        with torch.device("meta"):
            model = TwoResolutions()
        fast, checked = _both(model, "1,3,16,16")
    finally:
        handle.remove()
    assert fast == checked
    assert counts == {"answered": 0, "run": 0}


def test_a_hooked_block_is_traced_through(monkeypatch: pytest.MonkeyPatch) -> None:
    counts = _counted(monkeypatch)
    with torch.device("meta"):
        model = TwoResolutions()
    model.high[1].register_forward_hook(lambda module, args, out: None)
    fast, checked = _both(model, "1,3,16,16")
    assert fast == checked
    assert counts == {"answered": 2, "run": 1}  # high.2 from high.0, low.1 from low.0; high.1 traced through


def test_the_key_tells_apart_what_a_trace_depends_on() -> None:
    table = Keys(frozenset())  # one trace's: states are numbered within it

    def key(module: nn.Module) -> Any:
        return module_key(module, table)

    with torch.device("meta"):
        assert key(Block(4)) == key(Block(4))
        assert key(Block(4)) != key(Block(4, stride=2))  # a hyper-parameter
        assert key(Block(4)) != key(Block(8))  # parameter shapes
        assert key(Flagged(4, True, 1.0)) != key(Flagged(4, True, 1))  # 1.0 and 1 are equal in Python
        assert key(Flagged(4, True, 1.0)) != key(Flagged(4, False, 1.0))
        trained, frozen = Block(4), Block(4)
        frozen.conv1.weight.requires_grad_(False)
        assert key(trained) != key(frozen)
        assert key(Block(4).train()) != key(Block(4).eval())
        with_tensor = Block(4)
        with_tensor.mask = torch.ones(1)  # a plain tensor attribute: fx makes it a constant
        with pytest.raises(NotKeyable):
            key(with_tensor)
        unregistered = Block(4)
        object.__setattr__(unregistered, "other", [nn.ReLU()])  # a module the tables do not hold
        with pytest.raises(NotKeyable):
            key(unregistered)


def test_a_block_state_names_its_own_class_table() -> None:
    """Two classes with the same attributes are two keys; one class with other attribute values is
    another key; the same class and values, the same key."""
    class A(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    class B(A):
        pass

    table = Keys(frozenset())
    a, b = A(), B()
    assert module_key(a, table) != module_key(b, table)
    first, second = A(), A()
    first.p, first.q = 1, 2
    second.q, second.p = 1, 3
    assert module_key(first, table) != module_key(second, table)
    assert module_key(A(), table) == module_key(a, table)


def test_nas201_networks_with_copies_equal_checked_traces(monkeypatch: pytest.MonkeyPatch) -> None:
    import random

    from .test_memo import _module

    counts = _counted(monkeypatch)
    nas = _module("examples/nas201.py", "_nas201_for_blocks")
    archs = list(nas.all_archs())
    for arch in random.Random(1).sample(archs, 3):
        with torch.device("meta"):
            model = nas.NAS201Network(arch)
        fast, checked = _both(model, "1,3,32,32")
        assert fast == checked, arch
    assert counts["answered"] > 0


def test_sizes_read_inside_copies_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    with torch.device("meta"):
        model = nn.Sequential(OrderedDict(a=Viewing(4), b=Viewing(4)))
    fast, checked = _both(model, "1,4,5,5")
    assert fast.size_reads == checked.size_reads != ()
