"""One traversal over the graph; each metric is a table of formulas plus a thin analyser.

Shapes, parameters and MACs are the primary figures. The secondary analyses (receptive field; the
accepted input sizes in :mod:`.sizes`) fail soft: a bug in one of them leaves its figures unknown
and adds a note naming the cause, and the report still stands."""
from __future__ import annotations

from dataclasses import dataclass

from ..graph import ModelGraph
from ..trace.records import Node
from .flops import Cost, op_cost
from .params import NodeParams, ParamTotals, analyse_params
from .receptive_field import ReceptiveField, analyse_receptive_fields, error_text, failed
from .shapes import Shape, check_shape


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


def _cost(node: Node) -> tuple[Cost, tuple[str, ...]]:
    total, unsupported = Cost(), []
    for call in node.ops:
        cost = op_cost(call)
        if cost is None:
            unsupported.append(call.op)
        else:
            total = total + cost
    return total, tuple(unsupported)


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


def analyse(graph: ModelGraph) -> Analysis:
    node_params, totals = analyse_params(graph)
    rfs, notes = _receptive_fields(graph)
    nodes = {}
    for node in graph.nodes:
        cost, unsupported = _cost(node)
        nodes[node.name] = NodeAnalysis(cost, unsupported, node_params.get(node.name), check_shape(node),
                                         rfs.get(node.name))
    return Analysis(nodes, totals, notes)


__all__ = ["Analysis", "NodeAnalysis", "analyse", "Cost"]
