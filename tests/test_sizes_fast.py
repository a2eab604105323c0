"""The size analysis's shortcuts against its plain definition (analyse/sizes/flow.py, fit.py).

``build_flow`` takes an earlier node's outputs for a node of the same kind on the same source shapes,
replays templates, finds kinds by the identities of shared records, and ``_check_traced`` compares the
nodes that computed only. ``minimum_sizes`` (the scan's call) evaluates sizes only up to the first
accepted one and may share templates across graphs (``SharedTemplates``). Each is compared here with
what it shortcuts: a walk that runs every node's size rules with no memo, the full ``_check_traced``,
and ``analyse_sizes``; on models whose axes differ (non-square inputs, asymmetric kernels, strides
and padding, 1-d and 3-d nets), with multi-output nodes, a tensor used twice, repeated blocks, bounds,
and a model the arithmetic cannot characterise. Torch itself checks the answers in tests/test_sizes*.py.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import torch
from torch import nn

from cnnshape.analyse.sizes import SharedTemplates, analyse_sizes, default_axes, flow, minimum_sizes
from cnnshape.analyse.sizes.expr import Expr, NodeBuilder, T, Uncharacterised, Var, evaluate
from cnnshape.analyse.sizes.fit import _check_traced
from cnnshape.errors import InternalError
from cnnshape.graph import build_graph
from cnnshape.inputs import normalise_inputs
from cnnshape.pipeline import on_meta
from cnnshape.trace.tracers import trace

from .size_models import ConvNeXt, ShuffleNetV2
from .test_sizes_replay import SHAPE, Lopsided


class Asymmetric(nn.Module):
    """k(5, 3) s(3, 1) p(0, 2); reflection pad (1, 2, 0, 3); ceil-mode pool (2, 3) s2; the channels
    chunked (a node of two outputs) and multiplied back; ``x * x`` (one source used twice); a cat
    along W; flatten and Linear (a fixed size: bounded axes)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, (5, 3), stride=(3, 1), padding=(0, 2))
        self.pad = nn.ReflectionPad2d((1, 2, 0, 3))
        self.pool = nn.MaxPool2d((2, 3), stride=2, ceil_mode=True)
        self.head = nn.Linear(2 * 8 * 28, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.pad(self.conv(x)))
        a, b = x.chunk(2, dim=1)
        x = torch.cat([a * b, x[:, :2] * x[:, :2]], dim=3)
        return self.head(x.flatten(1))


class Line(nn.Module):
    """1-d: conv k7 s3 p2, ceil-mode average pool k3, nearest upsampling ×1.5, a residual add."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 7, stride=3, padding=2)
        self.pool = nn.AvgPool1d(3, ceil_mode=True)
        self.up = nn.Upsample(scale_factor=1.5)
        self.mix = nn.Conv1d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.up(self.pool(self.conv(x)))
        return y + self.mix(y)


class Volume(nn.Module):
    """3-d: conv k(3, 1, 5) s(1, 2, 3) p(1, 0, 2), pool (1, 2, 2), two equal blocks, global pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 2, (3, 1, 5), stride=(1, 2, 3), padding=(1, 0, 2))
        self.pool = nn.MaxPool3d((1, 2, 2))
        self.blocks = nn.Sequential(*[nn.Sequential(nn.Conv3d(2, 2, 3, padding=1), nn.ReLU()) for _ in range(2)])
        self.head = nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.pool(self.conv(x))))


class Sliced(nn.Module):
    """A constant slice of a size-dependent dim: the arithmetic cannot characterise the axis."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, 2:] + 1


MODELS: list[tuple[str, Any, tuple[int, ...]]] = [
    ("lopsided", lambda: Lopsided(3), SHAPE),
    ("asymmetric", Asymmetric, (1, 3, 40, 23)),
    ("line", Line, (1, 2, 50)),
    ("volume", Volume, (1, 1, 9, 14, 20)),
    ("sliced", Sliced, (1, 2, 12, 9)),
    # equal blocks on equal shapes, then a layer that makes a new shape without a new expression
    ("repeated", lambda: nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1),
                                       *[nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()) for _ in range(4)],
                                       nn.Conv2d(4, 6, 1), nn.AdaptiveAvgPool2d(1)),
     (1, 3, 21, 30)),
    ("shufflenet", ShuffleNetV2, (1, 3, 64, 48)),
    ("convnext", ConvNeXt, (1, 3, 64, 96)),
]


def graph_of(make: Any, shape: tuple[int, ...]) -> Any:
    model = make()
    with on_meta(model):
        return build_graph(trace(model, normalise_inputs(",".join(map(str, shape))), "auto"), model)


@pytest.fixture(scope="module")
def graphs() -> dict[str, Any]:
    return {name: graph_of(make, shape) for name, make, shape in MODELS}


def plain_flow(graph: Any, axis: int) -> tuple[list[Expr], dict[str, list[tuple[str, Any]]], str | None]:
    """The flow by its definition, none of build_flow's shortcuts: every node's size rules run
    (``flow.node_shapes``), each input found by name among the earlier nodes' outputs (the index-th
    use of one (source, meta) the index-th output that fits the meta, the meta's shape if none does)."""
    exprs: list[Expr] = []
    var = NodeBuilder("", (), exprs).add(Var())
    shapes: dict[str, list[tuple[str, Any]]] = {}
    first = True
    for node in graph.nodes:
        if node.kind == "input":
            shape = node.outputs[0][1].shape if node.outputs else ()
            if first:
                shape, first = tuple(var if i == axis else d for i, d in enumerate(shape)), False
            shapes[node.name] = [("", shape)]
            continue
        inputs, taken = [], {}
        for source, meta in zip(node.inputs, node.input_metas):
            index = taken[(source, meta)] = taken.get((source, meta), -1) + 1
            fits = [s for _, s in shapes.get(source, []) if flow._traced(s, meta)]
            inputs.append(fits[index % len(fits)] if fits else meta.shape)
        b = NodeBuilder(node.name, tuple(T(m, s) for m, s in zip(node.input_metas, inputs)), exprs)
        try:
            outputs = flow.node_shapes(node, b)
        except Uncharacterised as e:
            return exprs, shapes, f"{node.name} ({node.type}): {e}"
        shapes[node.name] = [(key, s) for (key, _), s in zip(node.outputs, outputs)]
    return exprs, shapes, None


def _ref(value: Any) -> Any:
    """An expression by its position in the flow, anything else as it is (tuples item by item)."""
    if isinstance(value, Expr):
        return ("expr", value.id)
    if isinstance(value, tuple):
        return tuple(_ref(v) for v in value)
    return value


def described(exprs: Any, shapes: dict[str, list[tuple[str, Any]]], reason: str | None) -> Any:
    """A flow as plain data: each expression's class and fields (its sources by position, its period
    and node included), each node output's shape with its expressions by position, the reason."""
    return ([(type(e).__name__, e.id, sorted((k, _ref(v)) for k, v in vars(e).items())) for e in exprs],
            {name: [(key, _ref(shape)) for key, shape in pairs] for name, pairs in shapes.items()}, reason)


@pytest.mark.parametrize("name", [name for name, _, _ in MODELS])
def test_flow_is_the_plain_walks_on_every_axis(graphs: dict[str, Any], name: str) -> None:
    # one Transfers for all the axes, as analyse_sizes shares it, and a second pass on it (every
    # template known by then): each gives the very expressions and shapes of the plain walk
    graph = graphs[name]
    transfers = flow.Transfers()
    axes = range(len(next(n for n in graph.nodes if n.kind == "input").outputs[0][1].shape))
    for _ in range(2):
        for axis in axes:  # the batch and channel axes too: other patterns, other shortcuts
            fast = flow.build_flow(graph, axis, transfers)
            assert described(fast.exprs, fast.shapes, fast.reason) == described(*plain_flow(graph, axis)), (name, axis)


@pytest.mark.parametrize("name", [name for name, _, _ in MODELS])
def test_minimum_sizes_is_analyse_sizes(graphs: dict[str, Any], name: str) -> None:
    graph = graphs[name]
    report = analyse_sizes(graph, "", symbolic=False)
    want = tuple((a.symbol, a.minimum) for a in report.axes)
    assert minimum_sizes(graph) == want
    assert minimum_sizes(graph, SharedTemplates()) == want
    if name == "sliced":  # the uncharacterised case is among them
        assert want == (("H", None), ("W", 1)), want  # W is untouched by the slice: every size ≥ 1
    if name == "asymmetric":  # and bounded axes (the Linear fixes the flattened size)
        assert all(a.accepted is not None and a.accepted.maximum is not None for a in report.axes)


def test_one_shared_store_for_all_models_in_any_order(graphs: dict[str, Any]) -> None:
    # templates from one model never answer for another wrongly: the store keys kinds by value
    want = {name: tuple((a.symbol, a.minimum) for a in analyse_sizes(g, "", symbolic=False).axes)
            for name, g in graphs.items()}
    shared = SharedTemplates()
    for order in (list(graphs), list(reversed(graphs)), list(graphs)):
        assert {name: minimum_sizes(graphs[name], shared) for name in order} == want


def test_shared_store_spares_the_rules_of_a_network_seen_before(monkeypatch: pytest.MonkeyPatch) -> None:
    # a second instance of an architecture (a new graph: new records, equal by value) runs no size
    # rule at all with the store of the first, and gets the same answer
    calls = [0]
    rules = flow.node_shapes

    def counted(*args: Any) -> Any:
        calls[0] += 1
        return rules(*args)

    monkeypatch.setattr(flow, "node_shapes", counted)
    shared = SharedTemplates()
    first = minimum_sizes(graph_of(Volume, (1, 1, 9, 14, 20)), shared)
    assert calls[0] > 0
    calls[0] = 0
    second = minimum_sizes(graph_of(Volume, (1, 1, 9, 14, 20)), shared)
    assert calls[0] == 0 and second == first
    # without it, the rules run again
    third = minimum_sizes(graph_of(Volume, (1, 1, 9, 14, 20)))
    assert calls[0] > 0 and third == first


def test_shared_store_is_bounded_and_empties_when_a_rule_is_added(graphs: dict[str, Any],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    shared = SharedTemplates(limit=3)
    for g in graphs.values():
        minimum_sizes(g, shared)
        assert len(shared._kinds) <= 3
    assert len(shared._kinds) == 3
    # a rule registered since (the registry only grows) may change what the rules build: emptied
    table = dict(flow.SIZE_RULES._table)
    monkeypatch.setattr(flow.SIZE_RULES, "_table", {**table, "aten.not_an_op": lambda *a: []})
    node = next(n for n in graphs["line"].nodes if n.kind != "input")
    assert shared.of(node) == {} and len(shared._kinds) == 1


def test_check_over_the_first_nodes_fails_where_the_full_check_fails(graphs: dict[str, Any]) -> None:
    # the flow's shapes made wrong at one shape, shared by nodes or not (a constant dim off by one):
    # the check over the nodes that computed fails at the same node, with the same message, as the
    # check over every node; and both pass on the flow as built
    graph, given = graphs["repeated"], 21
    built = flow.build_flow(graph, 2)
    assert built.reason is None and len(built.firsts) < len(graph.nodes) - 4  # the later blocks repeat the first
    every = replace(built, firsts=tuple(range(len(graph.nodes))))
    vals = evaluate(built.exprs, given)
    for f in (built, every):
        _check_traced(graph, f, vals, given, "H")
    tried = 0
    for target in {id(s): s for pairs in built.shapes.values() for _, s in pairs}.values():
        for at in [i for i, d in enumerate(target) if not isinstance(d, Expr)]:  # each constant dim in turn
            wrong = tuple(d + 1 if i == at else d for i, d in enumerate(target))
            shapes = {name: [(key, wrong if s is target else s) for key, s in pairs]
                      for name, pairs in built.shapes.items()}
            messages = []
            for f in (replace(built, shapes=shapes), replace(every, shapes=shapes)):
                with pytest.raises(InternalError) as raised:
                    _check_traced(graph, f, vals, given, "H")
                messages.append(str(raised.value))
            assert messages[0] == messages[1]
            tried += 1
    assert tried >= 6


def test_minimum_sizes_takes_the_analysis_path_above_the_bound() -> None:
    # a traced size above MAX_UP_TO (16384) is not within the evaluated range: the analysis's own path
    graph = graph_of(lambda: nn.Sequential(nn.Conv1d(1, 1, 3, stride=2)), (1, 1, 20001))
    want = tuple((a.symbol, a.minimum) for a in analyse_sizes(graph, "", symbolic=False).axes)
    assert minimum_sizes(graph) == want == (("L", 3),)  # floor((L − 3)/2) + 1 ≥ 1 from L = 3
    assert default_axes((1, 1, 20001)) == (2,)
