"""One traversal over the graph; each metric is a table of formulas plus a thin analyser.

Shapes, parameters and MACs are the primary figures. The secondary analyses (receptive field; the
accepted input sizes in :mod:`.sizes`) fail soft: a bug in one of them leaves its figures unknown
and adds a note naming the cause, and the report still stands."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, param
from ..frozen import fast_init
from ..graph import ModelGraph
from ..trace.records import Node, OpCall
from .flops import Cost, op_cost
from .params import NodeParams, ParamTotals, analyse_params, submodule
from .receptive_field import ReceptiveField, analyse_receptive_fields, error_text, failed
from .shapes import Shape, check_shape


@fast_init
@dataclass(frozen=True)
class NodeAnalysis:
    cost: Cost
    #: ATen ops this node ran that have no formula (their cost is unknown, not zero)
    unsupported: tuple[str, ...]
    params: NodeParams | None
    #: the analytic output shape, when a formula exists (already cross-checked)
    analytic_shape: Shape | None
    #: receptive field of the node's output (None: not derived from a spatial input)
    receptive_field: ReceptiveField | None = None


@dataclass(frozen=True)
class Analysis:
    nodes: dict[str, NodeAnalysis]
    params: ParamTotals
    #: one-line notes for the report: a secondary analysis that failed, and why
    notes: tuple[str, ...] = ()
    #: op (or ``"ClassName (module formula)"``) -> (calls, cost), every counted call once
    by_op: tuple[tuple[str, int, Cost], ...] = ()


#: formulas given for one analysis (``formulas=``): an op name (``"aten.foo"``, ``"mylib.op"``)
#: -> ``f(call: OpCall)``, or a module class -> ``f(node: Node)`` replacing the cost of every op
#: its calls ran; each returns a :class:`Cost`, or an int of MACs (FLOPs = 2·MACs)
Formulas = Mapping[Any, Callable[[Any], Any]]


class _Counter:
    """Per-node costs by the built-in table, with the analysis's own formulas taking precedence."""

    def __init__(self, graph: ModelGraph, formulas: Formulas) -> None:
        self.ops = {k: f for k, f in formulas.items() if isinstance(k, str)}
        self.modules = {k: f for k, f in formulas.items() if isinstance(k, type)}
        self.graph = graph
        #: op -> [calls, MACs, FLOPs], summed in place (no Cost made per call)
        self.by_op: dict[str, list[int]] = {}
        #: id(node.ops) -> (node.ops, its cost, unsupported ops, (op, cost) of each counted call)
        self._seen: dict[int, tuple[tuple[OpCall, ...], Cost, tuple[str, ...], tuple[tuple[str, Cost], ...]]] = {}

    def _count(self, key: str, cost: Cost) -> None:
        counts = self.by_op.get(key)
        if counts is None:
            self.by_op[key] = [1, cost.macs, cost.flops]
        else:
            counts[0] += 1
            counts[1] += cost.macs
            counts[2] += cost.flops

    def node_cost(self, node: Node) -> tuple[Cost, tuple[str, ...]]:
        if not self.ops and not self.modules:
            # The built-in table alone: a node's cost is a pure function of its calls (the formulas
            # read the call and nothing else), so it is worked out once per tuple of calls. The copies
            # of a repeated block share their first call's tuple (trace/block_records.py): 5,000
            # residual blocks are a handful of tuples, not 35,000 nodes. Keyed by the tuple's id with
            # the tuple held (no other object can take the id), for one analysis; each call is still
            # counted in by_op. A user's formulas may be anything, so they run for every node.
            seen = self._seen.get(id(node.ops))
            if seen is None or seen[0] is not node.ops:
                seen = self._seen[id(node.ops)] = (node.ops, *_table_cost(node.ops))
            for op, call_cost in seen[3]:
                self._count(op, call_cost)
            return seen[1], seen[2]
        module_formula = self._module_formula(node)
        if module_formula is not None:
            cls, formula = module_formula
            own = _as_cost(_apply(formula, node, cls.__name__, node.name), cls.__name__)
            self._count(f"{cls.__name__} (module formula)", own)
            return own, ()
        macs = flops = 0
        unsupported: list[str] = []
        for call in node.ops:
            given = self.ops.get(call.op)
            cost: Cost | None = (op_cost(call) if given is None
                                 else _as_cost(_apply(given, call, call.op, node.name), call.op))
            if cost is None:
                unsupported.append(call.op)
            else:
                self._count(call.op, cost)
                macs += cost.macs
                flops += cost.flops
        return Cost(macs, flops), tuple(unsupported)

    def _module_formula(self, node: Node) -> tuple[type, Callable[[Any], Any]] | None:
        if not self.modules or node.kind != "module":
            return None
        cls = type(submodule(self.graph.model, node.target))
        for key, formula in self.modules.items():
            if issubclass(cls, key):
                return key, formula
        return None


def _table_cost(calls: tuple[OpCall, ...]) -> tuple[Cost, tuple[str, ...], tuple[tuple[str, Cost], ...]]:
    """The cost of ``calls`` by the built-in table, the ops without a formula, and each counted call's cost."""
    counted = []
    unsupported = []
    macs = flops = 0
    for call in calls:
        cost = op_cost(call)
        if cost is None:
            unsupported.append(call.op)
        else:
            counted.append((call.op, cost))
            macs += cost.macs
            flops += cost.flops
    return Cost(macs, flops), tuple(unsupported), tuple(counted)


def _apply(formula: Callable[[Any], Any], value: Any, key: str, where: str) -> Any:
    try:
        return formula(value)
    except Exception as e:
        raise ConfigError(f"{param('formulas')}[{key}] raised {type(e).__name__} at {where!r}: {e}") from e


def _as_cost(value: Any, key: str) -> Cost:
    if isinstance(value, Cost):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return Cost(value, 2 * value)
    raise ConfigError(f"{param('formulas')}[{key}] returned {value!r}: return a cnnshape.Cost(macs, flops) "
                      "or a non-negative int of MACs")


def _receptive_fields(graph: ModelGraph) -> tuple[dict[str, ReceptiveField | None], tuple[str, ...]]:
    """Every node's RF and a note per failure of the analysis (rows it left unknown)."""
    try:
        rfs: dict[str, ReceptiveField | None] = analyse_receptive_fields(graph.nodes)
    except Exception as e:  # outside any one node: every RF unknown, the rest of the report stands
        rfs = {n.name: failed(e, n.output.shape) for n in graph.nodes if n.output is not None}
        return rfs, (f"receptive field not determined: cnnshape bug ({error_text(e)}); please report it",)
    by_failure: dict[str, list[str]] = {}  # failure -> the rows it left unknown, the first where it arose
    for name, rf in rfs.items():
        if rf is not None and rf.failure is not None:
            by_failure.setdefault(rf.failure, []).append(name)
    notes = []
    for failure, names in by_failure.items():
        more = " and the layers that depend on it" if len(names) > 1 else ""
        notes.append(f"receptive field not determined at {names[0]!r}{more}: cnnshape bug ({failure}); "
                     f"please report it")
    return rfs, tuple(notes)


def analyse(graph: ModelGraph, formulas: Formulas | None = None, receptive_field: bool = True) -> Analysis:
    """Every node's figures; ``formulas`` count ops or modules the built-in table does not know
    (or differently) for this analysis only. ``receptive_field=False`` skips that secondary
    analysis (every node's ``receptive_field`` is None): ``cnnshape scan`` records none."""
    node_params, totals = analyse_params(graph)
    rfs, notes = _receptive_fields(graph) if receptive_field else ({}, ())
    counter = _Counter(graph, formulas or {})
    # check_shape(node) reads only the node's calls (the shape formulas name the node in errors alone):
    # once per tuple of calls, as the costs are (_Counter.node_cost)
    shapes: dict[int, tuple[tuple[OpCall, ...], Shape | None]] = {}
    nodes = {}
    for node in graph.nodes:
        cost, unsupported = counter.node_cost(node)
        shape = shapes.get(id(node.ops))
        if shape is None or shape[0] is not node.ops:
            shape = shapes[id(node.ops)] = (node.ops, check_shape(node))
        nodes[node.name] = NodeAnalysis(cost, unsupported, node_params.get(node.name), shape[1], rfs.get(node.name))
    by_op = sorted(counter.by_op.items(), key=lambda item: (-item[1][2], item[0]))  # most FLOPs first
    return Analysis(nodes, totals, notes, tuple((op, calls, Cost(macs, flops)) for op, (calls, macs, flops) in by_op))

