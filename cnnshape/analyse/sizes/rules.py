"""Size rules: how each ATen op maps the size expressions of its tensor arguments to its outputs'.

One registry keyed by ATen op name (``SIZE_RULES``); element-wise ops (torch's ``pointwise`` tag)
broadcast. An op with no rule on a dimension that depends on the input makes the axis
*uncharacterised* (reported, never guessed).

A rule gets the recorded call, its arguments bound once to the names of the overload's schema
(``call.bound()``: ``args["stride"]``, never a position), each tensor among them as a :class:`T`
(its shape as expressions), and the node's :class:`NodeBuilder`.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ...arith import as_tuple, pool_out
from ...registry import Registry, is_pointwise
from ...trace.records import OpCall, TensorMeta
from .expr import CeilPool, Expr, NodeBuilder, Scale, Shape, Sum, T, Uncharacterised

#: a call's arguments by schema name as ``call.bound()`` gives them (the schema's defaults filled in),
#: each tensor as a :class:`T` and a list of tensors as a tuple of them
Args = Mapping[str, Any]
SizeRule = Callable[[OpCall, Args, NodeBuilder], list[Shape]]
SIZE_RULES: Registry[str, SizeRule] = Registry("size rules")


def _either(args: Args, *names: str, default: Any = None) -> Any:
    """The first of ``names`` the call's schema has (ops name the same thing differently:
    ``constant_pad_nd(self, pad)``, ``reflection_pad2d(self, padding)``); ``default`` if none."""
    return next((args[name] for name in names if name in args), default)


def all_tensors(value: Any) -> list[T]:
    """The :class:`T` in a (nested) argument value, in order."""
    if isinstance(value, T):
        return [value]
    if isinstance(value, tuple):
        return [t for v in value for t in all_tensors(v)]
    return []


def _const(meta: TensorMeta) -> Shape:
    return meta.shape


def _others_const(call: OpCall, out_shapes: list[Shape]) -> list[Shape]:
    return out_shapes + [_const(m) for m in call.outputs[len(out_shapes):]]


# -- windows
@SIZE_RULES.register("aten.convolution")
def _convolution(call: OpCall, args: Args, b: NodeBuilder) -> list[Shape]:
    """aten.convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding,
    groups): conv_out per spatial axis, conv_transpose_out when transposed; channels fixed."""
    x, weight = args["input"], args["weight"]
    nd = len(weight.meta.shape) - 2
    # ATen may pass one value for every axis, e.g. padding=(0,)
    stride, padding, dilation, output_padding = (
        as_tuple(args[name], nd) for name in ("stride", "padding", "dilation", "output_padding"))
    transposed = args["transposed"]
    out = call.outputs[0].shape
    lead = len(x.shape) - nd
    dims = list(x.shape)
    b.fixed(dims[lead - 1], x.meta.shape[lead - 1])  # input channels match the weight
    dims[lead - 1] = out[lead - 1]
    for i in range(nd):
        k, st, p, d = weight.meta.shape[2 + i], stride[i], padding[i], dilation[i]
        span = d * (k - 1)
        if transposed:
            # (W − 1)·S − 2P + D·(F − 1) + output_padding + 1
            dims[lead + i] = b.floor(x.shape[lead + i], st, -st - 2 * p + span + output_padding[i] + 1, 1)
        else:
            # floor((W + 2P − D·(F−1) − 1)/S) + 1 = floor((W + 2P − D·(F−1) − 1 + S)/S)
            dims[lead + i] = b.floor(x.shape[lead + i], 1, 2 * p - span - 1 + st, st)
    return [tuple(dims)]


def _window(b: NodeBuilder, x: T, kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int],
            dilation: Sequence[int], ceil_mode: bool) -> Shape:
    nd = len(kernel)
    stride = stride or kernel
    per = [(list(v) * nd)[:nd] if len(v) == 1 else list(v) for v in (kernel, stride, padding, dilation)]
    dims = list(x.shape)
    lead = len(dims) - nd
    for i, (k, st, p, d) in enumerate(zip(*per)):
        src, span = dims[lead + i], d * (k - 1)
        if not ceil_mode or not isinstance(src, Expr):
            if ceil_mode:
                dims[lead + i] = pool_out(src, k, st, p, d, True)
            else:
                dims[lead + i] = b.floor(src, 1, 2 * p - span - 1 + st, st)
        elif not _ceil_drops(k, st, p, d):
            # ceil((W + 2P − D·(F−1) − 1)/S) + 1 = floor((W + 2P − D·(F−1) − 2 + 2S)/S)
            dims[lead + i] = b.floor(src, 1, 2 * p - span - 2 + 2 * st, st)
        else:
            dims[lead + i] = b.add(CeilPool(src, k, st, p, d))
    return tuple(dims)


def _ceil_drops(kernel: int, stride: int, padding: int, dilation: int) -> bool:
    """Whether ceil mode ever drops a last window starting in the right padding. The test
    (out − 1)·S ≥ W + P depends on W mod S only; check one period of valid sizes."""
    start = max(1, dilation * (kernel - 1) + 1 - 2 * padding)
    return any(
        pool_out(w, kernel, stride, padding, dilation, True)
        != -(-(w + 2 * padding - dilation * (kernel - 1) - 1) // stride) + 1
        for w in range(start, start + stride)
    )


@SIZE_RULES.register("aten.max_pool1d_with_indices", "aten.max_pool2d_with_indices",
                     "aten.max_pool3d_with_indices", "aten.max_pool1d", "aten.max_pool2d", "aten.max_pool3d")
def _max_pool(call: OpCall, args: Args, b: NodeBuilder) -> list[Shape]:
    """(self, kernel_size, stride=kernel_size, padding=0, dilation=1, ceil_mode=False): pool_out."""
    out = _window(b, args["self"], args["kernel_size"], args["stride"], args["padding"], args["dilation"],
                  bool(args["ceil_mode"]))
    return [out] * len(call.outputs)


@SIZE_RULES.register("aten.avg_pool1d", "aten.avg_pool2d", "aten.avg_pool3d")
def _avg_pool(call: OpCall, args: Args, b: NodeBuilder) -> list[Shape]:
    """(self, kernel_size, stride=kernel_size, padding=0, ceil_mode=False, ...): pool_out, dilation 1."""
    return [_window(b, args["self"], args["kernel_size"], args["stride"], args["padding"], (1,),
                    bool(args["ceil_mode"]))]


@SIZE_RULES.register("aten._adaptive_avg_pool1d", "aten._adaptive_avg_pool2d", "aten._adaptive_avg_pool3d",
                     "aten.adaptive_max_pool1d", "aten.adaptive_max_pool2d", "aten.adaptive_max_pool3d")
def _adaptive(call: OpCall, args: Args, b: NodeBuilder) -> list[Shape]:
    """Adaptive pooling: the spatial output is the constant ``output_size``."""
    x, nd = args["self"], len(args["output_size"])
    out = call.outputs[0].shape
    shape = tuple(x.shape[:-nd]) + tuple(out[-nd:])
    return [shape] * len(call.outputs)


@SIZE_RULES.register("aten.mean", "aten.sum", "aten.amax", "aten.amin", "aten.max", "aten.min")
def _reduce(call: OpCall, args: Args, b: NodeBuilder) -> list[Shape]:
    """Reductions: the reduced dims become 1 (keepdim) or disappear; a full reduction is a scalar."""
    # mean.default, sum.default, max.default: no dim (a full reduction); max.other: element-wise
    x, dims, keep = args["self"], args.get("dim"), bool(args.get("keepdim", False))
    if isinstance(dims, int):
        dims = (dims,)
    if not isinstance(dims, tuple) or not dims:
        return _others_const(call, [])
    rank = len(x.shape)
    gone = {d % rank for d in dims}
    shape = tuple(1 if i in gone else d for i, d in enumerate(x.shape) if keep or i not in gone)
    return [shape] * len(call.outputs)


# -- upsampling and padding
#: the scale factors of the upsampling ops of 1, 2 and 3 spatial dims (None: not given)
_SCALES = {1: ("scales",), 2: ("scales_h", "scales_w"), 3: ("scales_d", "scales_h", "scales_w")}


@SIZE_RULES.register("aten.upsample_nearest1d", "aten.upsample_nearest2d", "aten.upsample_nearest3d",
                     "aten._upsample_nearest_exact1d", "aten._upsample_nearest_exact2d",
                     "aten._upsample_nearest_exact3d", "aten.upsample_linear1d", "aten.upsample_bilinear2d",
                     "aten.upsample_bicubic2d", "aten.upsample_trilinear3d")
def _upsample(call: OpCall, args: Args, b: NodeBuilder) -> list[Shape]:
    """(self, output_size, [align_corners], scales...): floor(W·scale) when a scale factor was
    given, the constant output_size otherwise."""
    x, size = args["self"], args["output_size"]
    nd = len(size)
    scales = [args.get(name) for name in _SCALES[nd]]
    dims = list(x.shape)
    lead = len(dims) - nd
    for i, scale in enumerate(scales):
        src = dims[lead + i]
        if scale is None or not isinstance(src, Expr):
            dims[lead + i] = size[i]
        elif float(scale).is_integer():
            dims[lead + i] = b.floor(src, int(scale), 0, 1)
        else:
            dims[lead + i] = b.add(Scale(src, float(scale)))
    return [tuple(dims)]


@SIZE_RULES.register("aten.constant_pad_nd", "aten.replication_pad1d", "aten.replication_pad2d",
                     "aten.replication_pad3d", "aten.reflection_pad1d", "aten.reflection_pad2d",
                     "aten.reflection_pad3d")
def _pad(call: OpCall, args: Args, b: NodeBuilder) -> list[Shape]:
    """(self, pad) or (self, padding): W + left + right, pairs from the last dim backwards.
    Reflection needs W > max(left, right)."""
    x, pad = args["self"], _either(args, "pad", "padding")
    dims = list(x.shape)
    for j in range(len(pad) // 2):
        i = len(dims) - 1 - j
        lo, hi = pad[2 * j], pad[2 * j + 1]
        if "reflection" in call.op:
            b.floor(dims[i], 1, -max(lo, hi), 1)  # defined only when W − max(lo, hi) ≥ 1
        dims[i] = b.floor(dims[i], 1, lo + hi, 1)
    return [tuple(dims)]


# -- shape-preserving ops: the output has the first tensor's shape
_FIRST_SHAPE = (
    "aten.native_batch_norm", "aten._native_batch_norm_legit", "aten._native_batch_norm_legit_no_training",
    "aten._native_batch_norm_legit_functional", "aten.native_group_norm", "aten.hardswish", "aten.hardswish_",
    "aten.hardsigmoid", "aten.hardsigmoid_", "aten.dropout", "aten.native_dropout", "aten._to_copy",
    "aten._softmax", "aten._log_softmax", "aten.softmax", "aten.log_softmax", "aten.detach", "aten.alias",
    "aten.contiguous", "aten.lift_fresh", "aten.lift_fresh_copy", "aten._prelu_kernel", "aten.prelu",
    "aten.bernoulli_", "aten.empty_like", "aten.zeros_like", "aten.ones_like", "aten.copy_", "aten.fill_",
    "aten.zero_", "aten.cumsum", "aten._local_scalar_dense",
)


@SIZE_RULES.register(*_FIRST_SHAPE)
def _first_shape(call: OpCall, args: Args, b: NodeBuilder) -> list[Shape]:
    """Normalisation, dropout, softmax, copies: output 0 has the input's shape (statistics are constant)."""
    return _others_const(call, [_either(args, "self", "input").shape])


@SIZE_RULES.register("aten.native_layer_norm")
def _layer_norm(call: OpCall, args: Args, b: NodeBuilder) -> list[Shape]:
    """(input, normalized_shape, weight, bias, eps) -> (out, mean, rstd): out has the input's shape;
    the normalised (trailing) dims must equal ``normalized_shape`` (the weight's); mean and rstd
    keep the leading dims and have size 1 in the normalised ones."""
    x, normalized = args["input"], tuple(args["normalized_shape"])
    lead = len(x.shape) - len(normalized)
    for d, size in zip(x.shape[lead:], normalized):
        b.fixed(d, size)
    out = tuple(x.shape[:lead]) + tuple(normalized)
    stats = tuple(x.shape[:lead]) + (1,) * len(normalized)
    return [out] + [stats] * (len(call.outputs) - 1)


def _pointwise(call: OpCall, args: Args, b: NodeBuilder) -> list[Shape]:
    """Broadcasting: per aligned dim, sizes equal or 1; in-place ops keep the first operand's size."""
    operands = all_tensors(tuple(args.values()))
    rank = max(len(t.shape) for t in operands)
    mode = "inplace" if call.op.endswith("_") else "broadcast"
    padded = [(1,) * (rank - len(t.shape)) + tuple(t.shape) for t in operands]
    shape = tuple(b.merge([p[i] for p in padded], mode) for i in range(rank))
    return [shape if m.shape == tuple(_trace_value(d, m.shape[i]) for i, d in enumerate(shape)) else m.shape
            for m in call.outputs]


def _trace_value(d: Any, traced: int) -> int:
    return traced if isinstance(d, Expr) else d


# -- reshaping
@SIZE_RULES.register("aten.view", "aten._unsafe_view", "aten.reshape")
def _view(call: OpCall, args: Args, b: NodeBuilder) -> list[Shape]:
    """Dims are grouped into blocks with equal products at the traced size. A block of input dims
    merged into one output dim (flatten) multiplies; a constant target size is a constraint (at the
    end of the node, unless a later view of the node splits the product back into the same dims:
    torch's matmul folds a Linear's leading dims, (N, H, W, C) -> (N·H·W, C), and unfolds them);
    a -1 target takes what is left. Splitting a size-dependent dim otherwise is not characterised."""
    x, target = args["self"], tuple(_either(args, "size", "shape", default=()))  # view.dtype: neither
    in_sizes, out_sizes = x.meta.shape, call.outputs[0].shape
    dims: list[Any] = []
    i = j = 0
    while i < len(in_sizes) or j < len(out_sizes):
        bi, bj = [i], [j]
        pi = in_sizes[i] if i < len(in_sizes) else 1
        pj = out_sizes[j] if j < len(out_sizes) else 1
        while pi != pj:
            if pi < pj:
                i += 1
                bi.append(i)
                pi *= in_sizes[i]
            else:
                j += 1
                bj.append(j)
                pj *= out_sizes[j]
        i, j = i + 1, j + 1
        bi = [k for k in bi if k < len(in_sizes)]
        bj = [k for k in bj if k < len(out_sizes)]
        syms = [x.shape[k] for k in bi if isinstance(x.shape[k], Expr)]
        if not syms:
            dims += [out_sizes[k] for k in bj]
            continue
        unfolded = b.unfold(x.shape[bi[0]], tuple(out_sizes[k] for k in bj)) if len(bi) == 1 else None
        if unfolded is not None:
            dims += list(unfolded)
            continue
        rest = math.prod(in_sizes[k] for k in bi if not isinstance(x.shape[k], Expr))
        if len(syms) > 1 or len([k for k in bj if out_sizes[k] != 1]) > 1:
            raise Uncharacterised(f"{call.op} splits or combines several size-dependent dims")
        k_out = next((k for k in bj if out_sizes[k] != 1), bj[0])
        product = b.floor(syms[0], rest, 0, 1)
        for k in bj:
            if k != k_out:
                dims.append(1)
            elif k < len(target) and target[k] == -1:
                dims.append(product)
            elif len(bi) > 1 and isinstance(product, Expr):
                dims.append(b.fold(product, tuple(x.shape[i] for i in bi), tuple(in_sizes[i] for i in bi)))
            else:
                dims.append(b.fixed(product, out_sizes[k]))
    return [tuple(dims[: len(out_sizes)])]


@SIZE_RULES.register("aten.unsqueeze")
def _unsqueeze(call: OpCall, args: Args, b: NodeBuilder) -> list[Shape]:
    x, dim = args["self"], args["dim"]
    dims = list(x.shape)
    dims.insert(dim % (len(dims) + 1), 1)
    return [tuple(dims)]


@SIZE_RULES.register("aten.squeeze")
def _squeeze(call: OpCall, args: Args, b: NodeBuilder) -> list[Shape]:
    """A size-dependent dim squeezed at size 1 only disappears for that size: not characterised."""
    x, chosen = args["self"], args.get("dim")  # squeeze.default has no dim: every dim
    chosen = tuple(range(len(x.shape))) if chosen is None else chosen
    chosen = {d % len(x.shape) for d in ((chosen,) if isinstance(chosen, int) else chosen)}
    if any(isinstance(x.shape[d], Expr) for d in chosen):
        raise Uncharacterised("squeeze of a size-dependent dim")
    return [tuple(d for i, d in enumerate(x.shape) if not (i in chosen and d == 1))]


@SIZE_RULES.register("aten.permute")
def _permute(call: OpCall, args: Args, b: NodeBuilder) -> list[Shape]:
    x = args["self"]
    return [tuple(x.shape[d % len(x.shape)] for d in args["dims"])]


@SIZE_RULES.register("aten.transpose", "aten.t", "aten.numpy_T")
def _transpose(call: OpCall, args: Args, b: NodeBuilder) -> list[Shape]:
    """transpose(self, dim0, dim1); t and numpy_T swap the first and the last dim."""
    x = args["self"]
    dims = list(x.shape)
    d0, d1 = args.get("dim0", 0), args.get("dim1", len(dims) - 1)
    dims[d0 % len(dims)], dims[d1 % len(dims)] = dims[d1 % len(dims)], dims[d0 % len(dims)]
    return [tuple(dims)]


@SIZE_RULES.register("aten.expand")
def _expand(call: OpCall, args: Args, b: NodeBuilder) -> list[Shape]:
    """-1 keeps the dim; a size-dependent dim expanded to a constant must be 1 or that constant.
    ``y.expand_as(x)``: the node also consumes ``x``, whose shape is the target, so the target
    sizes are ``x``'s (they follow the input size) rather than constants."""
    x, sizes = args["self"], tuple(args["size"])
    template = next((t for t in b.inputs if t.meta.shape == sizes and t.symbolic), None)
    if template is not None:
        sizes = tuple(template.shape)
    padded = (1,) * (len(sizes) - len(x.shape)) + tuple(x.shape)
    return [tuple(d if isinstance(s, int) and s == -1 else b.merge([d, s], "broadcast")
                  for s, d in zip(sizes, padded))]


@SIZE_RULES.register("aten.slice")
def _slice(call: OpCall, args: Args, b: NodeBuilder) -> list[Shape]:
    """Only the full slice of a size-dependent dim (``x[:, :, :]``) is characterised."""
    x = args["self"]
    dim, start, end, step = args["dim"], args["start"], args["end"], args["step"]
    dims = list(x.shape)
    d = dim % len(dims)
    if isinstance(dims[d], Expr):
        if start not in (None, 0) or step != 1 or (end is not None and end < 2**62):
            raise Uncharacterised("slicing a size-dependent dim with constant bounds")
    else:
        dims[d] = call.outputs[0].shape[d]
    return [tuple(dims)]


@SIZE_RULES.register("aten.select")
def _select(call: OpCall, args: Args, b: NodeBuilder) -> list[Shape]:
    x = args["self"]
    dim = args["dim"] % len(x.shape)
    if isinstance(x.shape[dim], Expr):
        raise Uncharacterised("indexing into a size-dependent dim")
    return [tuple(d for i, d in enumerate(x.shape) if i != dim)]


@SIZE_RULES.register("aten.split", "aten.split_with_sizes", "aten.unbind")
def _split(call: OpCall, args: Args, b: NodeBuilder) -> list[Shape]:
    x = args["self"]
    dim = args["dim"] % len(x.shape)
    if isinstance(x.shape[dim], Expr):
        raise Uncharacterised("splitting a size-dependent dim")
    return [tuple(m.shape[dim] if i == dim else d for i, d in enumerate(x.shape)) if call.op != "aten.unbind"
            else tuple(d for i, d in enumerate(x.shape) if i != dim) for m in call.outputs]


# -- merges and matrix products
@SIZE_RULES.register("aten.cat")
def _cat(call: OpCall, args: Args, b: NodeBuilder) -> list[Shape]:
    """All dims but ``dim`` equal (no broadcasting); ``dim`` is the sum."""
    parts = [t for t in args["tensors"] if len(t.meta.shape) > 1 or t.meta.shape != (0,)]
    dim = args["dim"] % len(parts[0].shape)
    shape = tuple(
        b.add(Sum([t.shape[i] for t in parts])) if i == dim and any(isinstance(t.shape[i], Expr) for t in parts)
        else sum(t.meta.shape[i] for t in parts) if i == dim
        else b.merge([t.shape[i] for t in parts], "equal")
        for i in range(len(parts[0].shape))
    )
    return [shape]


@SIZE_RULES.register("aten.stack")
def _stack(call: OpCall, args: Args, b: NodeBuilder) -> list[Shape]:
    parts = list(args["tensors"])
    dim = args["dim"] % (len(parts[0].shape) + 1)
    dims = [b.merge([t.shape[i] for t in parts], "equal") for i in range(len(parts[0].shape))]
    dims.insert(dim, len(parts))
    return [tuple(dims)]


def _matmul(b: NodeBuilder, m1: T, m2: T) -> Shape:
    """(..., n, k) @ (..., k, p): the contracted sizes must be equal."""
    b.merge([m1.shape[-1], m2.shape[-2]], "equal")
    lead1, lead2 = m1.shape[:-2], m2.shape[:-2]
    n = max(len(lead1), len(lead2))
    lead = [b.merge(list(pair), "broadcast") for pair in
            zip((1,) * (n - len(lead1)) + tuple(lead1), (1,) * (n - len(lead2)) + tuple(lead2))]
    return (*lead, m1.shape[-2], m2.shape[-1])


@SIZE_RULES.register("aten.mm", "aten.bmm")
def _mm(call: OpCall, args: Args, b: NodeBuilder) -> list[Shape]:
    """(self, mat2)."""
    return [_matmul(b, args["self"], args["mat2"])]


@SIZE_RULES.register("aten.addmm", "aten.baddbmm")
def _addmm(call: OpCall, args: Args, b: NodeBuilder) -> list[Shape]:
    """addmm(self, mat1, mat2), baddbmm(self, batch1, batch2), ``self`` the bias: a Linear layer; its
    input features are the contracted size."""
    if call.op == "aten.addmm":
        return [_matmul(b, args["mat1"], args["mat2"])]
    return [_matmul(b, args["batch1"], args["batch2"])]


def rule_for(op: str) -> SizeRule | None:
    """The size rule of ``op``; element-wise ops without one broadcast."""
    rule = SIZE_RULES.get(op)
    if rule is None and is_pointwise(op):
        return _pointwise
    return rule
