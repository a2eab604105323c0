"""Arguments of a recorded ATen call by their schema names: ``arg(call, "dim")``.

An :class:`OpCall` keeps the arguments as they reached the dispatcher, positional or by keyword,
and only the overload packet's name (``aten.split``), not the overload. The packet's overloads are
told apart by the kinds of the arguments (``split.Tensor`` takes an int, ``split.sizes`` a list;
``sum.default`` has no ``dim``, ``sum.dim_IntList`` requires one), as torch's own dispatcher
does, and the call's positional values are paired with the chosen schema's names, its defaults
filling the rest. Schemas are looked up once per op, the choice once per kind of argument list.
"""
from __future__ import annotations

import functools
from typing import Any

from ..trace.records import OpCall, TensorMeta

#: the kind of one recorded value: a tensor, None, an empty sequence, a sequence of tensors (and
#: Nones), another sequence, or a plain value
_TENSOR, _NONE, _EMPTY, _TENSORS, _SEQ, _PLAIN = "tensor", "none", "empty", "tensors", "seq", "plain"


def _kind(value: Any) -> str:
    if isinstance(value, TensorMeta):
        return _TENSOR
    if value is None:
        return _NONE
    if isinstance(value, tuple):
        if not value:
            return _EMPTY
        tensors = any(isinstance(v, TensorMeta) for v in value)
        return _TENSORS if tensors and all(isinstance(v, TensorMeta) or v is None for v in value) else _SEQ
    return _PLAIN


def _fits(schema_type: Any, kind: str) -> bool:
    """Whether a value of ``kind`` can be passed for an argument of ``schema_type``. Scalars are not
    told apart (recorded dtypes and memory formats are strings; ints stand for floats)."""
    name = schema_type.kind()
    if name == "OptionalType":
        return kind == _NONE or _fits(schema_type.getElementType(), kind)
    if name == "TensorType":
        return kind == _TENSOR
    if name == "ListType":
        element = schema_type.getElementType()
        if element.kind() == "OptionalType":
            element = element.getElementType()
        tensors = element.kind() == "TensorType"
        return kind == _EMPTY or kind == (_TENSORS if tensors else _SEQ)
    return kind == _PLAIN


@functools.cache
def _schemas(op: str) -> tuple[Any, ...]:
    """The schemas of every overload of ``op`` (``"aten.split"``), ``out=`` variants left out."""
    import torch

    namespace, _, name = op.partition(".")
    packet = getattr(getattr(torch.ops, namespace, None), name, None)
    if packet is None or not hasattr(packet, "overloads"):
        raise LookupError(f"no ATen schema for {op}")
    schemas = [getattr(packet, overload)._schema for overload in packet.overloads()]
    return tuple(s for s in schemas if not any(a.name == "out" and a.kwarg_only for a in s.arguments))


def _accepts(schema: Any, kinds: tuple[str, ...], keywords: tuple[tuple[str, str], ...]) -> bool:
    arguments = list(schema.arguments)
    positional = [a for a in arguments if not a.kwarg_only]
    if len(kinds) > len(positional):
        return False
    by_name = {a.name: a for a in arguments}
    given = dict(keywords)
    if any(k not in by_name or not _fits(by_name[k].type, kind) for k, kind in keywords):
        return False
    if not all(_fits(a.type, kind) for a, kind in zip(positional, kinds)):
        return False
    rest = [a for a in arguments if a not in positional[:len(kinds)]]
    return all(a.name in given or a.has_default_value() for a in rest)


@functools.cache
def _signature(op: str, kinds: tuple[str, ...],
               keywords: tuple[tuple[str, str], ...]) -> tuple[tuple[str, ...], tuple[tuple[str, Any], ...]]:
    """(names of the positional arguments, defaults of the others) of the overload of ``op`` that
    accepts arguments of these kinds."""
    for schema in _schemas(op):
        if _accepts(schema, kinds, keywords):
            names = tuple(a.name for a in schema.arguments if not a.kwarg_only)[:len(kinds)]
            defaults = tuple((a.name, _frozen(a.default_value)) for a in schema.arguments
                             if a.name not in names and a.has_default_value())
            return names, defaults
    described = ", ".join([*kinds, *(f"{k}={kind}" for k, kind in keywords)])
    raise TypeError(f"no overload of {op} accepts ({described})")


def _frozen(value: Any) -> Any:
    """A schema default as the recorder freezes values: lists as tuples."""
    return tuple(_frozen(v) for v in value) if isinstance(value, (list, tuple)) else value


def bind(call: OpCall) -> dict[str, Any]:
    """Every argument of ``call`` by its schema name, defaults included."""
    kinds = tuple(_kind(v) for v in call.args)
    keywords = tuple((k, _kind(v)) for k, v in call.kwargs)
    names, defaults = _signature(call.op, kinds, keywords)
    bound = dict(defaults)
    bound.update(zip(names, call.args))
    bound.update(call.kwargs)
    return bound


_MISSING = object()


def arg(call: OpCall, *names: str, default: Any = None) -> Any:
    """The value of the first of ``names`` that the call's schema has (given or its default);
    ``default`` when it has none of them. ``arg(call, "pad", "padding")`` reads both
    ``constant_pad_nd(self, pad)`` and ``reflection_pad2d(self, padding)``."""
    bound = bind(call)
    for name in names:
        value = bound.get(name, _MISSING)
        if value is not _MISSING:
            return value
    return default
