"""Repeated torch.nn layer calls, and joins (``x + y``, ``torch.cat``), answered from a table: the
fx tracer's fast path for deep networks.

A deep network calls the same kind of layer, configured alike, on inputs of the same layout again
and again (a ResNet's conv-bn-relu, hundreds of times), and joins its branches the same way each
time. :func:`.layers.plan` turns such a layer call into its ATen calls (a join is a plan of one
call: the function itself); issuing them through the :class:`~.meta.OpRecorder` costs a
dispatch-mode round trip per call (C++ to Python and back), a meta kernel and the freezing of the
arguments into :class:`~.records.OpCall` records: 30-110 µs a call on a 2-core machine. Everything
that produces is a function of the plan: its functions, their plain arguments (with their types:
``1``, ``1.0`` and ``True`` are different keys) and the layout of each tensor argument (class,
shape, strides, dtype, storage offset, its flags, and which arguments share a storage). :class:`LeafMemo`
keys a plan by exactly that. The first call with a key runs the usual way; when its output is a
new tensor, or the input itself (in place, or no op at all), the recorded calls and the output's
layout are kept, and a later call with the same key gets the same (immutable) calls and a new meta
tensor of that layout.

What guards the equivalence (each check is below, where it is made):

- only meta tensors of floating dtypes and of the plain classes (``Tensor``, ``Parameter``), no
  grad mode, no other dispatch or function mode active: nothing else can see or change the calls;
- never while cross-checking: the test suite checks every layer call against torch's own forward,
  and tests/test_memo.py compares traces made with and without the table;
- a call that fails is never kept (the next one fails the usual way); an output that views an
  argument's storage, or whose storage is not that of a new tensor of its layout, is never kept;
- one table per trace by default. A scan's worker traces thousands of models that share their
  layers (a search space: the same convolutions at the same widths in every network) and shares
  one :class:`SharedTable` between its traces (:func:`shared_across_traces`): the key holds
  everything the calls depend on, the records hold only shapes and values (no name, no object of
  the model: :class:`~.records.OpCall`), and torch's default dtype joins the key, as the one global
  a later model may have changed. The table is bounded (least recently used out), so a long scan's
  memory stays flat. tests/test_memo.py traces different models in a row through one table against
  the checked traces.
"""
from __future__ import annotations

import operator
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch
from torch import nn

from . import layers
from .meta import OpRecorder
from .records import OpCall

_META = torch.device("meta")
_PLAIN_VALUES = frozenset({int, float, bool, str, type(None), torch.dtype, torch.layout, torch.device,
                           torch.memory_format})
_PLAIN_TENSORS = frozenset({torch.Tensor, nn.Parameter})
#: Functions of the forward's own whose ATen calls follow from their arguments' types, plain values
#: and layouts alone, as a layer's do: the joins of residual and multi-branch networks.
JOINS = frozenset({operator.add, operator.iadd, operator.sub, operator.mul, operator.truediv, torch.add,
                   torch.mul, torch.cat})
#: the kept output is the layer's input itself
_INPUT = "input"
#: (shape, strides, dtype) of a new output tensor
Layout = tuple[tuple[int, ...], tuple[int, ...], torch.dtype]


class _NotKeyable(Exception):
    """A plan argument the key cannot describe exactly: the call runs the usual way."""


def _value_key(value: Any, storages: dict[int, int], state: frozenset[int] = frozenset()) -> Hashable:
    """What a plan argument contributes to the key; ``storages`` numbers the storages seen so far;
    ``state``: the ids of the model's parameters and buffers (the recorded calls mark them)."""
    if value is layers.PREVIOUS:
        return value
    kind = type(value)
    if kind in _PLAIN_VALUES:
        return kind, value
    if kind in (list, tuple):
        if all(type(v) is int for v in value):  # sizes, strides, paddings: the ints themselves
            return kind, tuple(value)
        return kind, "items", tuple(_value_key(v, storages, state) for v in value)
    if kind in _PLAIN_TENSORS and value.is_meta and value.dtype.is_floating_point:
        storage = storages.setdefault(value.untyped_storage()._cdata, len(storages))
        return (kind, tuple(value.shape), value.stride(), value.dtype, value.storage_offset(),
                value.requires_grad, value.is_neg(), storage, id(value) in state)
    raise _NotKeyable


def plan_key(plan: tuple[list[layers.Call], int | None],
             state: frozenset[int] = frozenset()) -> tuple[Hashable, set[int]] | None:
    """The key of ``plan`` and the storages of its tensor arguments; ``None`` when some argument
    cannot be described exactly (a CPU tensor, an integer tensor, an object of another class).
    ``state``: the ids of the model's parameters and buffers, which the recorded calls mark."""
    calls, index = plan
    storages: dict[int, int] = {}
    try:
        key = (index, torch.get_default_dtype(), tuple((func, tuple(_value_key(a, storages, state) for a in args),
                             tuple((name, _value_key(v, storages, state)) for name, v in kwargs.items()))
                            for func, args, kwargs in calls))
    except _NotKeyable:
        return None
    return key, set(storages)


def _new(layout: Layout) -> torch.Tensor:
    """A new meta tensor of ``layout``, made past the recorder (it is the output of calls already
    recorded, not a call of its own)."""
    shape, stride, dtype = layout
    with torch._C._DisableTorchDispatch():
        return torch.empty_strided(shape, stride, dtype=dtype, device=_META)


def _kept_output(result: Any, x: Any, storages: set[int]) -> Layout | str | None:
    """How a later call reproduces ``result``: the input ``x`` itself, a new tensor of a layout, or
    ``None`` when neither gives the very same thing (a view of an argument, another class)."""
    if result is x:
        return _INPUT
    if (type(result) is not torch.Tensor or not result.is_meta or result.requires_grad
            or result.storage_offset() != 0 or result.untyped_storage()._cdata in storages):
        return None
    layout = (tuple(result.shape), result.stride(), result.dtype)
    if _new(layout).untyped_storage().nbytes() != result.untyped_storage().nbytes():
        return None
    return layout


#: what the table holds per key: the recorded calls, and the output (its layout, or the input itself)
Entry = tuple[tuple[OpCall, ...], Layout | str]


class SharedTable:
    """A :class:`LeafMemo` table shared by the traces of one process (see the module's docstring):
    the ``limit`` most recently used keys, safe to share between threads (a Dask worker's)."""

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._entries: OrderedDict[Hashable, Entry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def __setitem__(self, key: Hashable, entry: Entry) -> None:
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.limit:
                self._entries.popitem(last=False)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)


_SHARED: ContextVar[SharedTable | None] = ContextVar("cnnshape_shared_leaf_table", default=None)


@contextmanager
def shared_across_traces(table: SharedTable) -> Iterator[None]:
    """The traces made inside (in this thread) answer from and add to ``table``."""
    token = _SHARED.set(table)
    try:
        yield
    finally:
        _SHARED.reset(token)


class LeafMemo:
    """Planned layer calls of one trace (or of a :class:`SharedTable`'s traces), by :func:`plan_key`
    (see the module's docstring)."""

    def __init__(self, recorder: OpRecorder) -> None:
        self._recorder = recorder
        shared = _SHARED.get()
        self._table: dict[Hashable, Entry] | SharedTable = {} if shared is None else shared

    def run(self, args: tuple[Any, ...], plan: tuple[list[layers.Call], int | None]) -> Any:
        """:func:`.layers.run`, recorded by the recorder, from the table when it can be."""
        if (self._recorder.cross_check or torch.is_grad_enabled() or torch._C._len_torch_dispatch_stack() != 1
                or torch._C._len_torch_function_stack() != 0):
            return layers.run(args, plan)
        keyed = plan_key(plan, self._recorder.state)
        if keyed is None:
            return layers.run(args, plan)
        key, storages = keyed
        hit = self._table.get(key)
        if hit is not None:
            calls, output = hit
            self._recorder.calls.extend(calls)
            return args[0] if isinstance(output, str) else _new(output)
        start = len(self._recorder.calls)
        result = layers.run(args, plan)
        kept = _kept_output(result, args[0], storages)
        if kept is not None:
            self._table[key] = (tuple(self._recorder.calls[start:]), kept)
        return result


def is_join(target: Any) -> bool:
    """Whether an fx ``call_function`` target is one of :data:`JOINS`."""
    try:
        return target in JOINS
    except TypeError:  # an unhashable callable
        return False
