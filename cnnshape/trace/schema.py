"""Arguments of a recorded ATen call by their schema names: ``call.arg("stride")``.

The recorder knows the exact overload it dispatched (``aten.split.sizes``), so an :class:`OpCall`
keeps its name beside the arguments as they reached the dispatcher (positional or by keyword).
Here the overload's schema pairs the positional values with their names and fills the rest with
the schema's defaults. A schema is read once per overload, the pairing once per shape of call
(number of positional arguments and keyword names), so binding costs a dict lookup.
"""
from __future__ import annotations

import functools
from typing import Any


def _frozen(value: Any) -> Any:
    """A schema default as the recorder freezes values: lists as tuples."""
    return tuple(_frozen(v) for v in value) if isinstance(value, (list, tuple)) else value


@functools.cache
def _schema(op: str, overload: str) -> Any:
    import torch

    namespace, _, name = op.partition(".")
    packet = getattr(getattr(torch.ops, namespace, None), name, None)
    if packet is None:
        raise LookupError(f"no ATen schema for {op}")
    return getattr(packet, overload)._schema


@functools.cache
def signature(op: str, overload: str, positional: int,
              keywords: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[tuple[str, Any], ...]]:
    """(names of the first ``positional`` arguments, defaults of the arguments not given) of
    ``op.overload``, e.g. ``("aten.split", "sizes", 3, ())``."""
    arguments = _schema(op, overload).arguments
    names = tuple(a.name for a in arguments if not a.kwarg_only)[:positional]
    given = set(names) | set(keywords)
    defaults = tuple((a.name, _frozen(a.default_value)) for a in arguments
                     if a.name not in given and a.has_default_value())
    return names, defaults


def names(op: str, overload: str) -> tuple[str, ...]:
    """Every argument name of ``op.overload``, in schema order."""
    return tuple(a.name for a in _schema(op, overload).arguments)
