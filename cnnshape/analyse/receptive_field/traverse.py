"""The traversal: every node's RF from its producers' RFs and the rules of the ops it ran.

Where branches meet the RF is the union of theirs. Unknown stays unknown and global stays global,
whatever the op.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ...registry import is_pointwise
from ...trace.records import Node, OpCall, TensorMeta
from .records import AxisRF, ReceptiveField, Source, failed, identity, spatial_rf, unknown_rf
from .rules import RF_RULES, out_shape, unchanged

# --- merges ---------------------------------------------------------------------------------


def _union_axis(axes: Sequence[AxisRF]) -> tuple[AxisRF, bool]:
    """Union of the branches' boxes of unit 0; aligned when all centres and jumps agree."""
    source: Source | None = ("union", (), tuple(axes)) if any(a.source for a in axes) else None
    if any(a.size is None for a in axes):
        return AxisRF(None, max(a.jump for a in axes), axes[0].start), True
    jumps, starts = {a.jump for a in axes}, {a.start for a in axes}
    if len(jumps) == 1 and len(starts) == 1:
        size = max(a.size for a in axes)  # type: ignore[type-var]
        return AxisRF(size, axes[0].jump, axes[0].start, source), True
    lo = min(a.box(0)[0] for a in axes)
    hi = max(a.box(0)[1] for a in axes)
    return AxisRF(hi - lo + 1, max(jumps), (lo + hi) / 2, source), False


def merge(rfs: Sequence[ReceptiveField]) -> ReceptiveField:
    """Where branches meet (add, mul, cat, ...): the union of their RFs."""
    aligned = all(rf.aligned for rf in rfs)
    shape = rfs[0].shape
    for kind in ("unknown", "global"):
        hit = [rf for rf in rfs if rf.kind == kind]
        if hit:
            return replace(hit[0], aligned=aligned)
    spatial = [rf for rf in rfs if rf.kind == "spatial"]
    if not spatial:
        return replace(rfs[0], aligned=aligned)
    if len(spatial) < len(rfs) or len({len(rf.axes) for rf in spatial}) > 1:
        return unknown_rf("merge of branches with different spatial layouts", shape, aligned)
    axes = []
    for per_axis in zip(*(rf.axes for rf in spatial)):
        axis, ok = _union_axis(per_axis)
        axes.append(axis)
        aligned = aligned and ok
    return spatial_rf(axes, spatial[0].shape, aligned, spatial[0].places)


# --- the traversal --------------------------------------------------------------------------


def _reads(call: OpCall, shape: tuple[int, ...]) -> bool:
    """Whether ``call`` reads a tensor of the tracked shape (ops on weights are not followed)."""
    for value in (*call.args, *(v for _, v in call.kwargs)):
        values = value if isinstance(value, tuple) else (value,)
        if any(isinstance(v, TensorMeta) and v.shape == shape for v in values):
            return True
    return False


def apply_ops(node: Node, rf: ReceptiveField) -> ReceptiveField:
    """Run the node's recorded ATen calls through their rules, following the tracked tensor.
    Unknown stays unknown and global stays global, whatever the op.

    The calls are followed as a chain. A node that reads its input again after the chain has moved
    on to another shape branches internally (a user's ``--leaf`` block such as an Inception
    module): one chain would miss the other branches, so its RF is reported unknown instead."""
    first = rf.shape
    # only a module called on one tensor: a multi-input op (attention's q, k, v) reads its other
    # inputs by design
    watch = node.kind == "module" and len(node.inputs) == 1
    for call in node.ops:
        if rf.kind in ("unknown", "global") or not call.outputs:
            continue
        if watch and rf.shape != first and _reads(call, first) and not _reads(call, rf.shape):
            return unknown_rf(f"{node.type} (branches inside one node: drop --leaf for it to follow them)",
                            out_shape(call), rf.aligned)
        if not _reads(call, rf.shape):
            continue
        rule = RF_RULES.get(call.op) or (unchanged if is_pointwise(call.op) else None)
        rf = unknown_rf(call.op, out_shape(call), rf.aligned) if rule is None else rule(call, rf)
    return rf


def _piece(rf: ReceptiveField, shape: tuple[int, ...]) -> ReceptiveField | None:
    """``rf`` for a piece of its tensor split along another dim (a chunk or split piece, with its
    own channel count): the axes stay. None when ``shape`` changes a dim holding an axis."""
    if rf.kind != "spatial" or rf.shape == shape:
        return replace(rf, shape=shape)
    same_axes = len(rf.shape) == len(shape) and all(rf.shape[p.dim] == shape[p.dim] for p in rf.places)
    return replace(rf, shape=shape) if same_axes else None


def node_rf(node: Node, inputs: Sequence[ReceptiveField | None]) -> ReceptiveField | None:
    """The RF of one node given its producers' RFs (None: the tensor does not derive from an image)."""
    out = node.output
    if node.kind == "input":
        if out is None or len(out.shape) < 3:
            return None
        return identity(len(out.shape) - 2, out.shape)
    if len(inputs) == len(node.input_metas):
        # a producer with several outputs (the eager tracer's split: no getitem node) gives the RF
        # of its first one: each consumer takes the piece it reads
        inputs = [rf if rf is None else _piece(rf, meta.shape) or rf for rf, meta in zip(inputs, node.input_metas)]
    known = [rf for rf in inputs if rf is not None]
    if not known or out is None:
        return None
    if node.kind == "output":
        return known[0]
    rf = apply_ops(node, merge(known))
    piece = _piece(rf, out.shape)  # a getitem of chunk/split keeps the axes
    if piece is not None:
        return piece
    return unknown_rf(f"{node.type} (output {out} does not match the followed tensor)", out.shape, rf.aligned)


def analyse_receptive_fields(nodes: Sequence[Node]) -> dict[str, ReceptiveField | None]:
    """RF of every node, in execution order. A node whose analysis raises (a bug in a rule) is
    ``unknown`` with the exception as its ``failure``, and so is everything derived from it; the
    other nodes keep their RF."""
    rfs: dict[str, ReceptiveField | None] = {}
    for node in nodes:
        try:
            rfs[node.name] = node_rf(node, [rfs.get(name) for name in node.inputs])
        except Exception as e:  # a bug here must not take the other analyses down: reported, not hidden
            rfs[node.name] = failed(e, node.output.shape if node.output else ())
    return rfs

