"""Channel rules for the ops that reshape, move or cut the channel axis: views (flatten,
unflatten, splits into shuffle groups or heads and back), transposes, and chunks. Registered in
the one table of :mod:`.rules`."""
from __future__ import annotations

from .channels import Channels, Label
from .rules import OpContext, moved, prod, rule


@rule("aten.view", "aten._unsafe_view", "aten.reshape", "aten.flatten", "aten.unsqueeze", "aten.squeeze",
      "aten.expand")
def view(ctx: OpContext) -> Label | None:
    """A view that keeps the channel axis whole moves it; one that flattens the channels with the
    axes after them repeats each id once per feature (Flatten -> Linear loses ``H·W`` inputs per
    channel); unflattening such features gives the channels back. One that splits the channels
    into ``(g, C/g)`` (shuffle groups, heads) keeps ``g``: the ``k``-th channel of every one of
    the ``g`` parts goes together, and merging them back gives a plain label again."""
    x = ctx.label(0)
    if x is None:
        return None
    src, dst = ctx.tensors[0][0].shape, ctx.out.shape
    if ctx.call.op == "aten.expand":
        return moved(x, len(src), ctx.out)
    before = prod(src[:x.axis])
    if x.outer:
        return _merge(ctx, x, before, dst)
    for axis in range(len(dst)):
        if prod(dst[:axis]) != before:
            continue
        if dst[axis] == len(x):
            return Label(axis, x.ids)
        if dst[axis] % len(x) == 0:  # flattened with the axes after it: each id once per feature
            rest, acc = dst[axis] // len(x), 1
            for d in src[x.axis + 1:]:
                acc *= d
                if acc == rest:
                    return Label(axis, tuple(i for i in x.ids for _ in range(rest)))
        if dst[axis] < len(x) and len(x) % dst[axis] == 0:
            block = len(x) // dst[axis]
            ids = x.ids[::block]
            if all(x.ids[k] == ids[k // block] for k in range(len(x.ids))):  # unflattened features
                return Label(axis, ids)
            if axis + 1 < len(dst) and dst[axis + 1] == block and dst[axis] > 1:
                return _split(ctx.channels, x, axis, dst[axis])
    ctx.fix(x, f"{ctx.call.op} to {'x'.join(map(str, dst))} mixes the channel axis with others")
    return None


def _split(channels: Channels, x: Label, axis: int, outer: int) -> Label:
    inner = len(x) // outer
    for k in range(inner):
        for part in range(1, outer):
            channels.union(x.ids[k], x.ids[part * inner + k])
    return Label(axis, x.ids, outer)


def _merge(ctx: OpContext, x: Label, before: int, dst: tuple[int, ...]) -> Label | None:
    for axis in range(len(dst)):
        if prod(dst[:axis]) != before:
            continue
        if dst[axis] == len(x):
            return Label(axis, x.ids)
        if dst[axis:axis + 2] == (x.outer, len(x) // x.outer):
            return Label(axis, x.ids, x.outer, x.literal)
    ctx.fix(x, f"{ctx.call.op} to {'x'.join(map(str, dst))} mixes split channels with other axes")
    return None


@rule("aten.permute", "aten.transpose", "aten.t")
def permute(ctx: OpContext) -> Label | None:
    """The channel axis moves; split channels may swap their two parts (a channel shuffle)."""
    x = ctx.label(0)
    if x is None:
        return None
    rank = len(ctx.tensors[0][0].shape)
    if ctx.call.op == "aten.permute":
        order = [d % rank for d in ctx.call.arg("dims")]
    else:
        a, b = (0, 1) if ctx.call.op == "aten.t" else (ctx.call.arg("dim0") % rank, ctx.call.arg("dim1") % rank)
        order = list(range(rank))
        order[a], order[b] = order[b], order[a]
    at = order.index(x.axis)
    if not x.outer:
        return Label(at, x.ids)
    nxt = order.index(x.axis + 1)
    if nxt == at + 1:
        return Label(at, x.ids, x.outer, x.literal)
    if nxt == at - 1:  # the two parts swap: ids re-read in the new row-major order
        outer, inner = x.outer, len(x) // x.outer
        ids = tuple(x.ids[i * inner + k] for k in range(inner) for i in range(outer))
        return Label(nxt, ids, inner, 1 - x.literal)
    ctx.fix(x, f"{ctx.call.op} separates split channels")
    return None


def chunk(ctx_fix: Channels, x: Label | None, dim: int, pieces: int, size: int, where: str) -> list[Label] | None:
    """``x.chunk(pieces, dim)``: equal pieces that must stay equal, so the ``k``-th channel of every
    piece goes together (a piece of a literal size is refused by the caller)."""
    if x is None or x.outer or dim != x.axis or pieces * size != len(x):
        if x is not None:
            ctx_fix.fix(x.ids, f"a chunk the channel rules cannot follow (at {where!r})")
        return None
    for k in range(size):
        for part in range(1, pieces):
            ctx_fix.union(x.ids[k], x.ids[part * size + k])
    return [Label(dim, x.ids[p * size:(p + 1) * size]) for p in range(pieces)]
