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
from .rules import SIZE_RULES, all_tensors, rule_for

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
        """The call's arguments by schema name (bound once), each tensor matched, in argument order;
        the model's parameters and buffers (``call.state``) are constants, whatever they look like."""
        if call.state:
            state = call.state_names()
            return {name: T(value, value.shape) if name in state and isinstance(value, TensorMeta) else self.wrap(value)
                    for name, value in call.bound().items()}
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

#: one input of a node: (the index of its source node, -1 if none; the meta it takes; which of the
#: source's outputs of that meta it takes, the index-th use of one (source, meta) the index-th)
Use = tuple[int, TensorMeta, int]
#: a node's kind (-1 for an input node), its inputs, and their sources' indices where each has one
#: output (None otherwise)
Plan = tuple[int, tuple[Use, ...], "tuple[int, ...] | None"]


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
    plan per node and at most one template per node and axis, unless ``shared`` (:class:`SharedTemplates`)
    holds the templates, by value, for the analyses of many graphs."""

    def __init__(self, shared: SharedTemplates | None = None) -> None:
        self._shared = shared
        self._reset()

    def _reset(self) -> None:
        """Empty, for a graph: what follows is keyed by the identities of one graph's records."""
        #: the graph's nodes and, for each, its :data:`Plan`: what every axis's flow reads before the shapes
        self._nodes: tuple[Node, ...] = ()
        self._plans: list[Plan] = []
        #: (type, number of calls, output keys and metas) -> the calls of each structure seen, with its number
        self._structures: dict[Any, list[tuple[tuple[OpCall, ...], int]]] = {}
        self._count = 0  #: structures numbered so far
        #: (structure, input metas) -> kind
        self._kinds: dict[tuple[int, tuple[int, ...]], int] = {}
        #: the identities of a node's calls, type, output keys and metas, input metas -> its kind
        self._signs: dict[tuple[Any, ...], int] = {}
        #: kind -> (input pattern -> the template, or None: run the rules every time)
        self._known: dict[int, dict[Any, _Template | None]] = {}

    def plans(self, nodes: tuple[Node, ...]) -> list[Plan]:
        """Each node's :data:`Plan`, made once for the graph (held, so the identities stay valid)."""
        if nodes is not self._nodes:
            if self._nodes:  # another graph: the identities of the last one's records may be reused
                self._reset()
            plans: list[Plan] = []
            where: dict[str, int] = {}  # the nodes before this one, by name: its possible sources
            single: list[bool] = []
            for i, node in enumerate(nodes):
                plans.append(self._plan(node, where, single))
                where[node.name] = i
                single.append(len(node.outputs) == 1)
            self._nodes, self._plans = nodes, plans
        return self._plans

    def _plan(self, node: Node, where: dict[str, int], single: list[bool]) -> Plan:
        if node.kind == "input":
            return -1, (), None
        sources, metas = node.inputs, node.input_metas
        if len(sources) == 1 == len(metas):  # nearly every node: the general case below, without its loops
            i = where.get(sources[0], -1)
            uses: Any = ((i, metas[0], 0),)
            ones = (i,) if i >= 0 and single[i] else None
        else:
            # a use of a source of one output takes that output: its index is never read (0)
            uses = [(where.get(source, -1), meta, 0) for source, meta in zip(sources, metas)]
            ones = tuple(i for i, _, _ in uses) if all(i >= 0 and single[i] for i, _, _ in uses) else None
            if ones is None:  # the index-th use of one (source, meta) takes the index-th fitting output
                taken: dict[tuple[int, TensorMeta], int] = {}
                for j, (i, meta, _) in enumerate(uses):
                    taken[(i, meta)] = taken.get((i, meta), -1) + 1
                    uses[j] = (i, meta, taken[(i, meta)])
            uses = tuple(uses)
        # the kind by the identities of the calls, output and input metas first: repeated blocks
        # share their records, so most nodes are found there without comparing their calls
        outputs = node.outputs
        if len(outputs) == 1 == len(metas):
            sign: tuple[Any, ...] = (id(node.ops), node.type, outputs[0][0], id(outputs[0][1]), id(metas[0]))
        else:  # its third item a tuple, never a key (a str): apart from the above
            sign = (id(node.ops), node.type, tuple(k for k, _ in outputs), tuple(id(m) for _, m in outputs),
                    tuple(map(id, metas)))
        kind = self._signs.get(sign)
        if kind is None:
            kind = self._signs[sign] = self._kinds.setdefault((self._structure(node), tuple(map(id, metas))),
                                                              len(self._kinds))
        return kind, uses, ones

    def _structure(self, node: Node) -> int:
        # calls compared with == within a bucket rather than hashed: their metas are shared
        # records, so == mostly answers by identity, where a hash would hash every meta anew. The
        # output keys are part of it so that nodes of one kind give one list of (key, shape) pairs.
        outputs = node.outputs
        if len(outputs) == 1:
            key: Any = (node.type, len(node.ops), outputs[0][0], id(outputs[0][1]))
        else:
            key = (node.type, len(node.ops), tuple(k for k, _ in outputs), tuple(id(m) for _, m in outputs))
        bucket = self._structures.setdefault(key, [])
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
        templates = self._known.get(kind)
        if templates is None:
            templates = self._known[kind] = {} if self._shared is None else self._shared.of(node)
        key = tuple(pattern)
        known = templates.get(key, _UNKNOWN)
        if not isinstance(known, _Template):  # the first of its key, or one that can't be replayed
            b = NodeBuilder(node.name, tuple(T(m, s) for m, s in zip(node.input_metas, shapes)), exprs)
            return self._record(templates, key, node, b, tuple(over)) if known is _UNKNOWN else node_shapes(node, b)
        swap = dict(zip(known.over, over))
        for e in known.created:
            made = swap[e] = e.rebuilt(swap, node.name)
            made.id, made.node = len(exprs), node.name  # as NodeBuilder.add
            exprs.append(made)
        return [tuple([swap[d] if isinstance(d, Expr) else d for d in shape]) for shape in known.outputs]

    def _record(self, templates: dict[Any, _Template | None], key: Any, node: Node, b: NodeBuilder,
                over: tuple[Expr, ...]) -> list[Shape]:
        start = len(b.exprs)
        outputs = node_shapes(node, b)
        created = tuple(b.exprs[start:])
        seen = set(over)
        closed = True  # every expression it uses is one of its inputs' or one it created
        for e in created:
            closed = closed and all(s in seen for s in e.sources())
            seen.add(e)
        closed = closed and all(d in seen for shape in outputs for d in shape if isinstance(d, Expr))
        templates[key] = _Template(over, created, tuple(outputs)) if closed else None
        return outputs


class SharedTemplates:
    """The templates of :class:`Transfers` kept across the analyses of many graphs (a scan worker
    analyses thousands of networks built of the same few layers), keyed by value.

    A template is a function of its node's kind and its input pattern (:class:`Transfers`): the
    calls (compared by value already), the output metas and the input metas, which across graphs
    can only compare by value (``==``; what the rules read of a meta is its shape and dtype). The
    key is those, hashed, with the node's type. The size rules' registry only grows (it refuses a
    second rule for an op); a rule added since could change what a node's rules build (an op that
    had none, an element-wise op that took the broadcasting default), so the store empties itself
    when the registry's size changes. At most ``limit`` kinds are kept, the least recently used
    dropped first; a kind whose calls cannot be hashed is not shared."""

    def __init__(self, limit: int = 2048) -> None:
        self.limit = limit
        self._kinds: dict[Any, dict[Any, _Template | None]] = {}
        self._rules = len(SIZE_RULES)

    def of(self, node: Node) -> dict[Any, _Template | None]:
        """The templates of ``node``'s kind (a new, empty table for a kind not seen)."""
        if len(SIZE_RULES) != self._rules:
            self._kinds.clear()
            self._rules = len(SIZE_RULES)
        key = (node.type, node.ops, tuple(m for _, m in node.outputs), node.input_metas)
        try:
            templates = self._kinds.pop(key, None)
        except TypeError:  # an argument that cannot be hashed: this kind is not shared
            return {}
        if templates is None:
            templates = {}
            if len(self._kinds) >= self.limit:
                del self._kinds[next(iter(self._kinds))]  # the least recently used: first in order
        self._kinds[key] = templates  # last in order: the most recently used
        return templates


@dataclass(frozen=True)
class Flow:
    """Every node output's shape as expressions, or why the axis can't be characterised."""

    exprs: tuple[Expr, ...]
    shapes: dict[str, list[tuple[str, Shape]]]
    reason: str | None
    #: the indices of the nodes whose outputs the rules gave (or a template replayed); every other
    #: node repeats an earlier one of these: same kind (so the same output keys and metas) on the
    #: same input shapes, and took its very list of (key, shape) pairs
    firsts: tuple[int, ...] = ()


def build_flow(graph: ModelGraph, axis: int, transfers: Transfers | None = None) -> Flow:
    """The flow of ``axis``; ``transfers`` may be shared by the flows of one graph's axes.

    Equal shapes are kept as one tuple (``canon``), so that a node of a kind already seen, on the
    very same input shapes, whose rules created no expression, takes that node's outputs (``same``):
    the rules are a function of the kind and the input shapes and would give equal ones. Both
    dicts hold what this flow's ``shapes`` hold, so the identities they are keyed by stay valid.

    ``same`` is keyed by the kind and the shapes of the node's sources, before each is fitted to
    the meta the node takes (:func:`_fitted`), where every input comes from a source of one output
    (nearly every node): the kind fixes those metas (by identity), and the fitting is a function of
    the shape and the meta, so those shapes decide the inputs; a node found there costs a lookup."""
    transfers = Transfers() if transfers is None else transfers
    exprs: list[Expr] = []
    var = NodeBuilder("", (), exprs).add(Var())
    shapes: dict[str, list[tuple[str, Shape]]] = {}
    outs: list[list[Shape]] = []  # by node index: its output shapes
    canon: dict[Shape, Shape] = {}
    same: dict[tuple[Any, ...], tuple[list[Shape], list[tuple[str, Shape]]]] = {}
    firsts: list[int] = []
    first_input = True
    for i, (node, (kind, uses, ones)) in enumerate(zip(graph.nodes, transfers.plans(graph.nodes))):
        if kind < 0:  # an input
            shape: Shape = node.outputs[0][1].shape if node.outputs else ()
            if first_input:
                shape = tuple(var if j == axis else d for j, d in enumerate(shape))
                first_input = False
            outs.append([shape])
            shapes[node.name] = [("", shape)]
            firsts.append(i)
            continue
        if ones is not None:
            if len(ones) == 1:  # most nodes: the line below for one source
                sources = [outs[ones[0]][0]]
                seen: tuple[Any, ...] = (kind, id(sources[0]))
            else:
                sources = [outs[j][0] for j in ones]
                seen = (kind, *map(id, sources))
            known = same.get(seen)
            if known is not None:
                outs.append(known[0])
                shapes[node.name] = known[1]
                continue
            inputs = [s if _traced(s, meta) else meta.shape for s, (_, meta, _) in zip(sources, uses)]
        else:
            inputs = [_fitted(outs[j] if j >= 0 else [], meta, index) for j, meta, index in uses]
            seen = ((kind,), *map(id, inputs))  # inputs as fitted: (kind,) keeps these keys apart
            known = same.get(seen)
            if known is not None:
                outs.append(known[0])
                shapes[node.name] = known[1]
                continue
        before = len(exprs)
        try:
            computed = [canon.setdefault(s, s) for s in transfers.shapes(node, kind, inputs, exprs)]
        except Uncharacterised as e:
            return Flow(tuple(exprs), shapes, f"{node.name} ({node.type}): {e}", tuple(firsts))
        pairs = [(key, s) for (key, _), s in zip(node.outputs, computed)]
        if len(exprs) == before:
            same[seen] = (computed, pairs)
        outs.append(computed)
        shapes[node.name] = pairs
        firsts.append(i)
    return Flow(tuple(exprs), shapes, None, tuple(firsts))


def _fitted(outs: list[Shape], meta: TensorMeta, index: int) -> Shape:
    """The input a node takes of ``meta`` from a source with outputs ``outs``: the index-th of
    those that fit the meta (cycling), the meta's constant shape if none does."""
    if len(outs) == 1:  # the general case below, without its list
        return outs[0] if _traced(outs[0], meta) else meta.shape
    candidates = [s for s in outs if _traced(s, meta)]
    return candidates[index % len(candidates)] if candidates else meta.shape


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
