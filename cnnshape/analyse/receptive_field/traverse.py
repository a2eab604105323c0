"""The traversal: every node's RF from its producers' RFs and the rules of the ops it ran.

Where branches meet the RF is the union of theirs. Unknown stays unknown and global stays global,
whatever the op.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ...registry import is_pointwise
from ...trace.records import Node, OpCall, TensorMeta
from .channels import UNKNOWN, Profile, canon, expand
from .percall import forget, shapes_read
from .records import AxisRF, Place, ReceptiveField, failed, identity, spatial_rf, unknown_rf, with_parts
from .rules import RF_RULES, derive, known, out_shape, relabel, unchanged
from .select import PARTIAL
from .trail import SAME, Link, Trail, link
from .windows import WINDOWS

# --- merges ---------------------------------------------------------------------------------


def _union_axis(axes: Sequence[AxisRF]) -> tuple[AxisRF, bool]:
    """Union of the branches' boxes of unit 0; aligned when all centres and jumps agree."""
    first = axes[0]
    if any(a.size is None for a in axes):
        return AxisRF(None, max(a.jump for a in axes), first.start), True
    # compared with the first, not gathered in sets: a Fraction's hash costs a modular inverse; the
    # same object first (branches from one tensor share them): a Fraction's == is a Python call
    jump, start = first.jump, first.start
    if all((a.jump is jump or a.jump == jump) and (a.start is start or a.start == start) for a in axes):
        size = first.size
        for a in axes:
            other = a.size
            # other > size, compared as Fraction compares two rationals, without its type checks
            if other is not size and other.numerator * size.denominator > size.numerator * other.denominator:  # type: ignore[union-attr]  # no None: checked above
                size = other
        return AxisRF(size, jump, start), True
    lo = min(a.box(0)[0] for a in axes)
    hi = max(a.box(0)[1] for a in axes)
    return AxisRF(hi - lo + 1, max(a.jump for a in axes), (lo + hi) / 2), False


def _merged_labels(spatial: Sequence[ReceptiveField]) -> Profile | None:
    """Channel c of an element-wise merge sees what channel c of each branch sees."""
    labels = [known(rf) for rf in spatial]
    if all(v is None for v in labels):
        return None
    if UNKNOWN in labels or len({rf.shape for rf in spatial}) > 1:
        return UNKNOWN
    size = len(next(v for v in labels if v is not None))
    return canon(list(zip(*(expand(v, size) for v in labels))))


def _merged_empty(trails: Sequence[Trail]) -> tuple[frozenset[int], ...]:
    """A unit of an element-wise merge reads nothing when it reads nothing in every branch; per
    axis, the units empty in some branch, where the branches have empty units at all (a superset:
    the emptiness of a unit of a union is not a matter of one axis)."""
    if not all(t.holes for t in trails):
        return ()
    return tuple(frozenset().union(*(t.empty[k] for t in trails if t.empty)) for k in range(len(trails[0].extents)))


def merge(rfs: Sequence[ReceptiveField | None]) -> ReceptiveField:
    """Where branches meet (add, mul, cat, ...): the union of their RFs. ``rfs``: the node's inputs
    in argument order, None for those not derived from the image; kept as ``parts``."""
    if len(rfs) == 1 and rfs[0] is not None and rfs[0].kind == "spatial":
        return rfs[0]  # a chain's step, most nodes: the general path below returns the one input as it is
    parts = tuple(rfs) if len(rfs) > 1 else ()
    given = [rf for rf in rfs if rf is not None]
    aligned = all(rf.aligned for rf in given)
    shape = given[0].shape
    unknown = [rf for rf in given if rf.kind == "unknown"]
    if unknown:
        return replace(unknown[0], aligned=aligned, parts=())
    whole = [rf for rf in given if rf.kind == "global"]
    if whole:
        # every unit sees the global branches' region; what the other branches add to a unit must
        # lie inside it (checked when a box is asked: .boxes)
        main = tuple(link(rf.trail) for rf in whole if rf.trail is not None)
        within = tuple(link(rf.trail) for rf in given if rf.kind != "global" and rf.trail is not None)
        trail = whole[0].trail if len(main) == 1 and not within else Trail((), main, within=within)
        return replace(whole[0], aligned=aligned, trail=trail, parts=parts)
    spatial = [rf for rf in given if rf.kind == "spatial"]
    if not spatial:
        trail = Trail((), tuple(link(rf.trail) for rf in given if rf.trail is not None))
        return replace(given[0], aligned=aligned, trail=trail if len(given) > 1 else given[0].trail, parts=parts)
    if len(spatial) < len(given) or len({len(rf.axes) for rf in spatial}) > 1:
        return unknown_rf("merge of branches with different spatial layouts", shape, aligned)
    if len(spatial) == 1:
        return spatial[0] if aligned == spatial[0].aligned and not parts else replace(spatial[0], aligned=aligned,
                                                                                       parts=parts)
    axes = []
    for per_axis in zip(*(rf.axes for rf in spatial)):
        axis, ok = _union_axis(per_axis)
        axes.append(axis)
        aligned = aligned and ok
    places = spatial[0].places
    if any(rf.places is not places for rf in spatial):  # branches of one layout share it (sliding keeps it)
        places = tuple(_widest(p, max(rf.places[k].extent for rf in spatial)) for k, p in enumerate(places))
    trails = [rf.trail for rf in spatial if rf.trail is not None]
    if all(a.size is None for a in axes):  # spatial_rf: global
        result = spatial_rf(axes, spatial[0].shape, aligned, places)
        return replace(result, trail=Trail((), tuple(link(t) for t in trails)), parts=parts)
    trail = None
    if len(trails) == len(spatial):
        same = (SAME,) * len(axes)
        trail = Trail(tuple([p.extent for p in places]), tuple([Link(t, same) for t in trails]),
                      profile=_merged_labels(spatial), empty=_merged_empty(trails))
    # with_trail(spatial_rf(axes, ...), trail, parts) in one step, once per join of branches: the
    # same record without the one with_trail would copy (tests/test_rf_fast.py compares the two)
    return ReceptiveField("spatial", tuple([AxisRF(a.size, a.jump, a.start, trail, k) for k, a in enumerate(axes)]),
                          aligned, shape=spatial[0].shape, places=places, trail=trail, parts=parts)


def _widest(place: Place, extent: int) -> Place:
    """``replace(place, extent=extent)``; the place itself where it already has that extent."""
    return place if place.extent == extent else Place(place.dim, place.inner, extent)


# --- the traversal --------------------------------------------------------------------------


def _reads(call: OpCall, shape: tuple[int, ...]) -> bool:
    """Whether ``call`` reads a tensor of the tracked shape (ops on weights are not followed)."""
    return shape in shapes_read(call)


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
        if call.op in PRODUCTS and rf.trail is not None and _constant_factor(rf.trail):
            rf = derive(rf, rf, refused="a product with a factor that is a constant at some units (they read only "
                                        "padding): whether those units see the other factor depends on its value")
        if rf.kind == "global" and call.outputs and _reads(call, rf.shape):
            if _reads_nothing_somewhere(call):
                rf = derive(rf, rf, refused=f"{call.op} after the field became global: some of its units read "
                                            "only padding")
            rf = replace(rf, shape=out_shape(call))
        if rf.kind in ("unknown", "global") or not call.outputs:
            continue
        if watch and rf.shape != first and _reads(call, first) and not _reads(call, rf.shape):
            return unknown_rf(f"{node.type} (branches inside one node: drop --leaf for it to follow them)",
                            out_shape(call), rf.aligned)
        if not _reads(call, rf.shape):
            continue
        rule = RF_RULES.get(call.op) or (unchanged if is_pointwise(call.op) else None)
        rf = unknown_rf(call.op, out_shape(call), rf.aligned) if rule is None else rule(call, rf)
        if rf.parts:  # the inputs of the node, for its first op only
            rf = with_parts(rf, ())
    return rf


#: element-wise products: a factor that is 0 at a unit hides what the other factor sees there
PRODUCTS = frozenset({"aten.mul", "aten.mul_", "aten.div", "aten.div_"})


def _constant_factor(trail: Trail) -> bool:
    """Whether the branches merged into ``trail`` (by the node's inputs) include one with units
    that read nothing."""
    branches = (*trail.links, *trail.within)
    return len(branches) > 1 and any(b.parent.holes for b in branches)


def _reads_nothing_somewhere(call: OpCall) -> bool:
    """Whether some output unit of a sliding window (``WINDOWS``) reads only padding: the op's
    rule run on its input as if it were the image tells."""
    x = next((v for v in call.args if isinstance(v, TensorMeta)), None)
    rule = RF_RULES.get(call.op)
    if call.op not in WINDOWS or rule is None or x is None or len(x.shape) < 3:
        return False
    probe = rule(call, identity(len(x.shape) - 2, x.shape))
    if probe.kind != "spatial" or probe.trail is None:
        return False
    step = probe.trail.links[0]
    return any(not m.image(frozenset((o,)), n, True)
               for m, n, extent in zip(step.maps, step.parent.extents, probe.trail.extents) for o in range(extent))


def _piece(rf: ReceptiveField, shape: tuple[int, ...]) -> ReceptiveField | None:
    """``rf`` for a piece of its tensor split along another dim (a chunk or split piece, with its
    own channel count): the axes stay; the channels are those of the pieces of that shape (which
    one is read is not recorded: when several fit, their units are given a box only when each
    holds every label of the whole). None when ``shape`` changes a dim holding an axis."""
    if rf.shape == shape and not rf.pieces:
        return rf
    if rf.kind != "spatial":
        return replace(rf, shape=shape, pieces=())
    fits = [p for p in rf.pieces if p.shape == shape]
    if fits:
        labels = {p.profile for p in fits}
        refused = None if all(p.complete for p in fits) else PARTIAL
        return relabel(replace(rf, shape=shape, pieces=()), labels.pop() if len(labels) == 1 else UNKNOWN, refused)
    if rf.shape == shape:
        return replace(rf, pieces=())
    same_axes = len(rf.shape) == len(shape) and all(rf.shape[p.dim] == shape[p.dim] for p in rf.places)
    return replace(rf, shape=shape, pieces=()) if same_axes else None


def node_rf(node: Node, inputs: Sequence[ReceptiveField | None]) -> ReceptiveField | None:
    """The RF of one node given its producers' RFs (None: the tensor does not derive from an image)."""
    out = node.output
    if node.kind == "input":
        if out is None or len(out.shape) < 3:
            return None
        return identity(len(out.shape) - 2, out.shape, node.name)
    if out is not None and node.type == "getitem" and not node.ops and len(set(node.inputs)) == 1 and inputs[0]:
        # one output of a split (fx): the piece of its shape
        return _piece(inputs[0], out.shape) or unknown_rf(f"{node.type} (output {out} does not match the "
                                                          "followed tensor)", out.shape, inputs[0].aligned)
    if len(inputs) == len(node.input_metas):
        # a producer with several outputs (the eager tracer's split: no getitem node) gives the RF
        # of its first one: each consumer takes the piece it reads (an RF of the very tensor read,
        # nearly every input, is _piece's own answer without the call)
        inputs = [rf if rf is None or (rf.shape == meta.shape and not rf.pieces) else _piece(rf, meta.shape) or rf
                  for rf, meta in zip(inputs, node.input_metas)]
    if out is None or not inputs or (inputs[0] is None and all(rf is None for rf in inputs)):
        return None
    if node.kind == "output":
        return next(rf for rf in inputs if rf is not None)
    rf = apply_ops(node, merge(inputs))
    if rf.shape == out.shape and not rf.pieces:  # _piece's first answer, without the call (most nodes)
        return rf
    piece = _piece(rf, out.shape)  # the first output of a split keeps the axes
    if piece is not None:
        return piece
    return unknown_rf(f"{node.type} (output {out} does not match the followed tensor)", out.shape, rf.aligned)


def analyse_receptive_fields(nodes: Sequence[Node]) -> dict[str, ReceptiveField | None]:
    """RF of every node, in execution order. A node whose analysis raises (a bug in a rule) is
    ``unknown`` with the exception as its ``failure``, and so is everything derived from it; the
    other nodes keep their RF."""
    rfs: dict[str, ReceptiveField | None] = {}
    try:
        for node in nodes:
            try:
                rfs[node.name] = node_rf(node, [rfs.get(name) for name in node.inputs])
            except Exception as e:  # a bug here must not take the other analyses down: reported, not hidden
                rfs[node.name] = failed(e, node.output.shape if node.output else ())
    finally:
        forget()  # the memos of .percall last one traversal
    return rfs

