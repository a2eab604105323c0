"""The frozen records every tracer emits. Later stages read them and never write back."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Any, Literal

NodeKind = Literal["input", "module", "function", "method", "attribute", "output"]


@dataclass(frozen=True)
class TensorMeta:
    """Shape and dtype of one tensor (nothing else about it is kept)."""

    shape: tuple[int, ...]
    dtype: str
    itemsize: int

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.numel * self.itemsize

    def __str__(self) -> str:
        return "x".join(str(d) for d in self.shape) if self.shape else "scalar"


@dataclass(frozen=True)
class OpCall:
    """One ATen operation executed on meta tensors while a node ran.

    ``args``/``kwargs`` are the operation's arguments with every tensor replaced by its
    :class:`TensorMeta` and lists turned into tuples, so formulas are pure functions of them.
    """

    op: str  #: overload packet name, e.g. ``"aten.convolution"``
    args: tuple[Any, ...]
    kwargs: tuple[tuple[str, Any], ...]
    outputs: tuple[TensorMeta, ...]
    #: the overload that ran (``"default"``, ``"Tensor"``, ``"sizes"``): which schema names the args
    overload: str = "default"
    #: the positions in ``args`` of the model's own parameters and buffers: a meta says only a
    #: tensor's shape and dtype, and a Linear's weight (64, 16) looks like its folded input (64, 16)
    state: tuple[int, ...] = ()

    def bound(self) -> Mapping[str, Any]:
        """Every argument by its schema name, the schema's defaults filling those not given
        (read-only; bound once per call, since every analysis reads the same arguments)."""
        return self._bound

    @cached_property
    def _bound(self) -> Mapping[str, Any]:
        from .schema import signature

        names, defaults = signature(self.op, self.overload, len(self.args), tuple(k for k, _ in self.kwargs))
        bound = dict(defaults)
        bound.update(zip(names, self.args))
        bound.update(self.kwargs)
        return MappingProxyType(bound)

    def state_names(self) -> frozenset[str]:
        """The schema names of the arguments that are the model's parameters or buffers."""
        if not self.state:
            return frozenset()
        from .schema import signature

        names = signature(self.op, self.overload, len(self.args), tuple(k for k, _ in self.kwargs))[0]
        return frozenset(names[i] for i in self.state if i < len(names))

    def arg(self, *names: str, default: Any = None) -> Any:
        """The value of the first of ``names`` the call's schema has (given, or its default);
        ``default`` when it has none of them. ``call.arg("pad", "padding")`` reads both
        ``constant_pad_nd(self, pad)`` and ``reflection_pad2d(self, padding)``."""
        bound = self._bound  # bound(), without the call: formulas read tens of thousands of arguments
        for name in names:
            if name in bound:
                return bound[name]
        return default


@dataclass(frozen=True)
class Node:
    """One node of the traced graph: a leaf module call, a tensor function/method, an input or output."""

    #: unique qualified name: the module path ("layer1.0.conv1", "enc#2" for a second call),
    #: "scope.function" for tensor functions ("layer1.0.add"), the argument name for inputs
    name: str
    kind: NodeKind
    #: module path for ``module``/``attribute`` nodes, function or method name otherwise
    target: str
    #: qualified name of the module whose forward this node ran in ("" for the root)
    scope: str
    #: class name of the leaf module (``"Conv2d"``), or the function/method name
    type: str
    #: names of the nodes whose outputs this node consumes, in argument order (repeats allowed)
    inputs: tuple[str, ...]
    input_metas: tuple[TensorMeta, ...]
    #: flattened outputs: (key, meta); key is "" for a single tensor, else e.g. "[0]" or "['logits']"
    outputs: tuple[tuple[str, TensorMeta], ...]
    ops: tuple[OpCall, ...] = ()
    #: hyper-parameters of a leaf module (kernel_size, stride, ...), as (name, value) pairs
    attrs: tuple[tuple[str, Any], ...] = ()
    #: "file.py:12" of the user's line that called this node, when known
    source: str | None = None
    #: bytes of new storage the outputs occupy (views and in-place results add nothing)
    new_bytes: int = 0
    #: 1 for the first call of a module, 2 for the second, ... (shared weights)
    call_index: int = 1

    @property
    def output(self) -> TensorMeta | None:
        """The single (or first) output tensor."""
        return self.outputs[0][1] if self.outputs else None

    def attr(self, key: str, default: Any = None) -> Any:
        for k, v in self.attrs:
            if k == key:
                return v
        return default


@dataclass(frozen=True)
class Trace:
    """What a tracer produces: nodes in execution order plus how they were obtained."""

    nodes: tuple[Node, ...]
    tracer: Literal["fx", "eager"]
    #: one line on why the fx tracer was not used, when the fallback ran
    fallback_reason: str | None = None
    #: warnings about things that ran but are probably wrong
    warnings: tuple[str, ...] = ()
    #: where the forward reads a tensor size other than the batch into a Python value
    #: (``x.shape[2]``, ``x.size(-1)``): sizes one trace sees as constants
    size_reads: tuple[str, ...] = ()
