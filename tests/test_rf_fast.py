"""The shortcuts of the receptive-field walk and of the per-node analyses give what the plain path gives.

Each is compared with what it stands in for, on varied inputs, including ones where it must not
apply: the per-call memos (:mod:`cnnshape.analyse.receptive_field.percall`) with a walk that derives
every call afresh, on networks whose repeated blocks share their calls and on ones traced without
block copies; the one-step records of ``sliding`` and ``merge`` with the two-step construction they
replace (``derive(rf, spatial_rf(...))``, ``with_trail(spatial_rf(...))``); the integer shortcut of
``window_axis`` with the closed form in Fractions; the shared window maps with fresh ones; the
analysis's costs and shape checks worked out once per tuple of calls with the per-node path a
user's formula takes; the RF records' direct ``__init__`` with the dataclass one.
"""
from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from fractions import Fraction
from typing import Any

import pytest
import torch
from torch import nn

from cnnshape.analyse.analysis import analyse
from cnnshape.analyse.receptive_field import (
    AxisRF,
    Piece,
    Place,
    ReceptiveField,
    analyse_receptive_fields,
    identity,
    percall,
)
from cnnshape.analyse.receptive_field.records import global_rf, spatial_rf, unknown_rf, with_trail
from cnnshape.analyse.receptive_field.rules import KEEP, derive, out_shape, sliding
from cnnshape.analyse.receptive_field.trail import SAME, IndexMap, Link, Trail, Window, link
from cnnshape.analyse.receptive_field.traverse import _merged_empty, _merged_labels, _widest, merge
from cnnshape.analyse.receptive_field.windows import window_axis, window_map
from cnnshape.graph import build_graph
from cnnshape.inputs import normalise_inputs
from cnnshape.load import load_model
from cnnshape.pipeline import on_meta
from cnnshape.trace.records import OpCall, TensorMeta
from cnnshape.trace.tracers import trace

# --- what a walk produced, every field and the whole trail graph -----------------------------------


def _snapshot(rfs: dict[str, ReceptiveField | None]) -> tuple[Any, ...]:
    """Every RF's fields, its axes' and parts', and every trail reached, numbered in order of discovery."""
    ids: dict[int, int] = {}
    trails: list[Any] = []

    def trail_id(t: Trail | None) -> int | None:
        if t is None:
            return None
        if id(t) not in ids:
            ids[id(t)] = len(trails)
            trails.append(None)
            trails[ids[id(t)]] = (t.extents, t.name, t.profile, t.refused, tuple(tuple(sorted(e)) for e in t.empty),
                                  tuple((trail_id(k.parent), k.maps) for k in t.links),
                                  tuple((trail_id(k.parent), k.maps) for k in t.within))
        return ids[id(t)]

    def fields(rf: ReceptiveField | None, deep: bool = True) -> Any:
        if rf is None:
            return None
        return (rf.kind, tuple((a.size, a.jump, a.start, trail_id(a.trail), a.axis) for a in rf.axes), rf.aligned,
                rf.unknown_op, rf.shape, rf.places, rf.failure, trail_id(rf.trail), rf.pieces,
                tuple(fields(p, False) for p in rf.parts) if deep else len(rf.parts))

    return tuple((name, fields(rf)) for name, rf in rfs.items()), tuple(trails)


# --- networks: repeated blocks whose calls differ from block to block -----------------------------


class _Block(nn.Module):
    def __init__(self, c: int, k: int = 3, stride: int = 1, dilation: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, k, stride, padding=dilation * (k // 2), dilation=dilation, groups=groups)
        self.bn = nn.BatchNorm2d(c)
        self.residual = stride == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x))
        return torch.relu(y + x) if self.residual else torch.relu(y)


class _Mixed(nn.Module):
    """Copies of blocks with different kernels, strides, dilations and groups, a transposed conv, a
    crop-and-join and a channel split: calls that a memo keyed on less than the call would mix up."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.body = nn.Sequential(*[_Block(8) for _ in range(3)], _Block(8, 5, stride=2),
                                  *[_Block(8, dilation=2) for _ in range(2)], *[_Block(8, groups=4) for _ in range(2)],
                                  nn.ConvTranspose2d(8, 8, 4, stride=2, padding=1), *[_Block(8, 1) for _ in range(2)])
        self.side = nn.Conv2d(8, 8, 3, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(self.stem(x))
        a, b = torch.chunk(y, 2, dim=1)
        side = nn.functional.pad(self.side(y), (1, 1, 1, 1))
        return torch.cat([a * b.sigmoid(), side[:, :4]], dim=1)


def _mixed() -> nn.Module:
    return _Mixed()


NETWORKS = [
    (_mixed, "1,3,16,16"),
    ("benchmarks/depth_models.py:residual", "1,3,8,8"),
    ("examples/inception.py:InceptionNet", "1,3,32,32"),
    ("examples/densenet.py:DenseNet", "1,3,32,32"),
    ("examples/senet.py:SENet", "1,3,32,32"),
    ("examples/decoder.py:TransposedDecoder", "1,100,1,1"),
    ("examples/mobilenet.py:MobileNetV2", "1,3,32,32"),
]


def _graph(model: Any, inputs: str, cross_check: bool) -> Any:
    module = model() if callable(model) and not isinstance(model, str) else load_model(
        model, {"blocks": 4} if "depth_models" in model else {}).module
    with on_meta(module):
        return build_graph(trace(module, normalise_inputs(inputs), "fx", cross_check=cross_check), module), module


def _walk(nodes: Sequence[Any], memos: bool) -> tuple[Any, ...]:
    before = percall.ENABLED
    percall.ENABLED = memos
    try:
        return _snapshot(analyse_receptive_fields(nodes))
    finally:
        percall.ENABLED = before


@pytest.mark.parametrize(("model", "inputs"), NETWORKS, ids=lambda v: getattr(v, "__name__", str(v).split(":")[-1]))
def test_memos_give_the_walk_without_them(model: Any, inputs: str) -> None:
    # cross_check=False: repeated blocks copied, sharing their calls (the memos hit); True: no copies
    for cross_check in (False, True) if model is _mixed else (False,):
        graph, _ = _graph(model, inputs, cross_check)
        assert _walk(graph.nodes, memos=True) == _walk(graph.nodes, memos=False)
        assert not any(percall._MEMOS), "the memos last one walk"


def test_memos_are_used_by_copies_and_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    graph, _ = _graph(_mixed, "1,3,16,16", cross_check=False)
    convs = [call for node in graph.nodes for call in node.ops if call.op == "aten.convolution"]
    assert len({id(c) for c in convs}) < len(convs), "copied blocks share their calls"
    made: list[OpCall] = []
    counted = percall.per_call(lambda call: made.append(call) or len(made))
    monkeypatch.setattr(percall, "LIMIT", 4)
    values = [counted(call) for call in convs]
    assert len(made) < len(convs)  # each call derived once while the memo holds it...
    assert all(len(entries) <= 4 for entries in percall._MEMOS)  # ...and never more than LIMIT calls held
    assert all(made[v - 1] is call for v, call in zip(values, convs))  # each answer derived from that very call
    percall.forget()


# --- sliding and merge: one step against two ------------------------------------------------------


def _call(out: tuple[int, ...]) -> OpCall:
    return OpCall("aten.test_window", (), (), (TensorMeta(out, "float32", 4),))


def _plain_sliding(call: OpCall, rf: ReceptiveField, nd: int, fn: Callable[[int, AxisRF], tuple[AxisRF, IndexMap]],
                   profile: Any = KEEP, refused: str | None = None) -> ReceptiveField:
    """``sliding`` as it was: every axis through ``fn``, a spatial RF, then ``derive`` links its trail."""
    out = out_shape(call)
    rank = len(rf.shape)
    axes, maps, places = [], [], []
    for a, place in zip(rf.axes, rf.places):
        if place.dim not in range(rank - nd, rank) or not place.whole or rf.shape[place.dim] != place.extent:
            return unknown_rf(f"{call.op} on a tensor without a matching spatial layout", out, rf.aligned)
        axis, index_map = fn(place.dim - (rank - nd), a)
        axes.append(axis)
        maps.append(index_map)
        places.append(Place(place.dim, 1, out[place.dim]))
    return derive(rf, spatial_rf(axes, out, rf.aligned, places, source=rf), maps, profile, refused)


def _random_rf(rng: random.Random, extent: int) -> ReceptiveField:
    """A spatial RF of a 1x4xHxW tensor after a few windows (odd and even kernels, strides, padding
    that leaves units reading nothing), maybe misaligned, maybe with an axis already global."""
    rf = identity(2, (1, 4, extent, extent), "x")
    for _ in range(rng.randrange(0, 3)):
        k, s, p, d = rng.randrange(1, 5), rng.randrange(1, 3), rng.randrange(0, 4), rng.randrange(1, 3)
        out = (extent + 2 * p - d * (k - 1) - 1) // s + 1
        if out < 1:
            break
        rf = sliding(_call((1, 4, out, out)), rf, 2, lambda i, a, k=k, s=s, p=p, d=d: window_axis(a, k, s, p, d))
        extent = out
    if rng.random() < 0.2 and rf.kind == "spatial":
        rf = replace(rf, aligned=False)
    if rng.random() < 0.15 and rf.kind == "spatial":
        rf = with_trail(rf, rf.trail) if rng.random() < 0.5 else with_trail(rf, None)  # a trail-less one too
    if rng.random() < 0.15 and rf.kind == "spatial":  # axis 0 global (a mean over H, keepdim)
        axes = (AxisRF(None, rf.axes[0].jump, rf.axes[0].start), rf.axes[1])
        rf = with_trail(replace(rf, axes=axes), rf.trail)
    return rf


@pytest.mark.parametrize("seed", range(6))
def test_sliding_in_one_step_is_derive_of_spatial_rf(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(150):
        rf = _random_rf(rng, rng.randrange(3, 12))
        if rf.kind != "spatial":
            continue
        extent = rf.shape[2]
        k, s, p, d = rng.randrange(1, 6), rng.randrange(1, 4), rng.randrange(0, 5), rng.randrange(1, 3)
        out = (extent + 2 * p - d * (k - 1) - 1) // s + 1
        if out < 1:
            continue
        profile = rng.choice([KEEP, None, (0, 1, 0, 1)])
        refused = rng.choice([None, "why not"])
        call = _call((1, 4, out, out))

        def fn(i: int, a: AxisRF, k: int = k, s: int = s, p: int = p, d: int = d) -> tuple[AxisRF, IndexMap]:
            if rng.random() < 0.1:  # an axis made global by the op: with both global, no one-step record
                return AxisRF(None, a.jump * s, a.start), window_map(s, p, d, k)
            return window_axis(a, k, s, p, d)

        state = rng.getstate()
        fast = sliding(call, rf, 2, fn, profile=profile, refused=refused)
        rng.setstate(state)  # fn draws the same axes again
        plain = _plain_sliding(call, rf, 2, fn, profile=profile, refused=refused)
        assert _snapshot({"rf": fast}) == _snapshot({"rf": plain})


def _plain_union_axis(axes: Sequence[AxisRF]) -> tuple[AxisRF, bool]:
    if any(a.size is None for a in axes):
        return AxisRF(None, max(a.jump for a in axes), axes[0].start), True
    if all(a.jump == axes[0].jump and a.start == axes[0].start for a in axes):
        return AxisRF(max(a.size for a in axes), axes[0].jump, axes[0].start), True  # type: ignore[type-var]
    lo, hi = min(a.box(0)[0] for a in axes), max(a.box(0)[1] for a in axes)
    return AxisRF(hi - lo + 1, max(a.jump for a in axes), (lo + hi) / 2), False


def _plain_join(spatial: list[ReceptiveField], aligned: bool, parts: tuple[Any, ...]) -> ReceptiveField:
    """The end of ``merge`` as it was for two or more spatial branches: spatial_rf, then with_trail."""
    axes = []
    for per_axis in zip(*(rf.axes for rf in spatial)):
        axis, ok = _plain_union_axis(per_axis)
        axes.append(axis)
        aligned = aligned and ok
    places = tuple(_widest(p, max(rf.places[k].extent for rf in spatial)) for k, p in enumerate(spatial[0].places))
    result = spatial_rf(axes, spatial[0].shape, aligned, places)
    trails = [rf.trail for rf in spatial if rf.trail is not None]
    if result.kind != "spatial":
        return replace(result, trail=Trail((), tuple(link(t) for t in trails)), parts=parts)
    trail = Trail(tuple(p.extent for p in places), tuple(Link(t, (SAME,) * len(axes)) for t in trails),
                  profile=_merged_labels(spatial), empty=_merged_empty(trails))
    return with_trail(result, trail if len(trails) == len(spatial) else None, parts)


@pytest.mark.parametrize("seed", range(6))
def test_merge_in_one_step_is_with_trail_of_spatial_rf(seed: int) -> None:
    rng = random.Random(100 + seed)
    for _ in range(120):
        extent = rng.randrange(3, 10)
        branches = [_random_rf(rng, extent) for _ in range(rng.randrange(2, 4))]
        spatial = [rf for rf in branches if rf.kind == "spatial"]
        if len(spatial) < 2:
            continue
        # branches of one shape, as an element-wise join sees them (extents may differ: _widest)
        shape = spatial[0].shape
        spatial = [replace(rf, shape=shape) for rf in spatial if len(rf.axes) == 2]
        if rng.random() < 0.3:
            spatial.append(spatial[0])  # the same tensor twice (x + x): the identity shortcut
        if all(rf.trail is None for rf in spatial):
            # the plain path raised IndexError here (_merged_empty of no trails), a state no rule
            # produces: the one-step record has no trail, as with_trail(..., None) gave for some
            assert merge(spatial).trail is None
            continue
        got = merge(spatial)
        assert _snapshot({"rf": got}) == _snapshot({"rf": _plain_join(spatial, all(rf.aligned for rf in spatial),
                                                                       tuple(spatial))})


def test_merge_of_other_kinds_takes_the_general_path() -> None:
    x = identity(2, (1, 4, 6, 6), "x")
    whole = global_rf((1, 4, 6, 6), source=x)
    lost = unknown_rf("aten.foo", (1, 4, 6, 6))
    assert merge([x, whole]).kind == "global" and merge([x, lost]).kind == "unknown"
    assert merge([x, None]).parts == (x, None)


# --- window_axis, window maps ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_window_axis_integer_shortcut_is_the_fraction_formula(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(500):
        a = AxisRF(Fraction(rng.randrange(1, 60)), Fraction(rng.randrange(1, 9)), Fraction(rng.randrange(-20, 20)))
        k, s, p, d = rng.randrange(1, 8), rng.randrange(1, 4), rng.randrange(0, 6), rng.randrange(1, 4)
        eff = d * (k - 1) + 1
        got, index_map = window_axis(a, k, s, p, d)
        # r_out = r_in + (k'-1)·j_in, j_out = j_in·s, start_out = start_in + ((k'-1)/2 - p)·j_in (Distill 2019)
        assert (got.size, got.jump, got.start) == (a.size + (eff - 1) * a.jump, a.jump * s,
                                                   a.start + (Fraction(eff - 1, 2) - p) * a.jump)
        assert all(type(v) is Fraction for v in (got.size, got.jump, got.start))
        assert index_map == Window(s, p, d, k)


def test_window_maps_are_shared_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    assert window_map(2, 1, 1, 3) is window_map(2, 1, 1, 3) == Window(2, 1, 1, 3)
    from cnnshape.analyse.receptive_field import windows

    for k in range(1, 5000):
        assert window_map(1, 0, 1, k) == Window(1, 0, 1, k)
    assert len(windows._WINDOWS) <= 4096


# --- the analysis: once per tuple of calls against once per node ----------------------------------


@pytest.mark.parametrize(("model", "inputs"), NETWORKS[:4], ids=lambda v: getattr(v, "__name__", str(v).split(":")[-1]))
def test_costs_and_shape_checks_per_tuple_of_calls_are_per_node(model: Any, inputs: str) -> None:
    graph, module = _graph(model, inputs, cross_check=False)
    with on_meta(module):
        memo = analyse(graph, receptive_field=False)
        # a formula for an op no network runs: every node takes the per-node path, the table unchanged
        plain = analyse(graph, {"cnnshape_test.never": lambda call: 0}, receptive_field=False)
    assert memo.by_op == plain.by_op and memo.by_op
    for name, node in memo.nodes.items():
        other = plain.nodes[name]
        assert (node.cost, node.unsupported, node.analytic_shape) == (other.cost, other.unsupported,
                                                                    other.analytic_shape), name


def test_a_users_op_formula_runs_for_every_node() -> None:
    graph, module = _graph("benchmarks/depth_models.py:residual", "1,3,8,8", cross_check=False)
    seen: list[OpCall] = []
    with on_meta(module):
        analyse(graph, {"aten.convolution": lambda call: seen.append(call) or 1}, receptive_field=False)
    convs = [call for node in graph.nodes for call in node.ops if call.op == "aten.convolution"]
    assert [id(c) for c in seen] == [id(c) for c in convs] and len({id(c) for c in convs}) < len(convs)


# --- the RF records' __init__ ---------------------------------------------------------------------


def _value(rng: random.Random) -> object:
    return rng.choice([0, 7, None, (1, 2), Fraction(3, 2), "a", (Place(2, 1, 5),)])


@pytest.mark.parametrize("cls", [AxisRF, Piece, Place, ReceptiveField, Link, Trail], ids=lambda c: c.__name__)
def test_rf_records_direct_init_is_the_dataclass_one(cls: type) -> None:
    rng = random.Random(cls.__name__)
    fields = dataclasses.fields(cls)
    required = [f for f in fields if f.default is dataclasses.MISSING]
    for _ in range(30):
        args = [_value(rng) for _ in range(len(required) + rng.randrange(0, len(fields) - len(required) + 1))]
        ours = cls(*args)
        theirs = object.__new__(cls)
        cls.__dataclass_init__(theirs, *args)  # type: ignore[attr-defined]
        assert vars(ours) == vars(theirs) and list(vars(ours)) == [f.name for f in fields]
        assert repr(ours) == repr(theirs)
        if cls.__eq__ is not object.__eq__:  # Link and Trail compare by identity
            assert ours == theirs and hash(ours) == hash(theirs)
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(ours, fields[0].name, 1)
