"""Parameters: each node's own, shared ones marked, and the model totals (shared counted once)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..graph import ModelGraph
from ..trace.records import Node


@dataclass(frozen=True)
class NodeParams:
    #: the layer's own parameter count, bias included (also when shared)
    params: int
    #: how many of them are counted for the first time at this node (0 for a repeat)
    new_params: int
    trainable: int
    #: name of the node that first counted the shared parameters, when there are any
    shared_with: str | None


@dataclass(frozen=True)
class ParamTotals:
    params: int
    trainable_params: int
    non_trainable_params: int
    buffers: int
    param_bytes: int
    buffer_bytes: int
    #: parameters of the model that no traced node uses
    unused_params: int


def _node_tensors(graph: ModelGraph, node: Node) -> list[torch.Tensor]:
    if node.kind == "module":
        return list(graph.model.get_submodule(node.target).parameters())
    if node.kind == "attribute":
        value = _get_attr(graph.model, node.target)
        return [value] if isinstance(value, nn.Parameter) else []
    return []


def _get_attr(model: nn.Module, path: str) -> object:
    owner, _, attr = path.rpartition(".")
    return getattr(model.get_submodule(owner) if owner else model, attr)


def analyse_params(graph: ModelGraph) -> tuple[dict[str, NodeParams], ParamTotals]:
    first_owner: dict[int, str] = {}
    per_node: dict[str, NodeParams] = {}
    for node in graph.nodes:
        tensors = _node_tensors(graph, node)
        if not tensors:
            continue
        new = [p for p in tensors if id(p) not in first_owner]
        repeats = [p for p in tensors if id(p) in first_owner]
        shared_with = first_owner[id(repeats[0])] if repeats else None
        for p in new:
            first_owner[id(p)] = node.name
        per_node[node.name] = NodeParams(
            params=sum(p.numel() for p in tensors),
            new_params=sum(p.numel() for p in new),
            trainable=sum(p.numel() for p in tensors if p.requires_grad),
            shared_with=shared_with,
        )
    params = list(graph.model.parameters())  # deduplicated by torch
    buffers = list(graph.model.buffers())
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    used = sum(p.numel() for p in params if id(p) in first_owner)
    totals = ParamTotals(
        params=total,
        trainable_params=trainable,
        non_trainable_params=total - trainable,
        buffers=sum(b.numel() for b in buffers),
        param_bytes=sum(p.numel() * p.element_size() for p in params),
        buffer_bytes=sum(b.numel() * b.element_size() for b in buffers),
        unused_params=total - used,
    )
    return per_node, totals
