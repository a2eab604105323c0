"""The traversal: every node output's shape as expressions of the studied input size, built by
the size rules of the ATen ops each node ran (in graph order, every source before its users)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...trace.records import Node, OpCall, TensorMeta
from .expr import Expr, NodeBuilder, Shape, T, Uncharacterised, Var
from .rules import all_tensors, rule_for

if TYPE_CHECKING:
    from ...graph import ModelGraph


class _Pool:
    """Matches an op's tensor arguments (known only by their meta) to the node's inputs and to
    the outputs of earlier ops in the same node; anything else (a parameter) is constant."""

    def __init__(self, inputs: tuple[T, ...]) -> None:
        self.inputs = inputs
        self.used = [False] * len(inputs)
        self.produced: list[T] = []

    def resolve(self, meta: TensorMeta) -> T:
        # records are shared per (shape, dtype), so ``is`` answers most comparisons before ``==``
        for t in reversed(self.produced):
            if t.meta is meta or t.meta == meta:
                return t
        for i, t in enumerate(self.inputs):
            if (t.meta is meta or t.meta == meta) and not self.used[i]:
                self.used[i] = True
                return t
        for t in self.inputs:
            if t.meta is meta or t.meta == meta:
                return t
        return T(meta, meta.shape)

    def wrap(self, value: Any) -> Any:
        if isinstance(value, TensorMeta):
            return self.resolve(value)
        if isinstance(value, tuple) and not all(type(v) is int for v in value):  # (1, 1) strides: as they are
            return tuple(self.wrap(v) for v in value)
        return value

    def bind(self, call: OpCall) -> dict[str, Any]:
        """The call's arguments by schema name (bound once), each tensor matched, in argument order."""
        return {name: self.wrap(value) for name, value in call.bound().items()}


def node_shapes(node: Node, b: NodeBuilder) -> list[Shape]:
    """The shapes of the node's outputs, built by the size rules of the ops it ran."""
    if not any(t.symbolic for t in b.inputs):
        return [m.shape for _, m in node.outputs]
    pool = _Pool(b.inputs)
    for call in node.ops:
        rule = rule_for(call.op)
        if rule is not None:
            shapes = rule(call, pool.bind(call), b)
        elif not any(t.symbolic for t in all_tensors(pool.wrap(call.args))):  # no names needed here
            shapes = [m.shape for m in call.outputs]
        else:
            raise Uncharacterised(f"no size rule for {call.op}")
        pool.produced += [T(m, s) for m, s in zip(call.outputs, shapes)]
    out = []
    for _, meta in node.outputs:
        match = next((t for t in reversed(pool.produced) if t.meta == meta), None)
        if match is None:
            match = next((t for t in b.inputs if t.meta == meta), None)
        if match is None:
            raise Uncharacterised("its output matches none of its ops' results")
        out.append(match.shape)
    return b.settle(out)


@dataclass(frozen=True)
class Flow:
    """Every node output's shape as expressions, or why the axis can't be characterised."""

    exprs: tuple[Expr, ...]
    shapes: dict[str, list[tuple[str, Shape]]]
    reason: str | None


def build_flow(graph: ModelGraph, axis: int) -> Flow:
    exprs: list[Expr] = []
    var = NodeBuilder("", (), exprs).add(Var())
    shapes: dict[str, list[tuple[str, Shape]]] = {}
    first_input = True
    for node in graph.nodes:
        if node.kind == "input":
            shape: Shape = node.outputs[0][1].shape if node.outputs else ()
            if first_input:
                shape = tuple(var if i == axis else d for i, d in enumerate(shape))
                first_input = False
            shapes[node.name] = [("", shape)]
            continue
        inputs: list[T] = []
        taken: dict[Any, Any] = {}
        for source, meta in zip(node.inputs, node.input_metas):
            outs = shapes.get(source, [])
            candidates = [s for _, s in outs if _traced(s, meta)]
            index = taken.get((source, meta), 0)
            taken[(source, meta)] = index + 1
            inputs.append(T(meta, candidates[index % len(candidates)] if candidates else meta.shape))
        try:
            computed = node_shapes(node, NodeBuilder(node.name, tuple(inputs), exprs))
        except Uncharacterised as e:
            return Flow(tuple(exprs), shapes, f"{node.name} ({node.type}): {e}")
        shapes[node.name] = [(key, s) for (key, _), s in zip(node.outputs, computed)]
    return Flow(tuple(exprs), shapes, None)


def _traced(shape: Shape, meta: TensorMeta) -> bool:
    return len(shape) == len(meta.shape) and all(isinstance(d, Expr) or d == m for d, m in zip(shape, meta.shape))
