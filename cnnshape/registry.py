"""The one registry mechanism: per-op tables (FLOP formulas, shape formulas, meta kernels) filled by a
decorator that rejects duplicates. At the bottom of the house: every stage may use it."""
from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
F = TypeVar("F", bound=Callable[..., object])


class Registry(Generic[K, F]):
    """A named table from op keys (ATen op names, module types) to formulas."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._table: dict[K, F] = {}

    def register(self, *keys: K) -> Callable[[F], F]:
        """Decorator: ``@FLOPS.register("aten.mm")``. Registering a key twice is an error."""

        def add(fn: F) -> F:
            self.add(fn, *keys)
            return fn

        return add

    def add(self, fn: F, *keys: K) -> None:
        for key in keys:
            if key in self._table:
                raise ValueError(f"{self.name}: a formula for {key!r} is already registered")
            self._table[key] = fn

    def get(self, key: K) -> F | None:
        return self._table.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._table

    def __iter__(self) -> Iterator[K]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)


@functools.cache
def is_pointwise(op: str) -> bool:
    """Whether torch tags the ATen op ``op`` (``"aten.atan"``) as element-wise (``Tag.pointwise``):
    the output is the broadcast of the inputs. The fallback of the tables keyed by op."""
    import torch

    packet = getattr(torch.ops.aten, op.removeprefix("aten."), None) if op.startswith("aten.") else None
    if packet is None:
        return False
    return any(torch.Tag.pointwise in getattr(packet, name).tags for name in packet.overloads())
