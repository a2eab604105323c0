"""Meta kernels of our own for the ATen ops that make up CNNs, run instead of torch's.

torch's meta kernels for batch norm, element-wise ops, reductions, matrix products and
concatenation are Python decompositions: 0.2-7 ms a call, and the first one imports
``torch._dynamo`` (~1 s). A kernel here computes the same output (shape, dtype, strides) from the
arguments in a few µs, with the size arithmetic of :mod:`cnnshape.arith`.

A kernel handles only the plain case: meta tensors of one floating dtype with standard contiguous
strides, and arguments torch accepts. Anything else (channels-last or strided inputs, mixed dtypes,
an argument torch would reject) makes it return ``None`` and torch's own kernel runs, so every
unusual case and every error message is still torch's. ``cross_check`` runs both and raises on
any difference; the test suite runs every example that way.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..arith import conv_out, conv_transpose_out, pool_out
from ..errors import InternalError
from ..registry import Registry
from . import dtypes, refusals

#: ``kernel(args, kwargs) -> output(s)``, or ``None`` when the call is not the plain case
Kernel = Callable[[tuple[Any, ...], dict[str, Any]], Any]
KERNELS: Registry[str, Kernel] = Registry("meta kernels")

_META = torch.device("meta")


def _empty(shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device=_META)


def _standard(t: torch.Tensor) -> bool:
    """A meta tensor laid out row-major with exactly the default strides (so not channels-last,
    even where a size-1 axis makes both layouts "contiguous")."""
    if t.device != _META or not t.is_contiguous():
        return False
    expected, stride = [], 1
    for size in reversed(t.shape):
        expected.append(stride)
        stride *= max(size, 1)
    return t.stride() == tuple(reversed(expected))


def _plain(*tensors: torch.Tensor | None) -> torch.dtype | None:
    """The common floating dtype of ``tensors`` (``None`` entries skipped) when every one is a
    standard meta tensor of it; else ``None``."""
    dtype = None
    for t in tensors:
        if t is None:
            continue
        if not isinstance(t, torch.Tensor) or not _standard(t) or not t.dtype.is_floating_point:
            return None
        if dtype is None:
            dtype = t.dtype
        elif t.dtype != dtype:
            return None
    return dtype


def _ints(value: Any, n: int) -> tuple[int, ...] | None:
    """A per-axis int list of length ``n`` (one value broadcast), or None."""
    if isinstance(value, int):
        return (value,) * n
    if isinstance(value, (list, tuple)) and all(isinstance(v, int) for v in value):
        if len(value) == n:
            return tuple(value)
        if len(value) == 1:
            return (value[0],) * n
    return None


# --- convolution ----------------------------------------------------------------------------


@KERNELS.register("aten.convolution.default")
def convolution(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
    """(N, C_in, *W) * (C_out, C_in/g, *F) -> (N, C_out, *conv_out(W)); transposed weights are
    (C_in, C_out/g, *F) and give conv_transpose_out(W)."""
    if kwargs or len(args) != 9:
        return None
    x, w, bias, stride, padding, dilation, transposed, output_padding, groups = args
    dtype = _plain(x, w, bias)
    nd = w.dim() - 2 if dtype is not None else 0
    if nd < 1 or x.dim() != w.dim() or not isinstance(groups, int) or groups < 1 or 0 in x.shape:
        return None
    per_axis = [_ints(v, nd) for v in (stride, padding, dilation, output_padding)]
    if any(v is None for v in per_axis):
        return None
    s, p, d, op = per_axis
    assert s is not None and p is not None and d is not None and op is not None
    if min(s) < 1 or min(d) < 1 or min(p) < 0 or min(op) < 0:
        return None
    c_in, kernel = x.shape[1], w.shape[2:]
    if transposed:
        if c_in != w.shape[0] or c_in % groups or any(o >= si and o >= di for o, si, di in zip(op, s, d)):
            return None
        c_out = w.shape[1] * groups
        spatial = [conv_transpose_out(*a) for a in zip(x.shape[2:], kernel, s, p, d, op)]
    else:
        if c_in != w.shape[1] * groups or w.shape[0] % groups or any(op):
            return None
        c_out = w.shape[0]
        spatial = [conv_out(*a) for a in zip(x.shape[2:], kernel, s, p, d)]
    if dtype is None or min(spatial) < 1 or (bias is not None and tuple(bias.shape) != (c_out,)):
        return None
    return _empty((x.shape[0], c_out, *spatial), dtype)


# --- normalisation ----------------------------------------------------------------------------


@KERNELS.register("aten.native_batch_norm.default")
def native_batch_norm(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[torch.Tensor, ...] | None:
    """(N, C, *) -> the same shape, plus the per-channel saved mean and inverse std, (C,) each
    (torch's meta kernel returns them in eval mode too)."""
    if kwargs or len(args) != 8:
        return None
    x, weight, bias, mean, var = args[:5]
    dtype = _plain(x, weight, bias, mean, var)
    if dtype is None or x.dim() < 2:
        return None
    channels = (x.shape[1],)
    if any(t is not None and tuple(t.shape) != channels for t in (weight, bias, mean, var)):
        return None
    return _empty(x.shape, dtype), _empty(channels, dtype), _empty(channels, dtype)


# --- element-wise -----------------------------------------------------------------------------

#: Element-wise ops whose result has the dtype of their (common floating) inputs, and their
#: in-place forms. Comparisons and predicates (bool results) are deliberately absent.
ELEMENTWISE = (
    "add", "sub", "rsub", "mul", "div", "neg", "abs", "reciprocal", "sqrt", "rsqrt", "pow", "exp",
    "log", "sigmoid", "tanh", "relu", "relu6", "leaky_relu", "hardtanh", "elu", "selu", "celu",
    "gelu", "silu", "mish", "hardswish", "hardsigmoid", "softplus", "threshold", "clamp",
    "clamp_min", "clamp_max", "maximum", "minimum", "square", "erf", "sin", "cos", "addcmul",
    "addcdiv", "lerp",
)


def _broadcast(shapes: list[tuple[int, ...]]) -> tuple[int, ...] | None:
    """numpy-style broadcast of ``shapes``, or None when they do not broadcast."""
    first = shapes[0]
    if all(s == first for s in shapes):
        return first
    rank = max(len(s) for s in shapes)
    out = [1] * rank
    for s in shapes:
        for i, size in enumerate(s, start=rank - len(s)):
            if size != 1:
                if out[i] not in (1, size):
                    return None
                out[i] = size
    return tuple(out)


def _expanded(t: torch.Tensor) -> bool:
    """A standard tensor broadcast with ``expand`` (stride 0 along the expanded axes)."""
    stride = 1
    for size, step in zip(reversed(t.shape), reversed(t.stride())):
        if step == 0:
            continue
        if size != 1 and step != stride:
            return False
        stride *= size
    return t.device == _META


def _elementwise(in_place: bool) -> Kernel:
    def kernel(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        others = [a for a in (*args, *kwargs.values()) if not isinstance(a, torch.Tensor)]
        if not tensors or any(isinstance(a, (complex, torch.dtype, list, tuple)) for a in others):
            return None
        dtype = tensors[0].dtype
        if not dtype.is_floating_point or any(t.dtype != dtype or not _expanded(t) for t in tensors):
            return None
        shape = _broadcast([tuple(t.shape) for t in tensors])
        # one operand laid out as the result (the others standard or expanded) makes it standard
        if shape is None or not any(tuple(t.shape) == shape and _standard(t) for t in tensors):
            return None
        if in_place and (shape != tuple(args[0].shape) or not _standard(args[0])):
            return None
        if in_place:  # the result is the first argument itself, as in torch
            return args[0]
        assert dtype is not None
        return _empty(shape, dtype)

    kernel.__doc__ = "Broadcast of the inputs' shapes, their dtype" + (" (in place: the first argument)." if in_place
                                                                        else ".")
    return kernel


def _register_elementwise() -> None:
    aten = torch.ops.aten
    for name in ELEMENTWISE:
        for op_name, in_place in ((name, False), (f"{name}_", True)):
            packet = getattr(aten, op_name, None)
            if packet is None:
                continue
            for overload in packet.overloads():
                op = getattr(packet, overload)
                schema = op._schema
                mutates_self = bool(schema.arguments) and schema.arguments[0].alias_info is not None
                one_tensor = len(schema.returns) == 1 and str(schema.returns[0].type) == "Tensor"
                if overload == "out" or "out" in overload or not one_tensor or mutates_self != in_place:
                    continue
                if torch.Tag.pointwise in op.tags:
                    KERNELS.add(_elementwise(in_place), str(op))


_register_elementwise()


# --- pooling and reductions -------------------------------------------------------------------


def _pool_spatial(x: torch.Tensor, nd: int, kernel: Any, stride: Any, padding: Any, dilation: Any,
                  ceil_mode: Any) -> tuple[int, ...] | None:
    """pool_out per spatial axis, or None where torch might refuse: padding above half the
    kernel (dilation or not), or a window larger than the input itself (the 3-d kernels refuse
    it even where padding or ``ceil_mode`` would give an output; the 2-d ones do not)."""
    k = _ints(kernel, nd)
    s = _ints(stride, nd) if stride not in ([], (), None) else k
    p, d = _ints(padding, nd), _ints(dilation, nd)
    if k is None or s is None or p is None or d is None or not isinstance(ceil_mode, bool):
        return None
    if min(k) < 1 or min(s) < 1 or min(d) < 1 or min(p) < 0:
        return None
    if any(pi > ki // 2 for ki, pi in zip(k, p)):
        return None
    if any(w < di * (ki - 1) + 1 for w, ki, di in zip(x.shape[-nd:], k, d)):
        return None
    out = tuple(pool_out(*a, ceil_mode) for a in zip(x.shape[-nd:], k, s, p, d))
    return out if min(out) >= 1 else None


def _pool_input(x: Any, nd: int) -> torch.dtype | None:
    dtype = _plain(x)
    return dtype if dtype is not None and x.dim() in (nd + 1, nd + 2) and 0 not in x.shape else None


def _max_pool(nd: int) -> Kernel:
    def kernel(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor] | None:
        if kwargs or len(args) != 6:
            return None
        x, k, s, p, d, ceil_mode = args
        dtype = _pool_input(x, nd)
        out = _pool_spatial(x, nd, k, s, p, d, ceil_mode) if dtype is not None else None
        if out is None:
            return None
        assert dtype is not None
        shape = (*x.shape[:-nd], *out)
        return _empty(shape, dtype), _empty(shape, torch.int64)

    kernel.__doc__ = f"max_pool{nd}d_with_indices: pool_out per spatial axis; int64 indices of the same shape."
    return kernel


def _avg_pool(nd: int) -> Kernel:
    def kernel(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
        if kwargs or len(args) != 7 or args[6] is not None:
            return None
        x, k, s, p, ceil_mode = args[:5]
        dtype = _pool_input(x, nd)
        out = _pool_spatial(x, nd, k, s, p, 1, ceil_mode) if dtype is not None else None
        if out is None:
            return None
        assert dtype is not None
        return _empty((*x.shape[:-nd], *out), dtype)

    kernel.__doc__ = f"avg_pool{nd}d: pool_out per spatial axis (no dilation)."
    return kernel


def _adaptive_avg_pool(nd: int) -> Kernel:
    def kernel(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
        if kwargs or len(args) != 2:
            return None
        x, size = args
        dtype = _pool_input(x, nd)
        out = _ints(size, nd)
        if dtype is None or out is None or min(out) < 1:
            return None
        return _empty((*x.shape[:-nd], *out), dtype)

    kernel.__doc__ = f"_adaptive_avg_pool{nd}d: the requested output size."
    return kernel


for _nd in (1, 2, 3):
    if _nd > 1:  # 1-d pooling reaches ATen as the 2-d op on an unsqueezed input
        KERNELS.add(_max_pool(_nd), f"aten.max_pool{_nd}d_with_indices.default")
        KERNELS.add(_avg_pool(_nd), f"aten.avg_pool{_nd}d.default")
        KERNELS.add(_adaptive_avg_pool(_nd), f"aten._adaptive_avg_pool{_nd}d.default")


@KERNELS.register("aten.mean.dim", "aten.sum.dim_IntList")
def reduce_dims(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
    """The input's shape with ``dim`` removed (kept as 1 with ``keepdim``)."""
    if kwargs or not 2 <= len(args) <= 3:
        return None
    x, dims = args[0], args[1]
    keepdim = args[2] if len(args) == 3 else False
    dtype = _plain(x)
    if dtype is None or not isinstance(dims, (list, tuple)) or not dims or not isinstance(keepdim, bool):
        return None
    rank = x.dim()
    if any(not isinstance(d, int) or not -rank <= d < rank for d in dims):
        return None
    axes = {d % rank for d in dims}
    if len(axes) != len(dims):
        return None
    shape = [1 if i in axes else n for i, n in enumerate(x.shape) if keepdim or i not in axes]
    return _empty(shape, dtype)


# --- matrix products and concatenation --------------------------------------------------------


@KERNELS.register("aten.addmm.default")
def addmm(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
    """bias + (m×k)·(k×n) -> (m×n); the bias broadcasts to it."""
    if kwargs or len(args) != 3:
        return None
    bias, a, b = args
    # F.linear passes the weight transposed (a view): its layout does not matter to the result
    dtype = _plain(bias, a)
    if dtype is None or not isinstance(b, torch.Tensor) or b.device != _META or b.dtype != dtype:
        return None
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0] or bias.dim() > 2:
        return None
    shape = (a.shape[0], b.shape[1])
    if _broadcast([tuple(bias.shape), shape]) != shape:
        return None
    return _empty(shape, dtype)


@KERNELS.register("aten.cat.default")
def cat(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
    """Equal shapes except along ``dim``, where the sizes add up."""
    if kwargs or not 1 <= len(args) <= 2 or not isinstance(args[0], (list, tuple)) or not args[0]:
        return None
    tensors, dim = list(args[0]), args[1] if len(args) == 2 else 0
    dtype = _plain(*tensors)
    if dtype is None or not isinstance(dim, int):
        return None
    rank = tensors[0].dim()
    if rank == 0 or not -rank <= dim < rank or any(t.dim() != rank for t in tensors):
        return None
    dim %= rank
    rest = [tuple(t.shape[:dim] + t.shape[dim + 1:]) for t in tensors]
    if any(r != rest[0] for r in rest):
        return None
    shape = list(tensors[0].shape)
    shape[dim] = sum(t.shape[dim] for t in tensors)
    return _empty(shape, dtype)


@KERNELS.register("aten.stack.default")
def stack(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
    """Equal shapes, joined along a new axis ``dim``."""
    if kwargs or len(args) != 2 or not isinstance(args[0], (list, tuple)) or not args[0]:
        return None
    tensors, dim = list(args[0]), args[1]
    dtype = _plain(*tensors)
    if dtype is None or not isinstance(dim, int) or any(t.shape != tensors[0].shape for t in tensors):
        return None
    rank = tensors[0].dim() + 1
    if not -rank <= dim < rank:
        return None
    shape = list(tensors[0].shape)
    shape.insert(dim % rank, len(tensors))
    return _empty(shape, dtype)


# --- dispatch ---------------------------------------------------------------------------------


@functools.cache
def _defaults(func: Any) -> tuple[Any, ...]:
    """The schema defaults of ``func``'s positional arguments (``_NONE`` where there is none)."""
    return tuple(a.default_value if a.has_default_value() else _NONE
                 for a in func._schema.arguments if not a.kwarg_only)


_NONE = object()


def _padded(func: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """``args`` with the trailing defaults the dispatcher leaves out put back (kernels read every
    argument by position)."""
    defaults = _defaults(func)
    if len(args) >= len(defaults):
        return args
    rest = defaults[len(args):]
    return args if _NONE in rest else (*args, *rest)


def run(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], cross_check: bool = False) -> Any:
    """``func(*args, **kwargs)`` on meta tensors, by our kernel when one handles the call; a call
    that real kernels refuse for its dtypes (:mod:`.dtypes`) or its sizes (:mod:`.refusals`) raises,
    as for real."""
    name = str(func)
    if name in dtypes.RULES:
        dtypes.check(name, args)
    if name in refusals.RULES:
        refusals.check(name, _padded(func, args))
    kernel = KERNELS.get(name)
    out = kernel(_padded(func, args), kwargs) if kernel is not None else None
    if out is None:
        return func(*args, **kwargs)
    if cross_check:
        compare(str(func), out, func(*args, **kwargs))
    return out


def _layout(t: torch.Tensor) -> tuple[Any, ...]:
    """Shape, dtype and the strides of the axes longer than 1 (the others never matter)."""
    return tuple(t.shape), t.dtype, tuple(s for s, n in zip(t.stride(), t.shape) if n > 1)


def compare(op: str, ours: Any, torchs: Any) -> None:
    """Raise when our kernel's outputs differ from torch's in shape, dtype or layout."""
    mine = ours if isinstance(ours, tuple) else (ours,)
    theirs = torchs if isinstance(torchs, (tuple, list)) else (torchs,)
    if len(mine) != len(theirs) or any(_layout(a) != _layout(b) for a, b in zip(mine, theirs)):
        raise InternalError(
            f"cnnshape bug: the meta kernel for {op} gives {[_layout(a) for a in mine]} but torch's gives "
            f"{[_layout(b) for b in theirs]}. Please report this with the model.")

