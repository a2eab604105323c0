"""Warnings about models that run but are almost certainly wrong, computed from any tracer's nodes.

Dimension 0 of the first model input is taken as the batch dimension.
"""
from __future__ import annotations

from collections.abc import Iterable

from .records import Node

#: Nodes that reshape a tensor: a change of dimension 0 here mixes samples of the batch.
RESHAPES = frozenset({"view", "reshape", "flatten", "Flatten"})


def _at(node: Node) -> str:
    return f" at {node.source}" if node.source else ""


def batch_warnings(nodes: Iterable[Node]) -> tuple[str, ...]:
    """A reshape that changes the batch size, and outputs whose batch size differs from the input's.

    A reshape is flagged when its input has the model's batch size in dimension 0 and its output
    does not, unless the output has 3+ dimensions and a multiple of the batch there (splitting
    channels into attention heads, ``(B, N, C) -> (B*h, N, C/h)``, is deliberate).
    """
    nodes = list(nodes)
    first = next((n for n in nodes if n.kind == "input" and n.output is not None and n.output.shape), None)
    if first is None:
        return ()
    assert first.output is not None
    batch = first.output.shape[0]
    found = []
    for n in nodes:
        if n.type in RESHAPES and n.kind != "output" and n.input_metas and n.output is not None:
            before, after = n.input_metas[0], n.output
            if not before.shape or not after.shape or before.shape[0] != batch or after.shape[0] == batch:
                continue
            if len(after.shape) > 2 and after.shape[0] % batch == 0:
                continue
            per_sample = before.numel // batch
            found.append(
                f"{n.type} {n.name!r}{_at(n)} changes the batch size from {batch} to {after.shape[0]} "
                f"({before} -> {after}); each sample has {per_sample} values here, so view(-1, {per_sample}) "
                f"(or flatten(1)) keeps the batch of {batch}"
            )
        elif n.kind == "output":
            for key, meta in n.outputs:
                if meta.shape and meta.shape[0] != batch:
                    label = f"output {key}" if key else "the output"
                    found.append(
                        f"{label} has batch size {meta.shape[0]} ({meta}) but the input {first.name!r} "
                        f"has batch size {batch}"
                    )
    return tuple(found)
