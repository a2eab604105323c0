"""The shortcuts taken for deep models (issue 11, depth) give what the general path gives.

Each shortcut is compared with the library call or torch method it stands in for: the plain-text
table with ``tabulate`` itself, the submodule lookup with ``nn.Module.get_submodule``, the
construction mode's per-function memo with a fresh decision.
"""
from __future__ import annotations

import dataclasses
import enum
import json
import random
from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tabulate import tabulate
from torch import nn

from cnnshape.analyse.params import _members, _parameters
from cnnshape.analyse.receptive_field import AxisRF, Piece, ReceptiveField, Trail, identity
from cnnshape.analyse.receptive_field.records import with_trail
from cnnshape.analyse.receptive_field.windows import window_axis
from cnnshape.construct import SkipInitOnMeta, build_on_meta, init_skipped_on_meta
from cnnshape.render.json import dumps_indented
from cnnshape.render.table import simple_table
from cnnshape.trace.modules import Submodules

ALIGN = ("left", "left", "left", "right", "right", "left", "right")
HEADERS = ("Layer", "Type", "Output shape", "Params", "MACs", "Window", "RF")


def _tabulate(rows: list[list[str]], headers: tuple[str, ...], align: tuple[str, ...]) -> str:
    return tabulate(rows, headers=headers, tablefmt="simple", preserve_whitespace=True, colalign=align,
                    disable_numparse=True)


def _cell(rng: random.Random) -> str:
    alphabet = "ab x1.,()*#-"
    text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 14)))
    return rng.choice(["", "  ", "    "]) + text if rng.random() < 0.3 else text


@pytest.mark.parametrize("seed", range(40))
def test_simple_table_is_tabulates(seed: int) -> None:
    rng = random.Random(seed)
    rows = [[_cell(rng) for _ in HEADERS] for _ in range(rng.randrange(1, 12))]
    assert simple_table(rows, HEADERS, ALIGN) == _tabulate(rows, HEADERS, ALIGN)


@pytest.mark.parametrize("rows", [
    [["a", "x"], ["b", "y"]],                       # headers wider than every cell
    [["a" * 30, ""], ["", "3" * 20]],               # cells wider than the headers, empty cells
    [["  0", "1"], ["    12", "  "]],               # leading spaces kept, trailing blanks dropped
    [["中文", "1"]],                                 # wide characters: tabulate's own path
    [["two\nlines", "1"]],                          # a line break: tabulate's own path
    [["\x1b[31mred\x1b[0m", "1"]],                  # a colour code: tabulate's own path
])
def test_simple_table_edge_cases(rows: list[list[str]]) -> None:
    for align in [("left", "right"), ("right", "left")]:
        assert simple_table(rows, ("Name", "N"), align) == _tabulate(rows, ("Name", "N"), align)


def _deep() -> nn.Module:
    inner = nn.Sequential(nn.Conv2d(1, 1, 1), nn.Sequential(), nn.ReLU())
    return nn.Sequential(nn.Linear(2, 2), nn.Sequential(inner, inner), nn.ModuleDict({"k": nn.Identity()}))


def test_submodules_finds_what_get_submodule_finds() -> None:
    model = _deep()
    found = Submodules(model)
    paths = [p for p, _ in model.named_modules(remove_duplicate=False)]
    assert len(paths) == 13  # root, 0, 1, 1.0, 1.0.0-2, 1.1, 1.1.0-2 (the shared block by both paths), 2, 2.k
    for path in reversed(paths):  # deepest first: the parents are found on the way
        assert found.get(path) is model.get_submodule(path)
    with pytest.raises(AttributeError, match="no attribute `nope`"):
        found.get("1.nope")


def test_construction_memo_still_skips_only_on_meta() -> None:
    """The memo decides once per function; the target's device is still looked at on every call."""
    with torch.device("meta"), SkipInitOnMeta():
        meta = torch.empty(3)
        assert nn.init.ones_(meta) is meta
    with SkipInitOnMeta():
        cpu = torch.empty(3)
        nn.init.ones_(cpu)  # the same function, now on a real tensor: it runs
        cpu.mul_(2)
    assert cpu.tolist() == [2.0, 2.0, 2.0]  # ones, doubled
    built = build_on_meta(lambda: nn.Conv2d(3, 4, 3))
    assert built.meta_error is None and built.module.weight.is_meta
    assert built.module.weight.shape == (4, 3, 3, 3)


def test_initialisers_patched_only_inside_and_only_for_meta() -> None:
    original = nn.init.kaiming_uniform_
    with init_skipped_on_meta(), init_skipped_on_meta():  # nested: one installation
        assert nn.init.kaiming_uniform_ is not original
        meta = torch.empty(4, 3, device="meta")
        assert nn.init.kaiming_uniform_(meta) is meta
        assert nn.init.constant_(tensor=meta, val=1.0) is meta  # the target passed by keyword
        cpu = nn.init.constant_(torch.empty(2, 2), 3.0)
    assert nn.init.kaiming_uniform_ is original  # restored once the outer use ends
    assert cpu.tolist() == [[3.0, 3.0], [3.0, 3.0]]  # a real tensor is initialised as usual


def test_own_parameters_are_torchs() -> None:
    conv, shared = nn.Conv2d(2, 3, 1), nn.Linear(2, 2)
    shared.register_parameter("alias", shared.weight)  # one parameter under two names: counted once
    shared.register_parameter("nothing", None)
    for module in (conv, shared, nn.Conv2d(1, 1, 1, bias=False), nn.ReLU(), _deep()):
        assert [id(p) for p in _parameters(module)] == [id(p) for p in module.parameters()]


# --- the JSON report's writer: json.dumps(indent=2), the same text --------------------------------

_json_scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
                 | st.text())
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.tuples(inner, inner) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(_json_values)
def test_dumps_indented_is_json_dumps(value: object) -> None:
    assert dumps_indented(value) == json.dumps(value, indent=2)


def _nested(depth: int) -> object:
    value: object = [1]
    for _ in range(depth):
        value = [value]
    return value


class _Flag(enum.IntEnum):
    ON = 1


@pytest.mark.parametrize("value", [
    {1: "int key", None: "none key"},          # keys json converts to text
    [_Flag.ON, True, 1],                       # an int subclass, bool among ints
    {"deep": _nested(70)},                   # deeper than the fast writer goes
    {"é": "naïve \u2028 \x00 \"quoted\""},     # escapes
    [float("nan"), -0.0, 1e16, 2.5e-300],
])
def test_dumps_indented_odd_values(value: object) -> None:
    assert dumps_indented(value) == json.dumps(value, indent=2)


def test_dumps_indented_refuses_what_json_refuses() -> None:
    cycle: list[object] = []
    cycle.append(cycle)
    for bad in (cycle, {"x": object()}, {(1, 2): 3}):
        with pytest.raises((TypeError, ValueError)) as ours:
            dumps_indented(bad)
        with pytest.raises(type(ours.value)) as theirs:
            json.dumps(bad, indent=2)
        assert str(ours.value) == str(theirs.value)


# --- the parameter totals' walk: model.parameters() and model.buffers(), one walk -------------


class _OwnWalk(nn.Module):
    """Overrides parameters(): the totals must go through it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def parameters(self, recurse: bool = True):  # type: ignore[no-untyped-def]  # torch's signature
        return iter([self.fc.weight])


def _tied() -> nn.Module:
    a = nn.Linear(3, 3)
    net = nn.Sequential(a, nn.BatchNorm1d(3), nn.Sequential(a, nn.Linear(3, 2, bias=False)), nn.BatchNorm1d(3))
    net[3].running_mean = net[1].running_mean  # a buffer shared by two modules
    net.register_buffer("none", None)  # a None buffer: skipped
    net.extra = nn.Parameter(torch.zeros(4))
    return net


@pytest.mark.parametrize("make", [_tied, _deep, _OwnWalk, lambda: torch.jit.script(nn.Sequential(nn.Linear(2, 2)))])
def test_members_are_torchs(make) -> None:  # type: ignore[no-untyped-def]
    model = make()
    params, buffers = _members(model)
    assert [id(p) for p in params] == [id(p) for p in model.parameters()]
    assert [id(b) for b in buffers] == [id(b) for b in model.buffers()]


# --- receptive field: the integer path of the window recurrence, with_trail spelt out ---------


def _window_axis_by_fractions(a: AxisRF, k: int, s: int, p: int, d: int) -> AxisRF:
    """The recurrence (Araujo et al., Distill 2019) in Fractions throughout."""
    eff = d * (k - 1) + 1
    return AxisRF(a.size + (eff - 1) * a.jump, a.jump * s, a.start + (Fraction(eff - 1, 2) - p) * a.jump)


@pytest.mark.parametrize("seed", range(20))
def test_window_axis_integer_path_is_the_fraction_one(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        halves = rng.random() < 0.3  # half-integer starts and jumps (after upsampling): the Fraction path
        a = AxisRF(Fraction(rng.randrange(1, 90), 2 if halves else 1), Fraction(rng.randrange(1, 9)),
                   Fraction(rng.randrange(-20, 20), 2 if halves else 1))
        k, s, p, d = rng.randrange(1, 8), rng.randrange(1, 4), rng.randrange(0, 4), rng.randrange(1, 3)
        got, _ = window_axis(a, k, s, p, d)
        want = _window_axis_by_fractions(a, k, s, p, d)
        assert (got.size, got.jump, got.start) == (want.size, want.jump, want.start)
        assert all(type(v) is Fraction for v in (got.size, got.jump, got.start))


def test_with_trail_is_replace() -> None:
    names = {f.name for f in dataclasses.fields(ReceptiveField)}
    # with_trail passes every field: a new one must be added there (then here)
    assert names == {"kind", "axes", "aligned", "unknown_op", "shape", "places", "failure", "trail", "pieces", "parts"}
    base = identity(2, (1, 3, 8, 8), "x")
    rf = dataclasses.replace(base, aligned=False, unknown_op="op", failure="f",
                             pieces=(Piece((1, 1, 8, 8), None, True),), parts=(base, None))
    trail = Trail((8, 8), name="y")
    got = with_trail(rf, trail)
    axes = tuple(AxisRF(a.size, a.jump, a.start, trail, k) for k, a in enumerate(rf.axes))
    want = dataclasses.replace(rf, axes=axes, trail=trail, pieces=(), parts=())
    for name in names:
        assert getattr(got, name) == getattr(want, name), name
    assert all(a.trail is trail for a in got.axes)
