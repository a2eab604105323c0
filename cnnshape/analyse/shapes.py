"""Analytic output shapes of sliding-window, resampling and matrix-product ops, cross-checked
against the shape the meta execution produced. A disagreement is a cnnshape bug and is raised,
never resolved.

The formulas are keyed by ATen op, as the FLOP and receptive-field tables are, and read each
call's arguments by their schema names (``call.arg("stride")``), so ``nn.Conv2d``, ``F.conv2d``
and a user's own module class that ends in the same op get the same check, and a class that
merely shares a torch.nn class name gets none. Calls torch's meta kernels accept but a real
forward refuses (a transposed conv's ``output_padding`` not below its stride or dilation, an empty
transposed or interpolated output) never reach here: the trace refuses them at the call
(:mod:`cnnshape.trace.refusals`), naming the layer.
"""
from __future__ import annotations

import math
from collections.abc import Callable

from ..arith import as_tuple, conv_out, conv_transpose_out, pool_out
from ..errors import InternalError
from ..registry import Registry
from ..trace.records import Node, OpCall, TensorMeta

Shape = tuple[int, ...]
#: ``formula(node, call) -> output shape`` of one ATen call (``node`` names the layer in errors);
#: ``None`` when the call's arguments are not of a form the formula covers
ShapeFormula = Callable[[Node, OpCall], "Shape | None"]
SHAPES: Registry[str, ShapeFormula] = Registry("shapes")


def _tensor(call: OpCall, *names: str) -> TensorMeta | None:
    value = call.arg(*names)
    return value if isinstance(value, TensorMeta) else None


def _rank(call: OpCall) -> int:
    """Spatial rank of a pooling/upsampling op, from its name (``..._pool2d``: 2)."""
    return next(nd for nd in (1, 2, 3) if f"{nd}d" in call.op)


def _text(shape: Shape) -> str:
    return "x".join(map(str, shape))


@SHAPES.register("aten.convolution", "aten._convolution", "aten.convolution_overrideable")
def conv_shape(node: Node, call: OpCall) -> Shape | None:
    """Per spatial axis, normal: floor((W + 2P − D·(F−1) − 1)/S) + 1 channels out = weight.shape[0];
    transposed: (W−1)·S − 2P + D·(F−1) + output_padding + 1, channels out = weight.shape[1]·groups."""
    x, w = _tensor(call, "input"), _tensor(call, "weight")
    if x is None or w is None:
        return None
    nd = len(w.shape) - 2
    lead, spatial = x.shape[:-nd - 1], x.shape[-nd:]
    kernel = w.shape[2:]
    stride, padding, dilation = (as_tuple(call.arg(k), nd) for k in ("stride", "padding", "dilation"))
    if not call.arg("transposed", default=False):
        out = tuple(conv_out(*a) for a in zip(spatial, kernel, stride, padding, dilation))
        return (*lead, w.shape[0], *out)
    output_padding = as_tuple(call.arg("output_padding"), nd)
    out = tuple(conv_transpose_out(*a) for a in zip(spatial, kernel, stride, padding, dilation, output_padding))
    return (*lead, w.shape[1] * int(call.arg("groups")), *out)


@SHAPES.register("aten.max_pool1d", "aten.max_pool2d", "aten.max_pool3d", "aten.max_pool1d_with_indices",
                 "aten.max_pool2d_with_indices", "aten.max_pool3d_with_indices", "aten.avg_pool1d",
                 "aten.avg_pool2d", "aten.avg_pool3d")
def pool_shape(node: Node, call: OpCall) -> Shape | None:
    """Max/avg pooling: the conv formula (stride defaults to the kernel; average pooling has no
    dilation), rounded up with ceil_mode, where a window that would start in the right padding is
    dropped (:func:`cnnshape.arith.pool_out`)."""
    x = _tensor(call, "self")
    if x is None:
        return None
    nd = _rank(call)
    kernel = as_tuple(call.arg("kernel_size"), nd)
    stride = as_tuple(call.arg("stride") or kernel, nd)
    padding = as_tuple(call.arg("padding"), nd)
    dilation = as_tuple(call.arg("dilation", default=1), nd)
    ceil_mode = bool(call.arg("ceil_mode"))
    out = tuple(pool_out(*a, ceil_mode) for a in zip(x.shape[-nd:], kernel, stride, padding, dilation))
    return (*x.shape[:-nd], *out)


@SHAPES.register("aten._adaptive_avg_pool2d", "aten._adaptive_avg_pool3d", "aten.adaptive_avg_pool1d",
                 "aten.adaptive_max_pool1d", "aten.adaptive_max_pool2d", "aten.adaptive_max_pool3d")
def adaptive_shape(node: Node, call: OpCall) -> Shape | None:
    """Adaptive pooling: the requested output_size per spatial axis."""
    x = _tensor(call, "self")
    if x is None:
        return None
    nd = _rank(call)
    return (*x.shape[:-nd], *as_tuple(call.arg("output_size"), nd))


@SHAPES.register("aten.upsample_nearest1d", "aten.upsample_nearest2d", "aten.upsample_nearest3d",
                 "aten._upsample_nearest_exact1d", "aten._upsample_nearest_exact2d",
                 "aten._upsample_nearest_exact3d", "aten.upsample_linear1d", "aten.upsample_bilinear2d",
                 "aten.upsample_trilinear3d", "aten.upsample_bicubic2d", "aten._upsample_bilinear2d_aa",
                 "aten._upsample_bicubic2d_aa")
def upsample_shape(node: Node, call: OpCall) -> Shape | None:
    """Upsampling: output_size, or floor(W·scale_factor) per spatial axis."""
    x = _tensor(call, "self", "input")
    if x is None:
        return None
    nd = _rank(call)
    size, scales = call.arg("output_size"), call.arg("scale_factors")
    if size is not None:
        return (*x.shape[:-nd], *as_tuple(size, nd))
    if not scales:
        return None
    scales = tuple(scales) * (nd if len(scales) == 1 else 1)
    return (*x.shape[:-nd], *(math.floor(w * float(s)) for w, s in zip(x.shape[-nd:], scales)))


@SHAPES.register("aten.mm", "aten.addmm")
def mm_shape(node: Node, call: OpCall) -> Shape | None:
    """(m×k)·(k×n) -> m×n: a Linear's product over its flattened leading dims."""
    a, b = _tensor(call, "mat1", "self"), _tensor(call, "mat2")
    if a is None or b is None or len(a.shape) != 2 or len(b.shape) != 2:
        return None
    return a.shape[0], b.shape[1]


def _checked(node: Node) -> list[tuple[OpCall, Shape]]:
    """(call, analytic output shape) of each of the node's calls that has a formula."""
    checked = []
    for call in node.ops:
        formula = SHAPES.get(call.op)
        shape = formula(node, call) if formula is not None and call.outputs else None
        if shape is not None:
            checked.append((call, tuple(shape)))
    return checked


def expected_shape(node: Node) -> Shape | None:
    """The analytic output shape of the node, when its last call has a formula."""
    checked = _checked(node)
    if not checked or checked[-1][0] is not node.ops[-1]:
        return None
    return checked[-1][1]


def check_shape(node: Node) -> Shape | None:
    """Compare the analytic and the propagated output shape of each call with a formula; raise on
    disagreement. Returns the node's analytic output shape (see :func:`expected_shape`)."""
    checked = _checked(node)
    for call, expected in checked:
        actual = call.outputs[0].shape
        if expected != actual:
            x = next(v for v in call.args if isinstance(v, TensorMeta))
            raise InternalError(
                f"cnnshape bug: for {node.type} {node.name!r} on input {x} the size "
                f"formula gives {_text(expected)} but torch produced "
                f"{_text(actual)}. Please report this with the model."
            )
    return checked[-1][1] if checked and checked[-1][0] is node.ops[-1] else None
