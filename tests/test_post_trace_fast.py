"""The shortcuts of the stages after the trace (issue 11) give what the general path gives.

Each is compared with what it stands in for, on varied inputs: the one walk of the module tree
with torch's ``named_modules``/``modules``/``train``; the records' direct ``__init__`` with the
one ``dataclasses`` generates; the closed-form window check with the walk over every tap; the RF
merge's spelt-out records with ``dataclasses.replace``; the table's memoised cells with the cells
formatted row by row; the report's edges with the graph's.
"""
from __future__ import annotations

import dataclasses
import random
from fractions import Fraction

import pytest
import torch
from torch import nn

import cnnshape
from cnnshape.analyse.analysis import NodeAnalysis, analyse
from cnnshape.analyse.flops import Cost
from cnnshape.analyse.params import NodeParams
from cnnshape.analyse.receptive_field import Piece, identity
from cnnshape.analyse.receptive_field.records import with_parts
from cnnshape.analyse.receptive_field.trail import IndexMap, Window
from cnnshape.frozen import fast_init
from cnnshape.graph import Edge, build_graph
from cnnshape.inputs import normalise_inputs
from cnnshape.load import load_model
from cnnshape.pipeline import build_report, on_meta
from cnnshape.render.table import _rows, _Texts, rf_text, window_text
from cnnshape.report import EdgeRecord, LayerRecord, leaf_of, scopes_of
from cnnshape.trace.tracers import trace
from cnnshape.trace.walk import module_paths, set_training, unique_modules

# --- the one walk of the module tree ------------------------------------------------------------


class _OwnTrain(nn.Module):
    """Keeps its batch norm in eval mode whatever it is switched to (a common fine-tuning idiom)."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(2)

    def train(self, mode: bool = True) -> _OwnTrain:
        super().train(mode)
        self.bn.eval()
        return self


class _OwnSetattr(nn.Module):
    """Counts the assignments to ``training``."""

    def __init__(self) -> None:
        super().__init__()
        self.sets = 0

    def __setattr__(self, name: str, value: object) -> None:
        if name == "training" and "sets" in self.__dict__:
            super().__setattr__("sets", self.sets + 1)
        super().__setattr__(name, value)


def _shared() -> nn.Module:
    """A module under two paths, a None child, nesting, a ModuleDict and a ModuleList."""
    a = nn.Linear(2, 2)
    net = nn.Sequential(a, nn.Sequential(nn.ReLU(), a), nn.ModuleDict({"x": nn.Conv1d(1, 1, 1), "y": a}))
    net.add_module("nothing", None)
    net.extra = nn.ModuleList([nn.Sequential(nn.Tanh()), net[1]])
    return net


def _deep() -> nn.Module:
    net: nn.Module = nn.Linear(1, 1)
    for i in range(30):
        net = nn.Sequential(net, nn.ReLU()) if i % 2 else nn.Sequential(nn.Identity(), net)
    return net


MODELS = [
    _shared,
    _deep,
    lambda: nn.Sequential(_OwnTrain(), nn.Linear(2, 2)),
    lambda: nn.Sequential(_OwnSetattr(), nn.Sequential(_OwnSetattr())),
    lambda: torch.jit.script(nn.Sequential(nn.Linear(2, 2), nn.ReLU())),
    lambda: nn.Sequential(torch.jit.script(nn.Linear(2, 2)), nn.BatchNorm1d(2)),
]


@pytest.mark.parametrize("make", MODELS)
def test_module_paths_are_named_modules(make) -> None:  # type: ignore[no-untyped-def]
    model = make()
    paths = module_paths(model)
    want = list(model.named_modules(remove_duplicate=False))
    assert [(k, id(m)) for k, m in paths.items()] == [(k, id(m)) for k, m in want]
    assert [id(m) for m in unique_modules(paths, model)] == [id(m) for m in model.modules()]


@pytest.mark.parametrize("make", MODELS)
@pytest.mark.parametrize("mode", [False, True])
def test_set_training_is_train(make, mode: bool) -> None:  # type: ignore[no-untyped-def]
    ours, theirs = make(), make()
    for model in (ours, theirs):  # a mixed start: every other module in the other mode
        for i, m in enumerate(model.modules()):
            m.training = bool(i % 2)
    set_training(ours, unique_modules(module_paths(ours), ours), mode)
    theirs.train(mode)
    assert [m.training for m in ours.modules()] == [m.training for m in theirs.modules()]
    # a class of its own __setattr__ sees its assignments (at most one per module, none skipped
    # that would change the flag)
    for a, b in zip(ours.modules(), theirs.modules()):
        if isinstance(a, _OwnSetattr):
            assert 1 <= a.sets <= b.sets


@pytest.mark.parametrize("make", MODELS[:4])
def test_on_meta_restores_modes_and_tensors(make) -> None:  # type: ignore[no-untyped-def]
    model = make()
    for i, m in enumerate(model.modules()):
        m.training = bool(i % 3)
    before = [(m.training, {k: id(v) for k, v in (*m._parameters.items(), *m._buffers.items())})
              for m in model.modules()]
    with on_meta(model, train=False):
        assert not any(m.training for m in model.modules() if not isinstance(m, nn.BatchNorm1d))
        assert all(v.is_meta for m in model.modules() for v in (*m._parameters.values(), *m._buffers.values())
                   if v is not None)
    after = [(m.training, {k: id(v) for k, v in (*m._parameters.items(), *m._buffers.items())})
             for m in model.modules()]
    assert after == before


# --- records built by fast_init ------------------------------------------------------------------

FAST = [LayerRecord, EdgeRecord, NodeAnalysis, NodeParams, Cost, Edge]


def _value(rng: random.Random) -> object:
    return rng.choice([0, 7, -3, "a", None, (1, 2), ((1, 2),), Fraction(3, 2), (("k", 3),)])


@pytest.mark.parametrize("cls", FAST, ids=lambda c: c.__name__)
def test_fast_init_builds_the_dataclass_record(cls: type) -> None:
    rng = random.Random(cls.__name__)
    fields = dataclasses.fields(cls)
    required = [f for f in fields if f.default is dataclasses.MISSING]
    for _ in range(30):
        given = len(required) + rng.randrange(0, len(fields) - len(required) + 1)
        args = [_value(rng) for _ in range(given)]
        ours = cls(*args)
        theirs = object.__new__(cls)
        cls.__dataclass_init__(theirs, *args)  # type: ignore[attr-defined]
        assert vars(ours) == vars(theirs)
        assert list(vars(ours)) == [f.name for f in fields]  # every field, in order
        assert ours == theirs and repr(ours) == repr(theirs)
        if cls.__hash__ is not None:
            assert hash(ours) == hash(theirs)
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(ours, fields[0].name, 1)
        # keywords too
        kwargs = {f.name: a for f, a in zip(fields, args)}
        assert cls(**kwargs) == ours


def test_fast_init_refuses_records_it_cannot_build() -> None:
    @dataclasses.dataclass(frozen=True)
    class Factory:
        a: list[int] = dataclasses.field(default_factory=list)

    @dataclasses.dataclass(frozen=True)
    class Post:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclasses.dataclass
    class Mutable:
        a: int

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Keywords:
        a: int

    for cls in (Factory, Post, Mutable, Keywords):
        with pytest.raises(TypeError, match="fast_init"):
            fast_init(cls)


def test_fast_init_field_named_self() -> None:
    @fast_init
    @dataclasses.dataclass(frozen=True)
    class Odd:
        self: int
        other: int = 2

    assert (Odd(1).self, Odd(1).other, Odd(1, 5).other) == (1, 2, 5)


# --- receptive field ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(10))
def test_window_misses_closed_form_is_the_walk(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(400):
        w = Window(rng.randrange(1, 5), rng.randrange(0, 9), rng.randrange(1, 4), rng.randrange(1, 8))
        size, n = rng.randrange(1, 20), rng.randrange(1, 20)
        assert w.misses(size, n) == IndexMap.misses(w, size, n), (w, size, n)


def test_with_parts_is_replace() -> None:
    base = identity(2, (1, 3, 8, 8), "x")
    rf = dataclasses.replace(base, aligned=False, unknown_op="op", failure="f",
                             pieces=(Piece((1, 1, 8, 8), None, True),), parts=(base,))
    for parts in ((), (base, None), (None,)):
        got, want = with_parts(rf, parts), dataclasses.replace(rf, parts=parts)
        for f in dataclasses.fields(rf):
            assert getattr(got, f.name) == getattr(want, f.name), f.name
        assert got.trail is rf.trail and got.axes == rf.axes


# --- the table's cells and the report's edges ----------------------------------------------------


def _rows_one_by_one(report: cnnshape.Report, indent: bool) -> list[list[str]]:
    """The table's rows with every cell formatted anew (the code before the memo)."""
    from cnnshape.render.table import _output_text, _param_text
    from cnnshape.units import si

    rows: list[list[str]] = []
    open_scopes: list[str] = []
    for layer in report.layers:
        scope = list(scopes_of(layer.name)) if layer.kind not in ("input", "output") else []
        common = 0
        while common < min(len(scope), len(open_scopes)) and scope[common] == open_scopes[common]:
            common += 1
        for level in range(common, len(scope)):
            path = scope[level]
            rows.append([("  " * level + leaf_of(path)) if indent else path, report.modules.get(path, ""),
                         "", "", "", "", ""])
        open_scopes = scope
        name = ("  " * len(scope) + leaf_of(layer.name)) if indent else layer.name
        rows.append([name, layer.type, _output_text(layer), _param_text(layer), si(layer.macs) if layer.macs else "",
                     window_text(layer), rf_text(layer)])
    return rows


CASES = [
    ("examples/resnet.py:ResNet18", ["1,3,32,32"]),
    ("examples/inception.py:InceptionNet", ["1,3,32,32"]),
    ("examples/multi_io.py:TwoInputNet", ["1,3,32,32", "1,10"]),  # several outputs
    ("examples/multi_io.py:TiedWeights", ["1,64"]),  # shared parameters, a module called twice
    ("examples/unet.py:UNet", ["1,1,64,64"]),
]


@pytest.mark.parametrize(("spec", "inputs"), CASES, ids=[c[0].split(":")[1] for c in CASES])
def test_table_cells_are_formatted_as_row_by_row(spec: str, inputs: list[str]) -> None:
    report = cnnshape.analyze(spec, inputs)
    for indent in (True, False):
        assert _rows(report, indent) == _rows_one_by_one(report, indent)


def test_table_cells_with_names_and_windows_that_repeat_differently() -> None:
    layer = LayerRecord("a.b#2.c", "module", "Conv2d", 3, (), (("", (1, 2)),), "float32", 0, 0, None, 5, 10, 0, 0,
                        attrs=(("kernel_size", (3, 3)), ("stride", [2, 2])))  # a list: no memo key
    texts = _Texts()
    for name in ("a.b#2.c", "a.b.c#3", "x#2", "x", "a.b.c.d"):
        assert texts.scopes(name) == list(scopes_of(name)), name
    assert texts.window(layer) == window_text(layer) == texts.window(layer)
    other = dataclasses.replace(layer, output_shapes=(("[0]", (1,)), ("[1]", (2, 3))))
    assert texts.output(other) == "[0]: 1, [1]: 2x3"
    assert texts.output(dataclasses.replace(layer, output_shapes=())) == ""


@pytest.mark.parametrize(("spec", "inputs"), CASES[1:4], ids=[c[0].split(":")[1] for c in CASES[1:4]])
def test_report_edges_are_the_graphs(spec: str, inputs: list[str]) -> None:
    module = load_model(spec).module
    with on_meta(module):
        graph = build_graph(trace(module, normalise_inputs(inputs), "fx"), module)
        report = build_report(graph, analyse(graph), model=spec)
    edges = tuple(EdgeRecord(e.source, e.target, e.meta.shape) for e in graph.edges())
    assert report.edges == edges and len(edges) > len(graph.nodes) - 2
