"""The traced model as a graph: frozen node records in execution order, their tensor edges, and
the module hierarchy (qualified name -> class name) used to group and collapse rows."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

from torch import nn

from .frozen import fast_init
from .trace.modules import module_type_name
from .trace.records import Node, TensorMeta, Trace
from .trace.walk import module_paths


@fast_init
@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    meta: TensorMeta


@dataclass(frozen=True)
class ModelGraph:
    trace: Trace
    model: nn.Module
    #: every submodule's qualified name -> class name ("" is the root)
    modules: dict[str, str]
    #: every submodule's qualified name -> the module, shared ones under each path (one walk of
    #: the tree, read by the analyses instead of walking it again)
    paths: dict[str, nn.Module] = field(default_factory=dict, compare=False, repr=False)

    @property
    def nodes(self) -> tuple[Node, ...]:
        return self.trace.nodes

    def node(self, name: str) -> Node:
        return self._by_name[name]

    @cached_property
    def _by_name(self) -> dict[str, Node]:
        return {n.name: n for n in self.trace.nodes}

    def edges(self) -> Iterator[Edge]:
        """One edge per tensor a node consumes (a node that uses a tensor twice has two)."""
        for node in self.trace.nodes:
            for source, meta in zip(node.inputs, node.input_metas):
                yield Edge(source, node.name, meta)


def build_graph(trace: Trace, model: nn.Module) -> ModelGraph:
    paths = module_paths(model)
    return ModelGraph(trace, model, {name: module_type_name(m) for name, m in paths.items()}, paths)
