"""What the receptive-field walk derives from one recorded call alone, memoised per call object.

A rule is a pure function of a call and the RF it is given, and part of its work depends on the
call only: which tensor shapes the call reads, which rule it takes, a convolution's decoded kernel,
stride, padding and dilation. With repeated blocks traced once (trace/block_records.py) the copies
of a block share the OpCall objects of its first call, so a network of 5,000 identical residual
blocks follows the same two convolution calls 10,000 times: here they are decoded once each.

What guards the equivalence: an entry is keyed by the call's identity and holds the call itself, so
no other object can take that id while the entry lives, and the call is a frozen record, so what was
derived from it cannot go stale. The memos are emptied when a traversal ends
(:func:`.traverse.analyse_receptive_fields`) and whenever one reaches :data:`LIMIT` calls, so they
never grow without bound over a long scan. tests/test_rf_fast.py compares traversals with and
without them (:data:`ENABLED`).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ...trace.records import OpCall, TensorMeta

T = TypeVar("T")
#: calls one memo holds at most before it starts again
LIMIT = 1 << 16
#: off: every call derived afresh (the tests compare both ways)
ENABLED = True
_MEMOS: list[dict[int, tuple[OpCall, object]]] = []


def per_call(derive: Callable[[OpCall], T]) -> Callable[[OpCall], T]:
    """``derive`` (a pure function of a call), memoised per call object."""
    entries: dict[int, tuple[OpCall, object]] = {}
    _MEMOS.append(entries)

    def memoised(call: OpCall) -> T:
        entry = entries.get(id(call)) if ENABLED else None
        if entry is not None and entry[0] is call:
            return entry[1]  # type: ignore[return-value]  # stored below, from derive
        value = derive(call)
        if ENABLED:
            if len(entries) >= LIMIT:
                entries.clear()
            entries[id(call)] = (call, value)
        return value

    memoised.__doc__ = derive.__doc__
    return memoised


def forget() -> None:
    """Empty every memo (the end of a traversal)."""
    for entries in _MEMOS:
        entries.clear()


@per_call
def shapes_read(call: OpCall) -> frozenset[tuple[int, ...]]:
    """The shapes of the tensors the call reads: its arguments, and the tensors in a tuple argument
    (a ``cat``'s list)."""
    shapes = set()
    for value in (*call.args, *(v for _, v in call.kwargs)):
        if isinstance(value, TensorMeta):
            shapes.add(value.shape)
        elif isinstance(value, tuple):
            shapes.update(v.shape for v in value if isinstance(v, TensorMeta))
    return frozenset(shapes)
