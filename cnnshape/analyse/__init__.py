"""One traversal over the graph; each metric is a table of formulas plus a thin analyser."""
from __future__ import annotations

from dataclasses import dataclass

from ..graph import ModelGraph
from ..trace.records import Node
from .flops import Cost, op_cost
from .params import NodeParams, ParamTotals, analyse_params
from .receptive_field import ReceptiveField, analyse_receptive_fields
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


def _cost(node: Node) -> tuple[Cost, tuple[str, ...]]:
    total, unsupported = Cost(), []
    for call in node.ops:
        cost = op_cost(call)
        if cost is None:
            unsupported.append(call.op)
        else:
            total = total + cost
    return total, tuple(unsupported)


def analyse(graph: ModelGraph) -> Analysis:
    node_params, totals = analyse_params(graph)
    rfs = analyse_receptive_fields(graph.nodes)
    nodes = {}
    for node in graph.nodes:
        cost, unsupported = _cost(node)
        nodes[node.name] = NodeAnalysis(cost, unsupported, node_params.get(node.name), check_shape(node),
                                         rfs[node.name])
    return Analysis(nodes, totals)


__all__ = ["Analysis", "NodeAnalysis", "analyse", "Cost"]
