"""A faster ``__init__`` for the frozen records built once per layer (or several times per layer).

A frozen dataclass's generated ``__init__`` stores each field with ``object.__setattr__``, the one
way past its own refusing ``__setattr__``: about a quarter of a microsecond per field, so a
19-field :class:`~cnnshape.report.LayerRecord` takes five microseconds to build, and a report of a
network with thousands of layers builds tens of thousands of such records. :func:`fast_init`
gives the class an ``__init__`` that writes the same values, in the same order, into the
instance's ``__dict__`` directly, which is where ``object.__setattr__`` puts them: the record is
the same (its equality, hash, repr, pickling, ``dataclasses.replace``/``fields``/``asdict`` all read
the fields from there); it stays frozen, since assignment still goes through the refusing
``__setattr__``. Torch-free, for the floor records.

The price: the instance's attributes then live in a dict of its own instead of CPython's inline
values, so each read is a few tens of nanoseconds slower and the record a little larger. It pays
for records built once and read a few times (a layer's row, an edge, a node's cost and
parameters), and for the receptive-field records (an axis, a place, a trail and its links, the
RF itself), built several per node of a traversal: the RF walk of 1,000 residual blocks took 7%
less time with it in an A/B run (benchmarks/post_trace_ab.py), its other changes aside.

Only plain records qualify (checked when the class is decorated, so a record that grows a
``__post_init__``, a ``default_factory``, a keyword-only or ``init=False`` field, or slots is
refused rather than built wrongly); tests/test_post_trace_fast.py and tests/test_rf_fast.py build
each decorated class both ways and compare.
"""
from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def fast_init(cls: type[T]) -> type[T]:
    """Replace the ``__init__`` of the frozen dataclass ``cls`` by one that fills ``__dict__``
    directly (same parameters, same defaults, same result); keeps the generated one as
    ``cls.__dataclass_init__`` for the tests that compare them."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or not params.init:
        raise TypeError(f"fast_init: {cls.__name__} is not a frozen dataclass with a generated __init__")
    if hasattr(cls, "__post_init__") or "__slots__" in cls.__dict__:
        raise TypeError(f"fast_init: {cls.__name__} has __post_init__ or slots")
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]  # a dataclass: checked above
    signature: list[str] = []
    defaults: dict[str, Any] = {}
    for f in fields:
        if not f.init or f.kw_only or f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"fast_init: field {cls.__name__}.{f.name} is not a plain positional field")
        if f.default is dataclasses.MISSING:
            signature.append(f.name)
        else:
            defaults[f"_default_{f.name}"] = f.default
            signature.append(f"{f.name}=_default_{f.name}")
    names = {f.name for f in fields}
    if "__fast_dict__" in names:
        raise TypeError(f"fast_init: {cls.__name__} has a field named as the generated __init__'s local")
    me = "__fast_self__" if "self" in names else "self"  # as dataclasses does for a field named self
    body = "\n".join(f"    __fast_dict__[{f.name!r}] = {f.name}" for f in fields) or "    pass"
    source = f"def __init__({me}, {', '.join(signature)}):\n    __fast_dict__ = {me}.__dict__\n{body}\n"
    namespace: dict[str, Any] = {}
    exec(source, defaults, namespace)  # noqa: S102  (the source is built above from the field names)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = cls.__init__.__doc__
    cls.__dataclass_init__ = cls.__init__  # type: ignore[attr-defined]
    cls.__init__ = init  # type: ignore[misc,method-assign]  # the point of the decorator
    return cls
