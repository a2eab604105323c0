"""Which input sizes a model accepts, derived from the layer arithmetic.

Each tensor dimension that depends on the studied input axis is an *expression* of the input size
``s`` built from the per-layer formulas of :mod:`cnnshape.arith` (conv/pool windows, transposed
convolutions, padding, upsampling, flattening), plus the constraints that merges impose (equal
sizes at ``cat``, broadcast-compatible sizes at ``add``/``mul``, a fixed size where a Linear or a
constant reshape consumes the dimension). Adaptive pooling turns a dimension back into a constant.

A size is accepted when every expression is defined (every layer output ≥ 1) and every constraint
holds. The expressions are compositions of floor-affine integer maps, hence eventually periodic:
they are evaluated exactly (Python ints, no torch) for every size 1..N, N covering several periods,
and an arithmetic rule {minimum, step, offset, maximum} is fitted and verified against all of them.

Size rules live in one registry keyed by ATen op name (``SIZE_RULES``); an op with no rule on a
dimension that depends on the input makes the axis *uncharacterised* (reported, never guessed).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ..arith import as_tuple, pool_out
from ..errors import CnnshapeError, ConfigError, InternalError
from ..graph import ModelGraph
from ..registry import Registry, is_pointwise
from ..trace.records import Node, OpCall, TensorMeta

SCHEMA = "cnnshape.sizes/1"
#: sizes are always evaluated at least up to this bound
MIN_UP_TO = 512
#: and never beyond this one (a rule whose period needs more is reported as a set)
MAX_UP_TO = 1 << 14


# ---------------------------------------------------------------- expressions of the input size

class Expr:
    """A dimension as a function of the input size; ``value`` gets the values of earlier
    expressions (by ``id``) and returns None where the size is invalid."""

    id: int = -1
    #: the node whose size rule created it
    node: str = ""
    #: (P, k): value(s + P) = value(s) + k once s is large enough
    period: tuple[int, int] = (1, 0)

    def value(self, vals: list[int | None], s: int) -> int | None:
        raise NotImplementedError


Shape = tuple  #: of int | Expr


class Var(Expr):
    period = (1, 1)

    def value(self, vals: list[int | None], s: int) -> int | None:
        return s


class Floor(Expr):
    """floor((a·x + b)/c), defined when x is and the result is ≥ 1 (a layer output)."""

    def __init__(self, src: Expr, a: int, b: int, c: int) -> None:
        g = math.gcd(a, b, c)
        self.src, self.a, self.b, self.c = src, a // g, b // g, c // g
        p, k = src.period
        m = self.c // math.gcd(self.c, self.a * k) if k else 1
        self.period = (p * m, self.a * k * m // self.c)

    def value(self, vals: list[int | None], s: int) -> int | None:
        x = vals[self.src.id]
        if x is None:
            return None
        out = (self.a * x + self.b) // self.c
        return out if out >= 1 else None


class CeilPool(Expr):
    """A ``ceil_mode=True`` pooling window whose last window may be dropped (arith.pool_out)."""

    def __init__(self, src: Expr, kernel: int, stride: int, padding: int, dilation: int) -> None:
        self.src, self.kernel, self.stride, self.padding, self.dilation = src, kernel, stride, padding, dilation
        p, k = src.period
        m = stride // math.gcd(stride, k) if k else 1
        self.period = (p * m, k * m // stride)

    def value(self, vals: list[int | None], s: int) -> int | None:
        x = vals[self.src.id]
        if x is None:
            return None
        out = pool_out(x, self.kernel, self.stride, self.padding, self.dilation, ceil_mode=True)
        return out if out >= 1 else None


class Scale(Expr):
    """floor(x·scale) with a non-integer scale, in floating point as ``F.interpolate`` does."""

    def __init__(self, src: Expr, scale: float) -> None:
        self.src, self.scale = src, scale
        frac = Fraction(scale).limit_denominator(10**6)
        p, k = src.period
        m = frac.denominator // math.gcd(frac.denominator, frac.numerator * k) if k else 1
        self.period = (p * m, int(frac * k * m))

    def value(self, vals: list[int | None], s: int) -> int | None:
        x = vals[self.src.id]
        if x is None:
            return None
        out = math.floor(float(x) * self.scale)
        return out if out >= 1 else None


def _lcm_period(parts: Sequence[Any]) -> tuple[int, int]:
    periods = [p.period for p in parts if isinstance(p, Expr)]
    big = math.lcm(*(p for p, _ in periods))
    return big, max(k * (big // p) for p, k in periods)


class Merge(Expr):
    """Sizes meeting at a merge. ``equal`` (cat): all equal. ``broadcast`` (add, mul): equal or 1,
    the result is the common non-1 size. ``inplace`` (add_): the first size; the others equal it or are 1."""

    def __init__(self, parts: Sequence[Any], mode: str, where: str) -> None:
        self.parts, self.mode, self.where = tuple(parts), mode, where
        self.period = _lcm_period(self.parts)

    def value(self, vals: list[int | None], s: int) -> int | None:
        xs = [vals[p.id] if isinstance(p, Expr) else p for p in self.parts]
        if any(x is None for x in xs):
            return None
        if self.mode == "equal":
            return xs[0] if all(x == xs[0] for x in xs) else None
        if self.mode == "inplace":
            return xs[0] if all(x in (xs[0], 1) for x in xs) else None
        big = {x for x in xs if x != 1}
        if len(big) > 1:
            return None
        return big.pop() if big else 1


class Sum(Expr):
    """Concatenation along the dimension: the sum of the parts."""

    def __init__(self, parts: Sequence[Any]) -> None:
        self.parts = tuple(parts)
        self.period = _lcm_period(self.parts)

    def value(self, vals: list[int | None], s: int) -> int | None:
        xs = [vals[p.id] if isinstance(p, Expr) else p for p in self.parts]
        return None if any(x is None for x in xs) else sum(xs)  # type: ignore[arg-type]


class Fixed(Expr):
    """A constraint: ``src`` must equal ``size`` (Linear input features, a constant reshape)."""

    def __init__(self, src: Expr, size: int, where: str) -> None:
        self.src, self.size, self.where = src, size, where
        self.period = src.period

    def value(self, vals: list[int | None], s: int) -> int | None:
        return self.size if vals[self.src.id] == self.size else None


class Uncharacterised(Exception):
    """An op with no size rule touches a dimension that depends on the input size."""


# ---------------------------------------------------------------- building the expressions

@dataclass
class T:
    """A tensor argument of an op: its traced meta and its shape as expressions."""

    meta: TensorMeta
    shape: Shape

    @property
    def symbolic(self) -> bool:
        return any(isinstance(d, Expr) for d in self.shape)


class Builder:
    """Creates expressions in evaluation order (every source before its users)."""

    def __init__(self) -> None:
        self.exprs: list[Expr] = []
        self.node = ""
        #: the tensor inputs of the node being built
        self.inputs: list[T] = []

    def add(self, e: Expr) -> Expr:
        e.id, e.node = len(self.exprs), self.node
        self.exprs.append(e)
        return e

    def floor(self, x: Any, a: int, b: int, c: int) -> Any:
        if not isinstance(x, Expr):
            return (a * x + b) // c
        if (a, b, c) == (1, 0, 1):
            return x
        return self.add(Floor(x, a, b, c))

    def merge(self, parts: Sequence[Any], mode: str) -> Any:
        syms = [p for p in parts if isinstance(p, Expr)]
        if not syms:
            if mode == "equal" or mode == "inplace":
                return parts[0]
            return max(parts)
        rest = [p for p in parts if p is not syms[0]]
        if not rest or (mode != "equal" and all(p == 1 for p in rest if not isinstance(p, Expr))
                        and all(p is syms[0] for p in rest if isinstance(p, Expr))):
            if mode != "inplace" or parts[0] is syms[0]:
                return syms[0]
        return self.add(Merge(parts, mode, self.node))

    def fixed(self, x: Any, size: int) -> int:
        if isinstance(x, Expr):
            self.add(Fixed(x, size, self.node))
        return size


SizeRule = Callable[[OpCall, tuple, Builder], list[Shape]]
SIZE_RULES: Registry[str, SizeRule] = Registry("size rules")


def _first(args: tuple) -> T:
    return args[0]


def _const(meta: TensorMeta) -> Shape:
    return meta.shape


def _others_const(call: OpCall, out_shapes: list[Shape]) -> list[Shape]:
    return out_shapes + [_const(m) for m in call.outputs[len(out_shapes):]]


# -- windows
@SIZE_RULES.register("aten.convolution")
def _convolution(call: OpCall, args: tuple, b: Builder) -> list[Shape]:
    """aten.convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding,
    groups): conv_out per spatial axis, conv_transpose_out when transposed; channels fixed."""
    x, weight = args[0], args[1]
    nd = len(weight.meta.shape) - 2
    # ATen may pass one value for every axis, e.g. padding=(0,)
    stride, padding, dilation = (as_tuple(v, nd) for v in args[3:6])
    transposed, output_padding = args[6], as_tuple(args[7], nd)
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


def _window(b: Builder, x: T, kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int],
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
def _max_pool(call: OpCall, args: tuple, b: Builder) -> list[Shape]:
    """(input, kernel, stride=kernel, padding=0, dilation=1, ceil_mode=False): pool_out."""
    kernel = args[1]
    stride = args[2] if len(args) > 2 else ()
    padding = args[3] if len(args) > 3 else (0,)
    dilation = args[4] if len(args) > 4 else (1,)
    ceil_mode = bool(args[5]) if len(args) > 5 else False
    out = _window(b, args[0], kernel, stride, padding, dilation, ceil_mode)
    return [out] * len(call.outputs)


@SIZE_RULES.register("aten.avg_pool1d", "aten.avg_pool2d", "aten.avg_pool3d")
def _avg_pool(call: OpCall, args: tuple, b: Builder) -> list[Shape]:
    """(input, kernel, stride=kernel, padding=0, ceil_mode=False, ...): pool_out, dilation 1."""
    kernel = args[1]
    stride = args[2] if len(args) > 2 else ()
    padding = args[3] if len(args) > 3 else (0,)
    ceil_mode = bool(args[4]) if len(args) > 4 else False
    return [_window(b, args[0], kernel, stride, padding, (1,), ceil_mode)]


@SIZE_RULES.register("aten._adaptive_avg_pool1d", "aten._adaptive_avg_pool2d", "aten._adaptive_avg_pool3d",
                     "aten.adaptive_max_pool1d", "aten.adaptive_max_pool2d", "aten.adaptive_max_pool3d")
def _adaptive(call: OpCall, args: tuple, b: Builder) -> list[Shape]:
    """Adaptive pooling: the spatial output is the constant ``output_size``."""
    x, nd = args[0], len(args[1])
    out = call.outputs[0].shape
    shape = tuple(x.shape[:-nd]) + tuple(out[-nd:])
    return [shape] * len(call.outputs)


@SIZE_RULES.register("aten.mean", "aten.sum", "aten.amax", "aten.amin", "aten.max", "aten.min")
def _reduce(call: OpCall, args: tuple, b: Builder) -> list[Shape]:
    """Reductions: the reduced dims become 1 (keepdim) or disappear; a full reduction is a scalar."""
    x = args[0]
    dims = args[1] if len(args) > 1 else None
    keep = bool(args[2]) if len(args) > 2 else dict(call.kwargs).get("keepdim", False)
    if isinstance(dims, int):
        dims = (dims,)
    if not isinstance(dims, tuple) or not dims:
        return _others_const(call, [])
    rank = len(x.shape)
    gone = {d % rank for d in dims}
    shape = tuple(1 if i in gone else d for i, d in enumerate(x.shape) if keep or i not in gone)
    return [shape] * len(call.outputs)


# -- upsampling and padding
@SIZE_RULES.register("aten.upsample_nearest1d", "aten.upsample_nearest2d", "aten.upsample_nearest3d",
                     "aten._upsample_nearest_exact1d", "aten._upsample_nearest_exact2d",
                     "aten._upsample_nearest_exact3d", "aten.upsample_linear1d", "aten.upsample_bilinear2d",
                     "aten.upsample_bicubic2d", "aten.upsample_trilinear3d")
def _upsample(call: OpCall, args: tuple, b: Builder) -> list[Shape]:
    """(input, output_size, [align_corners], scales...): floor(W·scale) when a scale factor was
    given, the constant output_size otherwise."""
    x, size = args[0], args[1]
    nd = len(size)
    scales = [a for a in args[2:] if a is None or (isinstance(a, float) and not isinstance(a, bool))]
    scales = (scales + [None] * nd)[:nd]
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
def _pad(call: OpCall, args: tuple, b: Builder) -> list[Shape]:
    """(input, pad): W + left + right, pairs from the last dim backwards. Reflection needs
    W > max(left, right)."""
    x, pad = args[0], args[1]
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
def _first_shape(call: OpCall, args: tuple, b: Builder) -> list[Shape]:
    """Normalisation, dropout, softmax, copies: output 0 has the input's shape (statistics are constant)."""
    return _others_const(call, [_first(args).shape])


@SIZE_RULES.register("aten.native_layer_norm")
def _layer_norm(call: OpCall, args: tuple, b: Builder) -> list[Shape]:
    """(input, normalized_shape, weight, bias, eps) -> (out, mean, rstd): out has the input's shape;
    the normalised (trailing) dims must equal ``normalized_shape`` (the weight's); mean and rstd
    keep the leading dims and have size 1 in the normalised ones."""
    x, normalized = args[0], tuple(args[1])
    lead = len(x.shape) - len(normalized)
    for d, size in zip(x.shape[lead:], normalized):
        b.fixed(d, size)
    out = tuple(x.shape[:lead]) + tuple(normalized)
    stats = tuple(x.shape[:lead]) + (1,) * len(normalized)
    return [out] + [stats] * (len(call.outputs) - 1)


def _tensors(args: Any) -> list[T]:
    if isinstance(args, T):
        return [args]
    if isinstance(args, tuple):
        return [t for a in args for t in _tensors(a)]
    return []


def _pointwise(call: OpCall, args: tuple, b: Builder) -> list[Shape]:
    """Broadcasting: per aligned dim, sizes equal or 1; in-place ops keep the first operand's size."""
    tensors = _tensors(args)
    rank = max(len(t.shape) for t in tensors)
    mode = "inplace" if call.op.endswith("_") else "broadcast"
    padded = [(1,) * (rank - len(t.shape)) + tuple(t.shape) for t in tensors]
    shape = tuple(b.merge([p[i] for p in padded], mode) for i in range(rank))
    return [shape if m.shape == tuple(_trace_value(d, m.shape[i]) for i, d in enumerate(shape)) else m.shape
            for m in call.outputs]


def _trace_value(d: Any, traced: int) -> int:
    return traced if isinstance(d, Expr) else d


# -- reshaping
@SIZE_RULES.register("aten.view", "aten._unsafe_view", "aten.reshape")
def _view(call: OpCall, args: tuple, b: Builder) -> list[Shape]:
    """Dims are grouped into blocks with equal products at the traced size. A block of input dims
    merged into one output dim (flatten) multiplies; a constant target size is a constraint;
    a -1 target takes what is left. Splitting a size-dependent dim is not characterised."""
    x, target = args[0], tuple(args[1])
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
            else:
                dims.append(b.fixed(product, out_sizes[k]))
    return [tuple(dims[: len(out_sizes)])]


@SIZE_RULES.register("aten.unsqueeze")
def _unsqueeze(call: OpCall, args: tuple, b: Builder) -> list[Shape]:
    x, dim = args[0], args[1]
    dims = list(x.shape)
    dims.insert(dim % (len(dims) + 1), 1)
    return [tuple(dims)]


@SIZE_RULES.register("aten.squeeze")
def _squeeze(call: OpCall, args: tuple, b: Builder) -> list[Shape]:
    """A size-dependent dim squeezed at size 1 only disappears for that size: not characterised."""
    x = args[0]
    chosen = args[1] if len(args) > 1 else tuple(range(len(x.shape)))
    chosen = {d % len(x.shape) for d in ((chosen,) if isinstance(chosen, int) else chosen)}
    if any(isinstance(x.shape[d], Expr) for d in chosen):
        raise Uncharacterised("squeeze of a size-dependent dim")
    return [tuple(d for i, d in enumerate(x.shape) if not (i in chosen and d == 1))]


@SIZE_RULES.register("aten.permute")
def _permute(call: OpCall, args: tuple, b: Builder) -> list[Shape]:
    x = args[0]
    return [tuple(x.shape[d % len(x.shape)] for d in args[1])]


@SIZE_RULES.register("aten.transpose", "aten.t", "aten.numpy_T")
def _transpose(call: OpCall, args: tuple, b: Builder) -> list[Shape]:
    x = args[0]
    dims = list(x.shape)
    d0, d1 = (args[1], args[2]) if len(args) > 2 else (0, len(dims) - 1)
    dims[d0 % len(dims)], dims[d1 % len(dims)] = dims[d1 % len(dims)], dims[d0 % len(dims)]
    return [tuple(dims)]


@SIZE_RULES.register("aten.expand")
def _expand(call: OpCall, args: tuple, b: Builder) -> list[Shape]:
    """-1 keeps the dim; a size-dependent dim expanded to a constant must be 1 or that constant.
    ``y.expand_as(x)``: the node also consumes ``x``, whose shape is the target, so the target
    sizes are ``x``'s (they follow the input size) rather than constants."""
    x, sizes = args[0], tuple(args[1])
    template = next((t for t in b.inputs if t.meta.shape == sizes and t.symbolic), None)
    if template is not None:
        sizes = tuple(template.shape)
    padded = (1,) * (len(sizes) - len(x.shape)) + tuple(x.shape)
    return [tuple(d if isinstance(s, int) and s == -1 else b.merge([d, s], "broadcast")
                  for s, d in zip(sizes, padded))]


@SIZE_RULES.register("aten.slice")
def _slice(call: OpCall, args: tuple, b: Builder) -> list[Shape]:
    """Only the full slice of a size-dependent dim (``x[:, :, :]``) is characterised."""
    x = args[0]
    dim = args[1] if len(args) > 1 else 0
    start = args[2] if len(args) > 2 else None
    end = args[3] if len(args) > 3 else None
    step = args[4] if len(args) > 4 else 1
    dims = list(x.shape)
    d = dim % len(dims)
    if isinstance(dims[d], Expr):
        if start not in (None, 0) or step != 1 or (end is not None and end < 2**62):
            raise Uncharacterised("slicing a size-dependent dim with constant bounds")
    else:
        dims[d] = call.outputs[0].shape[d]
    return [tuple(dims)]


@SIZE_RULES.register("aten.select")
def _select(call: OpCall, args: tuple, b: Builder) -> list[Shape]:
    x, dim = args[0], args[1] % len(args[0].shape)
    if isinstance(x.shape[dim], Expr):
        raise Uncharacterised("indexing into a size-dependent dim")
    return [tuple(d for i, d in enumerate(x.shape) if i != dim)]


@SIZE_RULES.register("aten.split", "aten.split_with_sizes", "aten.unbind")
def _split(call: OpCall, args: tuple, b: Builder) -> list[Shape]:
    x = args[0]
    dim = (args[2] if len(args) > 2 else 0) if call.op != "aten.unbind" else (args[1] if len(args) > 1 else 0)
    dim %= len(x.shape)
    if isinstance(x.shape[dim], Expr):
        raise Uncharacterised("splitting a size-dependent dim")
    return [tuple(m.shape[dim] if i == dim else d for i, d in enumerate(x.shape)) if call.op != "aten.unbind"
            else tuple(d for i, d in enumerate(x.shape) if i != dim) for m in call.outputs]


# -- merges and matrix products
@SIZE_RULES.register("aten.cat")
def _cat(call: OpCall, args: tuple, b: Builder) -> list[Shape]:
    """All dims but ``dim`` equal (no broadcasting); ``dim`` is the sum."""
    tensors = [t for t in args[0] if len(t.meta.shape) > 1 or t.meta.shape != (0,)]
    dim = (args[1] if len(args) > 1 else 0) % len(tensors[0].shape)
    shape = tuple(
        b.add(Sum([t.shape[i] for t in tensors])) if i == dim and any(isinstance(t.shape[i], Expr) for t in tensors)
        else sum(t.meta.shape[i] for t in tensors) if i == dim
        else b.merge([t.shape[i] for t in tensors], "equal")
        for i in range(len(tensors[0].shape))
    )
    return [shape]


@SIZE_RULES.register("aten.stack")
def _stack(call: OpCall, args: tuple, b: Builder) -> list[Shape]:
    tensors = list(args[0])
    dim = (args[1] if len(args) > 1 else 0) % (len(tensors[0].shape) + 1)
    dims = [b.merge([t.shape[i] for t in tensors], "equal") for i in range(len(tensors[0].shape))]
    dims.insert(dim, len(tensors))
    return [tuple(dims)]


def _matmul(b: Builder, m1: T, m2: T) -> Shape:
    """(..., n, k) @ (..., k, p): the contracted sizes must be equal."""
    b.merge([m1.shape[-1], m2.shape[-2]], "equal")
    lead1, lead2 = m1.shape[:-2], m2.shape[:-2]
    n = max(len(lead1), len(lead2))
    lead = [b.merge(list(pair), "broadcast") for pair in
            zip((1,) * (n - len(lead1)) + tuple(lead1), (1,) * (n - len(lead2)) + tuple(lead2))]
    return (*lead, m1.shape[-2], m2.shape[-1])


@SIZE_RULES.register("aten.mm", "aten.bmm")
def _mm(call: OpCall, args: tuple, b: Builder) -> list[Shape]:
    return [_matmul(b, args[0], args[1])]


@SIZE_RULES.register("aten.addmm", "aten.baddbmm")
def _addmm(call: OpCall, args: tuple, b: Builder) -> list[Shape]:
    """(bias, m1, m2): a Linear layer; its input features are the contracted size."""
    return [_matmul(b, args[1], args[2])]


# ---------------------------------------------------------------- the traversal

class _Pool:
    """Matches an op's tensor arguments (known only by their meta) to the node's inputs and to
    the outputs of earlier ops in the same node; anything else (a parameter) is constant."""

    def __init__(self, inputs: list[T]) -> None:
        self.inputs = inputs
        self.used = [False] * len(inputs)
        self.produced: list[T] = []

    def resolve(self, meta: TensorMeta) -> T:
        for t in reversed(self.produced):
            if t.meta == meta:
                return t
        for i, t in enumerate(self.inputs):
            if t.meta == meta and not self.used[i]:
                self.used[i] = True
                return t
        for t in self.inputs:
            if t.meta == meta:
                return t
        return T(meta, meta.shape)

    def wrap(self, value: Any) -> Any:
        if isinstance(value, TensorMeta):
            return self.resolve(value)
        if isinstance(value, tuple) and not all(type(v) is int for v in value):  # (1, 1) strides: as they are
            return tuple(self.wrap(v) for v in value)
        return value


def _rule(op: str) -> SizeRule | None:
    rule = SIZE_RULES.get(op)
    if rule is None and is_pointwise(op):
        return _pointwise
    return rule


def _node_shapes(node: Node, inputs: list[T], b: Builder) -> list[Shape]:
    if not any(t.symbolic for t in inputs):
        return [m.shape for _, m in node.outputs]
    pool = _Pool(inputs)
    b.inputs = inputs
    for call in node.ops:
        args = pool.wrap(call.args)
        rule = _rule(call.op)
        if rule is not None:
            shapes = rule(call, args, b)
        elif not any(t.symbolic for t in _tensors(args)):
            shapes = [m.shape for m in call.outputs]
        else:
            raise Uncharacterised(f"no size rule for {call.op}")
        pool.produced += [T(m, s) for m, s in zip(call.outputs, shapes)]
    out = []
    for _, meta in node.outputs:
        match = next((t for t in reversed(pool.produced) if t.meta == meta), None)
        if match is None:
            match = next((t for t in inputs if t.meta == meta), None)
        if match is None:
            raise Uncharacterised("its output matches none of its ops' results")
        out.append(match.shape)
    return out


@dataclass(frozen=True)
class _Flow:
    """Every node output's shape as expressions, or why the axis can't be characterised."""

    exprs: tuple[Expr, ...]
    shapes: dict[str, list[tuple[str, Shape]]]
    reason: str | None


def _flow(graph: ModelGraph, axis: int) -> _Flow:
    b = Builder()
    var = b.add(Var())
    shapes: dict[str, list[tuple[str, Shape]]] = {}
    first_input = True
    for node in graph.nodes:
        b.node = node.name
        if node.kind == "input":
            shape: Shape = node.outputs[0][1].shape if node.outputs else ()
            if first_input:
                shape = tuple(var if i == axis else d for i, d in enumerate(shape))
                first_input = False
            shapes[node.name] = [("", shape)]
            continue
        inputs: list[Any] = []
        taken: dict[Any, Any] = {}
        for source, meta in zip(node.inputs, node.input_metas):
            outs = shapes.get(source, [])
            candidates = [s for _, s in outs if _traced(s, meta)]
            index = taken.get((source, meta), 0)
            taken[(source, meta)] = index + 1
            inputs.append(T(meta, candidates[index % len(candidates)] if candidates else meta.shape))
        try:
            node_shapes = _node_shapes(node, inputs, b)
        except Uncharacterised as e:
            return _Flow(tuple(b.exprs), shapes, f"{node.name} ({node.type}): {e}")
        shapes[node.name] = [(key, s) for (key, _), s in zip(node.outputs, node_shapes)]
    return _Flow(tuple(b.exprs), shapes, None)


def _traced(shape: Shape, meta: TensorMeta) -> bool:
    return len(shape) == len(meta.shape) and all(isinstance(d, Expr) or d == m for d, m in zip(shape, meta.shape))


# ---------------------------------------------------------------- results

@dataclass(frozen=True)
class Accepted:
    """``arithmetic``: every s ≥ minimum with (s − offset) % step == 0 and s ≤ maximum (None:
    unbounded). ``set``: exactly ``sizes`` among 1..up_to."""

    kind: str
    minimum: int | None = None
    step: int | None = None
    offset: int | None = None
    maximum: int | None = None
    sizes: tuple[int, ...] = ()
    up_to: int | None = None

    def contains(self, s: int) -> bool:
        if self.kind == "set":
            return s in self.sizes
        assert self.minimum is not None and self.step is not None and self.offset is not None
        return s >= self.minimum and (s - self.offset) % self.step == 0 and (
            self.maximum is None or s <= self.maximum)

    def words(self) -> str:
        """A bounded rule with gaps and at most 4 sizes is listed (``only 1, 32``, not
        ``sizes ≡ 1 (mod 31) from 1 to 32``); a contiguous range reads ``every size from 32 to 35``."""
        if self.kind == "set":
            return f"only these sizes up to {self.up_to}: " + ", ".join(str(s) for s in self.sizes)
        lo, step, hi = self.minimum, self.step, self.maximum
        assert lo is not None and step is not None
        if hi == lo:
            return f"exactly {lo}"
        if hi is not None and step > 1 and (hi - lo) // step < 4:
            return "only " + ", ".join(str(s) for s in range(lo, hi + 1, step))
        if step == 1:
            return f"every size ≥ {lo}" if hi is None else f"every size from {lo} to {hi}"
        if self.offset == 0:
            text = f"multiples of {step} from {lo}"
        else:
            text = f"sizes ≡ {self.offset} (mod {step}) from {lo}"
        return f"{text} up" if hi is None else f"{text} to {hi}"

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "set":
            return {"kind": "set", "sizes": list(self.sizes), "up_to": self.up_to}
        return {"kind": "arithmetic", "minimum": self.minimum, "step": self.step, "offset": self.offset,
                "maximum": self.maximum}


@dataclass(frozen=True)
class SizeFormula:
    """Dim ``dim`` of output ``key`` of node ``name`` as a function of the studied input size."""

    name: str
    key: str
    dim: int
    formula: str


@dataclass(frozen=True)
class AxisSizes:
    axis: int
    symbol: str
    given: int
    minimum: int | None
    accepted: Accepted | None
    #: why the axis can't be characterised (then minimum and accepted are None)
    reason: str | None
    outputs: tuple[SizeFormula, ...]
    layers: tuple[SizeFormula, ...]


@dataclass(frozen=True)
class SizeReport:
    model: str
    input_shape: tuple[int, ...]
    axes: tuple[AxisSizes, ...]

    def to_dict(self, layers: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema": SCHEMA,
            "model": self.model,
            "input": list(self.input_shape),
            "axes": [{"axis": a.axis, "symbol": a.symbol, "minimum": a.minimum,
                      "accepted": a.accepted.to_dict() if a.accepted else None,
                      **({"reason": a.reason} if a.reason else {})} for a in self.axes],
            "outputs": [{"key": f.key, "axis": a.axis, "dim": f.dim, "formula": f.formula}
                        for a in self.axes for f in a.outputs],
        }
        if layers:
            d["layers"] = [{"name": f.name, "key": f.key, "axis": a.axis, "dim": f.dim, "formula": f.formula}
                           for a in self.axes for f in a.layers]
        return d


def axis_symbol(axis: int, rank: int) -> str:
    """H and W for images, D H W for volumes, L for sequences, N and C for batch and channels."""
    spatial = {1: "L", 2: "HW", 3: "DHW"}.get(rank - 2, "")
    if axis >= 2 and axis - 2 < len(spatial):
        return spatial[axis - 2]
    return {0: "N", 1: "C"}.get(axis, f"S{axis}")


def default_axes(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(range(2, len(shape)))


def _evaluate(exprs: Sequence[Expr], s: int) -> list[int | None]:
    vals: list[int | None] = [None] * len(exprs)
    for e in exprs:
        vals[e.id] = e.value(vals, s)
    return vals


def _fit(accepted: list[int], up_to: int, period: int) -> Accepted:
    lo = accepted[0]
    step = math.gcd(*(s - lo for s in accepted[1:])) if len(accepted) > 1 else 1
    step = step or 1
    hi = None if accepted[-1] > up_to - step - period else accepted[-1]
    rule = Accepted("arithmetic", minimum=lo, step=step, offset=lo % step, maximum=hi)
    if [s for s in range(1, up_to + 1) if rule.contains(s)] == accepted:
        return rule
    return Accepted("set", sizes=tuple(accepted), up_to=up_to)


#: ``retrace(axis, size)``: the model traced again with the first input's ``axis`` at ``size`` (the
#: other dims as traced), or the error message when the model rejects that size
Retrace = Callable[[int, int], ModelGraph | str]

PYTHON_VALUES = ("cannot characterise: the model's sizes depend on the input through Python values "
                 "(e.g. x.shape used in view/interpolate/control flow)")


def analyse_axis(graph: ModelGraph, axis: int, layers: bool = False, retrace: Retrace | None = None,
                 probes: int = 3) -> AxisSizes:
    """``retrace`` (when given) checks the rule and formulas derived from this one trace against
    up to ``probes`` other traces; on any disagreement the axis is reported as not characterised."""
    first = next(n for n in graph.nodes if n.kind == "input")
    shape = first.outputs[0][1].shape
    symbol, given = axis_symbol(axis, len(shape)), shape[axis]
    flow = _flow(graph, axis)
    if flow.reason:
        return AxisSizes(axis, symbol, given, None, None,
                         f"cannot characterise the accepted sizes: {flow.reason}", (), ())
    exprs = flow.exprs
    period = math.lcm(*(e.period[0] for e in exprs))
    has_bound = any(isinstance(e, Fixed) for e in exprs)
    up_to = min(MAX_UP_TO, max(MIN_UP_TO, 2 * given) + 4 * period)
    while True:
        table = {s: _evaluate(exprs, s) for s in range(1, up_to + 1)}
        ok = [s for s, vals in table.items() if all(v is not None for v in vals)]
        if not (has_bound and ok and ok[-1] > up_to - 2 * period and up_to < MAX_UP_TO):
            break
        up_to = min(MAX_UP_TO, 4 * up_to)
    _check_traced(graph, flow, table[given], given, symbol)
    if not ok:  # the traced size is accepted, so this means the rules are wrong
        raise InternalError(f"{symbol}: no size accepted although {given} traced")
    accepted = _fit(ok, up_to, period)
    if retrace is not None:
        differs = _validate(graph, flow, table, ok, given, axis, retrace, probes)
        if differs:
            return AxisSizes(axis, symbol, given, None, None, f"{PYTHON_VALUES} — {differs}", (), ())
    texts = _Formulas(ok, table, symbol)
    output = next((n for n in graph.nodes if n.kind == "output"), None)
    outputs = tuple(_formulas(output.name, flow.shapes.get(output.name, []), texts)) if output else ()
    per_layer = tuple(f for n in graph.nodes if n.kind not in ("input", "output")
                      for f in _formulas(n.name, flow.shapes.get(n.name, []), texts)) if layers else ()
    return AxisSizes(axis, symbol, given, ok[0], accepted, None, outputs, per_layer)


def _probe_sizes(ok: list[int], up_to: int, given: int) -> list[int]:
    """The sizes to re-trace, most telling first: twice the given size when the rule rejects it
    (else another rejected size), the smallest accepted size, the accepted size nearest 2×given."""
    accepted = set(ok)
    rejected = [s for s in range(ok[0] + 1, up_to + 1) if s not in accepted] or list(range(ok[0] - 1, 0, -1))
    reject = 2 * given if 2 * given not in accepted else rejected[0] if rejected else None
    near = min((s for s in ok if s != given), key=lambda s: (abs(s - 2 * given), s), default=None)
    chosen = [s for s in (reject, ok[0], near) if s is not None and s != given and s <= up_to]
    return list(dict.fromkeys(chosen))


def _validate(graph: ModelGraph, flow: _Flow, table: dict[int, list[int | None]], ok: list[int], given: int,
              axis: int, retrace: Retrace, probes: int) -> str | None:
    """Re-traces at a few sizes; says where the model differs from what the expressions predict
    (sizes reaching layers as Python values look constant in one trace), None when all agree."""
    up_to = max(table)
    for s in _probe_sizes(ok, up_to, given)[:probes]:
        other = retrace(axis, s)
        vals = table[s]
        if isinstance(other, str):
            if s in ok:
                return f"the model fails at size {s}, which the rule accepts ({_first_line(other)})"
            continue
        if s not in ok:
            failing = next((e for e in flow.exprs if vals[e.id] is None), None)
            where = failing.node if failing is not None else "?"
            return f"layer {where} differs at size {s}: the rule rejects it but the model runs"
        names, other_names = [n.name for n in graph.nodes], [n.name for n in other.nodes]
        if names != other_names:
            at = next((i for i, (a, b) in enumerate(zip(names, other_names)) if a != b), min(len(names),
                                                                                           len(other_names)))
            where = names[at] if at < len(names) else other_names[at]
            return f"layer {where} differs at size {s}: the traced graph changes"
        for node in other.nodes:
            for (key, meta), (_, shape) in zip(node.outputs, flow.shapes.get(node.name, [])):
                want = tuple(vals[d.id] if isinstance(d, Expr) else d for d in shape)
                if want != meta.shape:
                    return (f"layer {node.name} differs at size {s}: output{key} is "
                            f"{'x'.join(map(str, meta.shape))}, the formulas give {'x'.join(map(str, want))}")
    return None


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "error"
    return line if len(line) <= 160 else line[:157] + "..."


def _check_traced(graph: ModelGraph, flow: _Flow, vals: list[int | None], given: int, symbol: str) -> None:
    """At the traced size, every expression must give the size the meta execution produced."""
    for node in graph.nodes:
        for (key, meta), (_, shape) in zip(node.outputs, flow.shapes.get(node.name, [])):
            got = tuple(vals[d.id] if isinstance(d, Expr) else d for d in shape)
            if got != meta.shape:
                raise InternalError(
                    f"size arithmetic for {node.name}{key} gives {got} at {symbol}={given} "
                    f"but the traced shape is {meta.shape}")


def _formulas(name: str, outs: list[tuple[str, Shape]], texts: _Formulas) -> list[SizeFormula]:
    return [SizeFormula(name, key, i, texts.text(d)) for key, shape in outs
            for i, d in enumerate(shape) if isinstance(d, Expr)]


class _Formulas:
    """Writes expressions as text, collapsing chains of floor maps
    (floor((floor((a·x + b)/c) + b')/c') = floor((a·x + b + c·b')/(c·c'))) and, at a merge, using
    the simplest operand that equals the merged size at every accepted size."""

    def __init__(self, accepted: list[int], table: dict[int, list[int | None]], symbol: str) -> None:
        self.accepted, self.table, self.symbol = accepted, table, symbol
        self.memo: dict[int, str] = {}

    def _agrees(self, a: Expr, part: Any) -> bool:
        for s in self.accepted:
            vals = self.table[s]
            if vals[a.id] != (vals[part.id] if isinstance(part, Expr) else part):
                return False
        return True

    def _choose(self, e: Expr) -> Any:
        while isinstance(e, (Merge, Fixed)):
            parts = (e.src,) if isinstance(e, Fixed) else e.parts
            fits = [p for p in parts if self._agrees(e, p)]
            if not fits:
                return e
            e = min(fits, key=lambda p: len(self.text(p)) if isinstance(p, Expr) else 0)
            if not isinstance(e, Expr):
                return e
        return e

    def text(self, e: Any) -> str:
        if not isinstance(e, Expr):
            return str(e)
        if e.id not in self.memo:
            self.memo[e.id] = self._text(e)
        return self.memo[e.id]

    def _text(self, e: Expr) -> str:
        if isinstance(e, Var):
            return self.symbol
        if isinstance(e, (Merge, Fixed)):
            chosen = self._choose(e)
            if chosen is not e:
                return self.text(chosen)
            assert isinstance(e, Merge)
            return f"{'max' if e.mode != 'equal' else 'equal'}({', '.join(self.text(p) for p in e.parts)})"
        if isinstance(e, Sum):
            return " + ".join(self.text(p) for p in e.parts)
        if isinstance(e, Scale):
            return f"floor({self.text(e.src)}·{e.scale:g})"
        if isinstance(e, CeilPool):
            return (f"ceil_pool({self.text(e.src)}; k={e.kernel}, s={e.stride}, p={e.padding}, "
                    f"d={e.dilation})")
        assert isinstance(e, Floor)
        inner, a, b, c = self._chain(e)
        return _affine_text(self.text(inner), a, b, c)

    def _chain(self, e: Floor) -> tuple[Any, int, int, int]:
        a, b, c = e.a, e.b, e.c
        src = self._choose(e.src)
        while isinstance(src, Floor):
            a1, b1, c1 = src.a, src.b, src.c
            if c1 == 1:
                a, b, c = a * a1, a * b1 + b, c
            elif a == 1:
                a, b, c = a1, b1 + c1 * b, c1 * c
            else:
                break
            g = math.gcd(a, b, c)
            a, b, c = a // g, b // g, c // g
            src = self._choose(src.src)
        return src, a, b, c


def _affine_text(x: str, a: int, b: int, c: int) -> str:
    """floor((a·x + b)/c) written as ``floor((x − r)/c) + q`` with the remainder in (−c, 0]."""
    if " " in x and a != 1:
        x = f"({x})"
    ax = x if a == 1 else f"{a}·{x}"
    if c == 1:
        return ax + (f" + {b}" if b > 0 else f" − {-b}" if b < 0 else "")
    q = -(-b // c)
    r = b - c * q
    body = f"floor(({ax} − {-r})/{c})" if r else f"floor({ax}/{c})"
    return body + (f" + {q}" if q > 0 else f" − {-q}" if q < 0 else "")


def analyse_sizes(graph: ModelGraph, model: str, axes: Sequence[int] | None = None,
                  layers: bool = False, retrace: Retrace | None = None, probes: int = 3) -> SizeReport:
    """The accepted sizes of each studied axis of the first input (default: its spatial axes),
    validated by ``probes`` re-traces per axis when ``retrace`` is given."""
    first = next((n for n in graph.nodes if n.kind == "input" and n.outputs), None)
    if first is None:
        raise ConfigError("the model takes no tensor input, so it has no input sizes to study")
    shape = first.outputs[0][1].shape
    chosen = default_axes(shape) if axes is None else tuple(axes)
    for axis in chosen:
        if not 0 <= axis < len(shape):
            raise ConfigError(
                f"--axis {axis}: the first input {'x'.join(map(str, shape))} has dims 0..{len(shape) - 1}")
    return SizeReport(model, shape, tuple(analyse_axis(graph, a, layers, retrace, probes) for a in chosen))


def minimum_note(graph: ModelGraph) -> str | None:
    """One line for the summary footer: the accepted sizes of each spatial axis by the layer
    arithmetic of this one trace, without the re-traces with which ``cnnshape sizes`` validates
    it. A model that reads tensor sizes into Python values (which one trace sees as constants)
    gets no rule, only where it reads them."""
    first = next((n for n in graph.nodes if n.kind == "input" and n.outputs), None)
    if first is None or not default_axes(first.outputs[0][1].shape):
        return None
    reads = graph.trace.size_reads
    if reads:
        more = f" and {len(reads) - 1} more place(s)" if len(reads) > 1 else ""
        return (f"accepted input sizes: not derived from one trace, the model reads tensor sizes into Python "
                f"values (at {reads[0]}{more}); `cnnshape sizes` re-traces to find them")
    try:
        report = analyse_sizes(graph, "")
    except CnnshapeError as e:  # the summary still stands; the footer says why this line is missing
        return f"accepted input sizes not determined: {e}"
    except Exception as e:  # a bug in the size analysis must not take the summary down with it
        return f"accepted input sizes not determined: cnnshape bug ({type(e).__name__}: {e}); please report it"
    parts = [f"{a.symbol}: {a.accepted.words()}" if a.accepted is not None else f"{a.symbol}: not characterised"
             for a in report.axes]
    return "accepted input sizes: " + "; ".join(parts) + " (layer arithmetic; `cnnshape sizes` validates)"
