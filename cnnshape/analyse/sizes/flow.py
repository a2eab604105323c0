"""The traversal: every node output's shape as expressions of the studied input size, built by
the size rules of the ATen ops each node ran (in graph order, every source before its users).

A deep network repeats a few blocks many times, and the rules of a repeated node build the same
expressions over different sources; :class:`Transfers` runs them once per structure and replays
them for the nodes that repeat it (the module's largest cost otherwise)."""
from __future__ import annotations

from collections.abc import Sequence
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


_UNKNOWN = object()


@dataclass(frozen=True)
class _Template:
    """What one node's rules built, over its inputs' expressions ``over`` (in order of first
    appearance): the expressions it created (in creation order) and its output shapes."""

    over: tuple[Expr, ...]
    created: tuple[Expr, ...]
    outputs: tuple[Shape, ...]


class Transfers:
    """The size rules of one analysis (one graph, any of its axes), run once per node structure.

    The rules see a node through its calls (op, arguments, results), its output metas, its inputs'
    metas and its input shapes; of an expression among those dims they use only its identity
    (``is``, ``isinstance(d, Expr)``; never its period, id or value). Two nodes of one *kind* (equal
    calls and output metas, the same input metas) whose input shapes are equal once each expression
    is replaced by its rank of first appearance (``(1, 16, e0, 32)``) therefore make the rules do
    the same thing over different expressions. The first runs the rules (:func:`node_shapes`) and
    leaves a template; each later one gets the template's expressions rebuilt over its own
    (:meth:`Expr.rebuilt`: the constructor again, so periods are computed from the new sources),
    appended in the same order under its own name, and the template's output shapes over them: the
    very flow the rules would build. A node whose rules fail leaves no template (its flow ends
    there); one whose rules reach beyond its inputs' expressions is never replayed.

    Calls compare by value (``==``: ATen's arguments, each of the one Python type its schema
    gives it); metas by identity, which is exact while the graph holding them lives: a
    :class:`Transfers` serves the flows of one graph (one analysis) and goes with it. It holds one
    plan per node and at most one template per node and axis."""

    def __init__(self) -> None:
        #: the graph's nodes and, for each, its kind and, per input, (source, meta, which of the
        #: source's outputs of that meta it takes): what every axis's flow reads before the shapes
        self._nodes: tuple[Node, ...] = ()
        self._plans: list[tuple[int, tuple[tuple[str, TensorMeta, int], ...]]] = []
        #: (type, number of calls, output metas) -> the calls of each structure seen, with its number
        self._structures: dict[Any, list[tuple[tuple[OpCall, ...], int]]] = {}
        self._count = 0  #: structures numbered so far
        #: (structure, input metas) -> kind
        self._kinds: dict[tuple[int, tuple[int, ...]], int] = {}
        #: (kind, input pattern) -> the template, or None: run the rules every time
        self._known: dict[Any, _Template | None] = {}

    def plans(self, nodes: tuple[Node, ...]) -> list[tuple[int, tuple[tuple[str, TensorMeta, int], ...]]]:
        """Each node's kind and its inputs: (source, meta, index), the index-th use of one
        (source, meta) taking the index-th of the source's outputs that fit the meta."""
        if nodes is not self._nodes:  # made once for the graph (held, so the identities stay valid)
            self._nodes, self._plans = nodes, [self._plan(node) for node in nodes]
        return self._plans

    def _plan(self, node: Node) -> tuple[int, tuple[tuple[str, TensorMeta, int], ...]]:
        uses = [(source, meta, 0) for source, meta in zip(node.inputs, node.input_metas)]
        if len(uses) > 1:  # count the uses of each (source, meta)
            taken: dict[tuple[str, TensorMeta], int] = {}
            for i, (source, meta, _) in enumerate(uses):
                taken[(source, meta)] = taken.get((source, meta), -1) + 1
                uses[i] = (source, meta, taken[(source, meta)])
        kind = self._kinds.setdefault((self._structure(node), tuple(map(id, node.input_metas))), len(self._kinds))
        return kind, tuple(uses)

    def _structure(self, node: Node) -> int:
        # calls compared with == within a bucket rather than hashed: their metas are shared
        # records, so == mostly answers by identity, where a hash would hash every meta anew
        bucket = self._structures.setdefault((node.type, len(node.ops), tuple(id(m) for _, m in node.outputs)), [])
        for ops, number in bucket:
            if ops == node.ops:
                return number
        self._count += 1
        bucket.append((node.ops, self._count))
        return self._count

    def shapes(self, node: Node, kind: int, shapes: Sequence[Shape], exprs: list[Expr]) -> list[Shape]:
        """The shapes of ``node``'s outputs (of kind ``kind``) given its inputs' ``shapes``, the
        expressions they need appended to the flow's ``exprs``."""
        over: dict[Expr, int] = {}
        pattern = []
        for shape in shapes:
            dims = []
            for d in shape:
                if isinstance(d, Expr):  # an expression by its rank of first appearance: (0,)
                    d = (over.setdefault(d, len(over)),)
                dims.append(d)
            pattern.append(tuple(dims))
        if not over:  # nothing here depends on the input size (node_shapes' own first answer)
            return [m.shape for _, m in node.outputs]
        key = (kind, tuple(pattern))
        known = self._known.get(key, _UNKNOWN)
        if not isinstance(known, _Template):  # the first of its key, or one that can't be replayed
            b = NodeBuilder(node.name, tuple(T(m, s) for m, s in zip(node.input_metas, shapes)), exprs)
            return self._record(key, node, b, tuple(over)) if known is _UNKNOWN else node_shapes(node, b)
        swap = dict(zip(known.over, over))
        for e in known.created:
            made = swap[e] = e.rebuilt(swap, node.name)
            made.id, made.node = len(exprs), node.name  # as NodeBuilder.add
            exprs.append(made)
        return [tuple([swap[d] if isinstance(d, Expr) else d for d in shape]) for shape in known.outputs]

    def _record(self, key: Any, node: Node, b: NodeBuilder, over: tuple[Expr, ...]) -> list[Shape]:
        start = len(b.exprs)
        outputs = node_shapes(node, b)
        created = tuple(b.exprs[start:])
        seen = set(over)
        closed = True  # every expression it uses is one of its inputs' or one it created
        for e in created:
            closed = closed and all(s in seen for s in e.sources())
            seen.add(e)
        closed = closed and all(d in seen for shape in outputs for d in shape if isinstance(d, Expr))
        self._known[key] = _Template(over, created, tuple(outputs)) if closed else None
        return outputs


@dataclass(frozen=True)
class Flow:
    """Every node output's shape as expressions, or why the axis can't be characterised."""

    exprs: tuple[Expr, ...]
    shapes: dict[str, list[tuple[str, Shape]]]
    reason: str | None


def build_flow(graph: ModelGraph, axis: int, transfers: Transfers | None = None) -> Flow:
    """The flow of ``axis``; ``transfers`` may be shared by the flows of one graph's axes.

    Equal shapes are kept as one tuple (``canon``), so that a node of a kind already seen, on the
    very same input shapes, whose rules created no expression, takes that node's outputs (``same``):
    the rules are a function of the kind and the input shapes and would give equal ones. Both
    dicts hold what this flow's ``shapes`` hold, so the identities they are keyed by stay valid."""
    transfers = Transfers() if transfers is None else transfers
    exprs: list[Expr] = []
    var = NodeBuilder("", (), exprs).add(Var())
    shapes: dict[str, list[tuple[str, Shape]]] = {}
    canon: dict[Shape, Shape] = {}
    same: dict[tuple[int, ...], list[Shape]] = {}
    first_input = True
    for node, (kind, uses) in zip(graph.nodes, transfers.plans(graph.nodes)):
        if node.kind == "input":
            shape: Shape = node.outputs[0][1].shape if node.outputs else ()
            if first_input:
                shape = tuple(var if i == axis else d for i, d in enumerate(shape))
                first_input = False
            shapes[node.name] = [("", shape)]
            continue
        inputs: list[Shape] = []
        for source, meta, index in uses:
            outs = shapes.get(source, ())
            if len(outs) == 1:  # a source of one output, nearly every edge: the general case below, without its list
                one = outs[0][1]
                inputs.append(one if _traced(one, meta) else meta.shape)
                continue
            candidates = [s for _, s in outs if _traced(s, meta)]
            inputs.append(candidates[index % len(candidates)] if candidates else meta.shape)
        seen = (kind, *map(id, inputs))
        computed = same.get(seen)
        if computed is None:
            before = len(exprs)
            try:
                computed = [canon.setdefault(s, s) for s in transfers.shapes(node, kind, inputs, exprs)]
            except Uncharacterised as e:
                return Flow(tuple(exprs), shapes, f"{node.name} ({node.type}): {e}")
            if len(exprs) == before:
                same[seen] = computed
        shapes[node.name] = [(key, s) for (key, _), s in zip(node.outputs, computed)]
    return Flow(tuple(exprs), shapes, None)


def _traced(shape: Shape, meta: TensorMeta) -> bool:
    """Whether ``shape`` can be the traced ``meta``'s: same rank, every constant dim equal."""
    traced = meta.shape
    if shape is traced:
        return True
    if len(shape) != len(traced):
        return False
    for d, m in zip(shape, traced):  # a loop, not all(<generator>): this runs for every edge
        if d != m and not isinstance(d, Expr):
            return False
    return True
